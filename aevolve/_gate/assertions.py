"""Assertions on one run's output: each returns (passed, reason).

A run passes when every assertion of its case passes. `not-<type>` negates any
type. `python` checks are the team's own code, loaded from the baseline's
materialized `evals/` (protected: no evolver can edit it); `llm-rubric` asks an
OpenAI-compatible model and caches its verdict by (model, rubric, output).
"""

from __future__ import annotations

import json
import re
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aevolve._errors import AssertionSetupError
from aevolve._gate.runner import RunResult
from aevolve._json import loads


@dataclass
class AssertContext:
    exam: object = None  # the exam's State: python checks are compiled from its blobs
    repo: object = None  # for the rubric cache
    llm: dict = field(default_factory=dict)  # the baseline's aevolve.yaml (its evolver.openai section)
    case_id: str = ""
    case_input: object = None


def grade(asserts: list[dict], run: RunResult, ctx: AssertContext) -> tuple[bool, list[str]]:
    """(all passed, reasons of the failed assertions)."""
    failures = []
    for spec in asserts:
        passed, reason = evaluate(spec, run, ctx)
        if not passed:
            failures.append(reason)
    return not failures, failures


def evaluate(spec: dict, run: RunResult, ctx: AssertContext) -> tuple[bool, str]:
    """(passed, reason); AssertionSetupError when the assertion itself cannot be
    evaluated (not the agent's fault), which fails the whole gate closed."""
    kind = spec["type"]
    negate = kind.startswith("not-")
    base = kind[4:] if negate else kind
    check = CHECKS.get(base)
    if check is None:
        raise AssertionSetupError(f"{kind}: unknown assertion type")
    try:
        passed, reason = check(spec, run, ctx)
    except AssertionSetupError as exc:
        raise AssertionSetupError(f"{kind}: {exc}") from None
    if negate:
        return (not passed), f"{kind}: expected the opposite of: {reason}"
    return passed, f"{kind}: {reason}"


def _short(text, limit: int = 80) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _equals(spec, run, ctx):
    want = spec.get("value")
    if isinstance(want, str):
        got = run.output
    else:
        try:
            got = loads(run.output)
        except json.JSONDecodeError:
            return False, f"output {_short(run.output)} is not JSON, expected {_short(want)}"
    if got == want:
        return True, f"output equals {_short(want)}"
    return False, f"output {_short(run.output)} does not equal {_short(want)}"


def _contains(spec, run, ctx):
    want = _text(spec.get("value"))
    ok = want in run.output
    return ok, f"output {'contains' if ok else 'does not contain'} {_short(want)}"


def _icontains(spec, run, ctx):
    want = _text(spec.get("value"))
    ok = want.lower() in run.output.lower()
    return ok, f"output {'contains' if ok else 'does not contain'} {_short(want)} (ignoring case)"


def _regex(spec, run, ctx):
    try:
        pattern = re.compile(_text(spec.get("value")))
    except re.error as exc:
        raise AssertionSetupError(f"invalid regular expression {_short(spec.get('value'))}: {exc}") from None
    ok = pattern.search(run.output) is not None
    return ok, f"output {'matches' if ok else 'does not match'} /{pattern.pattern}/"


def _starts_with(spec, run, ctx):
    want = _text(spec.get("value"))
    ok = run.output.startswith(want)
    return ok, f"output {'starts' if ok else 'does not start'} with {_short(want)}"


def _is_json(spec, run, ctx):
    try:
        data = loads(run.output)
    except json.JSONDecodeError as exc:
        return False, f"output is not JSON ({exc.msg})"
    schema = spec.get("schema") if isinstance(spec.get("schema"), dict) else spec.get("value")
    if isinstance(schema, dict):
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
        except SchemaError as exc:
            raise AssertionSetupError(f"invalid JSON schema: {exc.message}") from None
        if errors:
            return False, f"output JSON breaks the schema: {errors[0].message}"
        return True, "output is JSON matching the schema"
    return True, "output is JSON"


# -- a small JSONPath: $.a.b[0]['c d'][-1] ----------------------------------------------

_TOKEN = re.compile(r"""\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]""")
_MISSING = object()


def parse_path(path: str) -> list[str | int]:
    """`$.a.b[0]` -> ["a", "b", 0]; raises AssertionSetupError on anything else."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and not text.startswith((".", "[")):
        text = "." + text
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise AssertionSetupError(f"cannot read JSON path {path!r} at {text[pos:]!r}")
        name, index, single, double = match.groups()
        parts.append(int(index) if index is not None else next(v for v in (name, single, double) if v is not None))
        pos = match.end()
    return parts


def follow(data, parts: list[str | int]):
    for part in parts:
        if isinstance(part, int) and isinstance(data, list) and -len(data) <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return _MISSING
    return data


def _json_path(spec, run, ctx):
    path = spec.get("path")
    if not isinstance(path, str):
        raise AssertionSetupError("json-path needs `path`, e.g. path: $.answer.items[0]")
    parts = parse_path(path)
    try:
        data = loads(run.output)
    except json.JSONDecodeError as exc:
        return False, f"output is not JSON ({exc.msg})"
    found = follow(data, parts)
    if found is _MISSING:
        return False, f"{path} not found in the output"
    if "value" not in spec:
        return True, f"{path} exists"
    ok = found == spec["value"]
    return ok, f"{path} is {_short(found)}" + ("" if ok else f", expected {_short(spec['value'])}")


# -- python checks from evals/ ----------------------------------------------------------

_modules: dict[str, types.ModuleType] = {}
_modules_lock = threading.Lock()


def _load_check(ref: str, exam) -> Callable[..., Any]:
    """The check function, compiled from the exam's own blob (never from a folder a
    runner could write into), cached by blob id."""
    file, sep, func = ref.rpartition(":")
    if not sep or not file or not func:
        raise AssertionSetupError(f"python check {ref!r} must be 'evals/<file>.py:<function>'")
    if exam is None:
        raise AssertionSetupError("no exam to load python checks from")
    parts = file.split("/")
    if parts[0] != "evals" or any(p in ("", ".", "..") for p in parts) or file not in exam.files:
        raise AssertionSetupError(f"python check file {file!r} is not a file under evals/ on the baseline")
    oid = exam.files[file].oid
    with _modules_lock:
        module = _modules.get(oid)
        if module is None:
            module = types.ModuleType(f"aevolve_check_{oid[:12]}")
            module.__file__ = file
            try:  # compiled by hand: an import would write evals/__pycache__ somewhere
                exec(compile(exam.read(file), file, "exec"), module.__dict__)
            except Exception as exc:  # the team's check file is broken
                raise AssertionSetupError(f"cannot load {file}: {type(exc).__name__}: {exc}") from None
            _modules[oid] = module
    fn = getattr(module, func, None)
    if not callable(fn):
        raise AssertionSetupError(f"{file} has no function {func!r}")
    return fn


def _python(spec, run, ctx):
    ref = spec.get("value") if isinstance(spec.get("value"), str) else None
    if ref is None and spec.get("path") and spec.get("function"):
        ref = f"{spec['path']}:{spec['function']}"
    if not ref:
        raise AssertionSetupError("python needs value: 'evals/<file>.py:<function>'")
    fn = _load_check(ref, ctx.exam)
    context = {"input": ctx.case_input, "case_id": ctx.case_id, "cost": run.cost,
               "latency_ms": run.latency_ms, "steps": run.steps}
    try:
        result = fn(run.output, context)
    except Exception as exc:
        return False, f"{ref} raised {type(exc).__name__}: {exc}"
    reason = ""
    if isinstance(result, tuple) and len(result) == 2:
        result, reason = result
    if isinstance(result, dict):
        reason = str(result.get("reason") or "")
        result = result.get("pass", result.get("score"))
    if isinstance(result, bool) or result is None:
        ok = bool(result)
    elif isinstance(result, (int, float)):
        threshold = spec.get("threshold", 0.5)
        ok = result >= threshold
        reason = reason or f"score {result:g} {'>=' if ok else '<'} {threshold:g}"
    else:
        ok = bool(result)
    return ok, f"{ref} {'passed' if ok else 'failed'}" + (f": {reason}" if reason else "")


# -- llm-rubric ---------------------------------------------------------------------------

RUBRIC_SYSTEM = (
    "You grade an AI agent's output against a rubric. Reply with one JSON object: "
    '{"pass": true or false, "score": a number from 0 to 1, "reason": "one sentence"}.'
)


RUBRIC_SCHEMA = {
    "type": "object", "required": ["pass", "reason"],
    "properties": {"pass": {"type": "boolean"}, "score": {"type": "number"}, "reason": {"type": "string"}},
}


def _llm_rubric(spec, run, ctx):
    from aevolve._errors import AevolveError
    from aevolve._gate.results_cache import rubric_get, rubric_put
    from aevolve._propose import llm

    rubric = _text(spec.get("value"))
    try:
        settings = llm.resolve_settings(ctx.llm, overrides={"temperature": 0.0})
    except AevolveError as exc:
        raise AssertionSetupError(str(exc)) from None
    verdict = rubric_get(ctx.repo, settings.model, rubric, run.output) if ctx.repo is not None else None
    if verdict is None:
        verdict = ask_rubric(settings, rubric, run.output)
        if ctx.repo is not None:
            rubric_put(ctx.repo, settings.model, rubric, run.output, verdict)
    ok = bool(verdict.get("pass"))
    threshold = spec.get("threshold")
    if threshold is not None and isinstance(verdict.get("score"), (int, float)):
        ok = verdict["score"] >= threshold
    return ok, f"rubric {_short(rubric, 50)}: {verdict.get('reason') or ('met' if ok else 'not met')}"


def ask_rubric(settings, rubric: str, output: str) -> dict:
    """One grading call through aevolve.llm (retries, JSON repair); AssertionSetupError if it fails."""
    from aevolve._errors import AevolveError
    from aevolve._propose import llm

    def validate(data):
        if isinstance(data, dict) and isinstance(data.get("pass"), bool):
            return []
        return ["need {\"pass\": true|false, \"reason\": ...}"]

    messages = [{"role": "system", "content": RUBRIC_SYSTEM},
                {"role": "user", "content": f"Rubric:\n{rubric}\n\nOutput to grade:\n{output}"}]
    try:
        client = llm.make_client(settings)
        answer = llm.chat_json(client, settings.model, messages, RUBRIC_SCHEMA, settings=settings,
                               schema_name="rubric_verdict", validate=validate)
    except AevolveError as exc:
        raise AssertionSetupError(f"rubric model call failed: {exc}") from None
    data = answer.data
    if not isinstance(data, dict):  # `validate` lets only objects through; this tells mypy
        raise AssertionSetupError("rubric model call failed: its answer is not a JSON object")
    return {"pass": bool(data["pass"]), "score": data.get("score"), "reason": str(data.get("reason") or "")}


# -- latency and cost --------------------------------------------------------------------


def _limit(spec) -> float:
    limit = spec.get("threshold", spec.get("value"))
    if not isinstance(limit, (int, float)) or isinstance(limit, bool):
        raise AssertionSetupError("needs a numeric threshold")
    return float(limit)


def _latency(spec, run, ctx):
    limit = _limit(spec)
    ok = run.latency_ms <= limit
    return ok, f"latency {run.latency_ms:.0f} ms {'<=' if ok else '>'} {limit:g} ms"


def _cost(spec, run, ctx):
    limit = _limit(spec)
    if run.cost is None:
        return False, "the runner reported no cost (print JSON with a \"cost\" field)"
    ok = run.cost <= limit
    return ok, f"cost {run.cost:g} {'<=' if ok else '>'} {limit:g}"


CHECKS = {
    "equals": _equals, "contains": _contains, "icontains": _icontains, "regex": _regex,
    "starts-with": _starts_with, "is-json": _is_json, "json-path": _json_path, "python": _python,
    "llm-rubric": _llm_rubric, "latency": _latency, "cost": _cost,
}
