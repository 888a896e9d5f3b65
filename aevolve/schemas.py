"""Load the JSON Schemas in `schemas/` and apply them.

One reused Draft 2020-12 validator per schema, with the format checker (so
`date-time` is really checked: rfc3339-validator is a dependency). Errors from
`additionalProperties` become warnings: unknown keys are kept, never dropped.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

NAMES = (
    "aevolve-config",
    "manifest",
    "skill-frontmatter",
    "memory-entry",
    "tool-registry",
    "eval-case",
    "gate-report",
    "proposal",
    "observation",
)


@dataclass(frozen=True)
class SchemaIssue:
    pointer: str  # JSON pointer into the instance, "" for the root
    message: str
    severity: str  # "error" or "warning"


def schema_dir() -> Path:
    """Schemas ship in the wheel as aevolve/schemas; a source checkout has ../schemas."""
    packaged = Path(__file__).parent / "schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "schemas"


@functools.cache
def schema(name: str) -> dict:
    if name not in NAMES:
        raise KeyError(f"no schema named {name!r}")
    return json.loads((schema_dir() / f"{name}.json").read_text())


@functools.cache
def validator(name: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def pointer(path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def check(name: str, instance) -> list[SchemaIssue]:
    """Every schema problem of `instance`, most specific first."""
    issues = []
    for err in validator(name).iter_errors(instance):
        issues.extend(_explain(err))
    issues.sort(key=lambda i: (i.severity != "error", i.pointer))
    return issues


def errors(name: str, instance) -> list[SchemaIssue]:
    return [i for i in check(name, instance) if i.severity == "error"]


def _explain(err) -> list[SchemaIssue]:
    where = pointer(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        return [
            SchemaIssue(f"{where}/{k}", f"unknown key {k!r} (kept; not part of the schema)", "warning")
            for k in extra
        ]
    if err.validator in ("oneOf", "anyOf") and err.context:
        # report the branch that got furthest rather than "is not valid under any"
        best = max(err.context, key=lambda e: len(e.absolute_path))
        return _explain(best)
    if err.validator == "if":
        return []
    return [SchemaIssue(where, _message(err), "error")]


def _message(err) -> str:
    v, val = err.validator, err.validator_value
    short = json.dumps(err.instance)[:60] if not isinstance(err.instance, (dict, list)) else type(err.instance).__name__
    if v == "required":
        return err.message.replace("is a required property", "is required")
    if v == "pattern":
        return f"{short} does not match the pattern {val}"
    if v == "maxLength":
        return f"too long: {len(err.instance)} characters, at most {val} allowed"
    if v == "minLength":
        return f"too short: at least {val} character(s) expected"
    if v == "type":
        return f"expected {val if isinstance(val, str) else ' or '.join(val)}, got {_typename(err.instance)}"
    if v == "enum":
        return f"{short} is not one of {', '.join(map(str, val))}"
    if v == "format":
        return f"{short} is not a valid {val}"
    return err.message


def _typename(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "integer", float: "number"}.get(type(value), type(value).__name__)
