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
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import re

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
    package = Path(__file__).resolve().parents[1]  # aevolve/
    packaged = package / "schemas"
    return packaged if packaged.is_dir() else package.parent / "schemas"


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


def check_fast(name: str, instance) -> list[SchemaIssue]:
    """Same result as `check`, answered without jsonschema for the documents that
    are validated by the thousand (skill front matter, memory lines) when they are
    simple; anything unusual goes to jsonschema for its precise messages."""
    quick = _QUICK.get(name)
    found = quick(instance) if quick else None
    return check(name, instance) if found is None else found


def _quick_memory_entry(value) -> list[SchemaIssue] | None:
    if not isinstance(value, dict):
        return None
    rid, content, tags = value.get("id", ""), value.get("content", ""), value.get("tags", [])
    if "id" in value and not (isinstance(rid, str) and rid):
        return None
    if not isinstance(content, str) or not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None
    return []


# a string property's (minLength, maxLength, pattern); "str-map" for a map of strings; None: ask jsonschema
_Rule: TypeAlias = "tuple[int, int | None, re.Pattern[str] | None] | str | None"


@functools.cache
def _flat_rules(name: str) -> tuple[dict[str, _Rule], frozenset]:
    """(string property -> (minLength, maxLength, compiled pattern)), required) from the
    schema file itself, so the fast path can never drift from the schema."""
    import re

    spec = schema(name)
    rules: dict[str, _Rule] = {}
    for key, prop in spec["properties"].items():
        if prop.get("type") == "string":
            pattern = prop.get("pattern")
            rules[key] = (prop.get("minLength", 0), prop.get("maxLength"), re.compile(pattern) if pattern else None)
        elif prop.get("type") == "object" and prop.get("additionalProperties") == {"type": "string"}:
            rules[key] = "str-map"
        else:
            rules[key] = None  # not handled here: any value goes to jsonschema
    return rules, frozenset(spec.get("required", ()))


def _quick_skill_frontmatter(value) -> list[SchemaIssue] | None:
    rules, required = _flat_rules("skill-frontmatter")
    if not isinstance(value, dict) or not required <= value.keys():
        return None
    warnings = []
    for key, item in value.items():
        if not isinstance(key, str):
            return None
        if key not in rules:
            warnings.append(SchemaIssue(pointer([key]), f"unknown key {key!r} (kept; not part of the schema)",
                                        "warning"))
            continue
        rule = rules[key]
        if isinstance(rule, str):  # "str-map"
            if not isinstance(item, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in item.items()):
                return None
            continue
        if rule is None or not isinstance(item, str):
            return None
        low, high, pattern = rule
        # jsonschema applies `pattern` with re.search, as done here
        if len(item) < low or (high is not None and len(item) > high) or (pattern and not pattern.search(item)):
            return None
    warnings.sort(key=lambda i: i.pointer)
    return warnings


_EDIT_OPS = {"write": "content", "delete": None, "append-jsonl": "records"}  # op -> the key it requires


def _quick_proposal(value) -> list[SchemaIssue] | None:
    """[] for a plainly valid proposal (every propose checks one: importing jsonschema
    costs a command ~60 ms), None for anything else."""
    rules, required = _flat_rules("proposal")
    if not isinstance(value, dict) or not required <= value.keys() or not value.keys() <= rules.keys():
        return None
    for key, item in value.items():
        rule = rules[key]
        if isinstance(rule, tuple):
            low, high, pattern = rule
            if not isinstance(item, str) or len(item) < low or (high is not None and len(item) > high) \
                    or (pattern and not pattern.search(item)):
                return None
    evidence = value.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) and e for e in evidence) \
            or len(set(evidence)) != len(evidence):
        return None
    edits = value["edits"]
    if not isinstance(edits, list) or not edits or not all(_plain_edit(e) for e in edits):
        return None
    return []


def _plain_edit(edit) -> bool:
    if not isinstance(edit, dict) or not edit.keys() <= {"op", "path", "content", "records"}:
        return False
    op, path = edit.get("op"), edit.get("path")
    if not isinstance(op, str) or op not in _EDIT_OPS or not isinstance(path, str) or not 1 <= len(path) <= 400:
        return False
    if _EDIT_OPS[op] is not None and _EDIT_OPS[op] not in edit:
        return False
    records = edit.get("records", [{}])
    return isinstance(edit.get("content", ""), str) and isinstance(records, list) and bool(records) \
        and all(isinstance(r, dict) for r in records)


_QUICK = {"memory-entry": _quick_memory_entry, "skill-frontmatter": _quick_skill_frontmatter,
          "proposal": _quick_proposal}


def errors(name: str, instance) -> list[SchemaIssue]:
    return [i for i in check_fast(name, instance) if i.severity == "error"]


def listing(issues: list[SchemaIssue]) -> str:
    """Issues as indented `pointer: message` lines, for an error message."""
    return "\n".join(f"  {i.pointer or '/'}: {i.message}" for i in issues)


def _explain(err) -> list[SchemaIssue]:
    where = pointer(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        return [
            SchemaIssue(where + pointer([k]), f"unknown key {k!r} (kept; not part of the schema)", "warning")
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
