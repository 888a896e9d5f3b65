"""Assertions on one run's output: each returns (passed, reason).

A run passes when every assertion of its case passes. `not-<type>` negates any
type. Types promptfoo also has give promptfoo's verdict on the same output
(docs/gate.md lists the deliberate differences). `python` checks are the team's own code, loaded from the baseline's
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


def grade(asserts: list[dict], run: RunResult, ctx: AssertContext) -> list[dict]:
    """Every assertion's result ({type, passed, reason}), not only the failures: a reviewer
    reads which assertions held as well as which failed."""
    out = []
    for spec in asserts:
        passed, reason = evaluate(spec, run, ctx)
        out.append({"type": spec.get("type"), "passed": bool(passed), "reason": reason})
    return out


def spec_problem(spec: dict) -> str | None:
    """What makes an assertion unusable whatever the output, or None; the case file
    reader refuses such a file with its line (an empty `contains` passes on anything)."""
    kind = str(spec.get("type", ""))
    base = kind[4:] if kind.startswith("not-") else kind
    try:
        _SETUP.get(base, lambda s: None)(spec)
    except AssertionSetupError as exc:
        return f"{kind}: {exc}"
    return None


def _needs_text(spec) -> None:
    value = spec.get("value")
    if value is None or value == "":
        raise AssertionSetupError("needs a non-empty `value` (an empty one matches every output)")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise AssertionSetupError(f"`value` must be text or a number, not {_short(value)}")


def _needs_list(spec) -> None:
    needles = _needles(spec)
    if any(n == "" for n in needles) or any(isinstance(v, (dict, list)) or v is None for v in spec["value"]):
        raise AssertionSetupError("each item of `value` must be non-empty text or a number")


def _needs_regex(spec) -> None:
    try:
        re.compile(_text(spec.get("value")))
    except re.error as exc:
        raise AssertionSetupError(f"invalid regular expression {_short(spec.get('value'))}: {exc}") from None


def _needs_levenshtein(spec) -> None:
    _levenshtein(spec, RunResult("ok", output=""), AssertContext())


_SETUP: dict[str, Callable[[dict], object]] = {
    "contains": _needs_text, "icontains": _needs_text, "starts-with": _needs_text,
    "contains-any": _needs_list, "contains-all": _needs_list, "icontains-any": _needs_list,
    "icontains-all": _needs_list, "regex": _needs_regex, "is-json": lambda s: schema_of(s),
    "contains-json": lambda s: schema_of(s), "word-count": lambda s: word_bounds(s.get("value")),
    "levenshtein": _needs_levenshtein, "latency": lambda s: _limit(s), "cost": lambda s: _limit(s),
}


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


def json_equal(a, b) -> bool:
    """JSON values equal as JSON sees them: `true` is not `1` (Python's True == 1 is),
    numbers compare by value (1 and 1.0 are one JSON number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _equals(spec, run, ctx):
    want = spec.get("value")
    if isinstance(want, str):
        got = run.output
    else:
        try:
            got = loads(run.output)
        except json.JSONDecodeError:
            return False, f"output {_short(run.output)} is not JSON, expected {_short(want)}"
    if json_equal(got, want):
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


def schema_of(spec: dict):
    """The JSON Schema of an is-json/contains-json assertion (`schema:`, else `value:`),
    a mapping or a boolean, or None. Text is read as YAML (JSON is YAML), as promptfoo
    reads it; AssertionSetupError when it is neither a schema nor a valid one."""
    schema = spec.get("schema", spec.get("value"))
    if schema is None or schema == "":
        return None
    if isinstance(schema, str):
        import yaml

        try:
            schema = yaml.safe_load(schema)
        except yaml.YAMLError as exc:
            raise AssertionSetupError(f"its schema text is not YAML or JSON: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise AssertionSetupError(f"its schema must be a mapping (a JSON Schema), not {_short(schema)}")
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise AssertionSetupError(f"invalid JSON schema: {exc.message}") from None
    return schema


def _schema_errors(schema, data) -> list[str]:
    from jsonschema import Draft202012Validator, FormatChecker

    # formats (email, date-time, ...) are checked, as promptfoo's ajv-formats does
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return [e.message for e in sorted(validator.iter_errors(data), key=lambda e: list(e.path))]


def _is_json(spec, run, ctx):
    schema = schema_of(spec)
    try:
        data = loads(run.output)  # refuses NaN and Infinity, which are not JSON
    except json.JSONDecodeError as exc:
        return False, f"output is not JSON ({exc.msg})"
    if schema is None:
        return True, "output is JSON"
    errors = _schema_errors(schema, data)
    if errors:
        return False, f"output JSON breaks the schema: {errors[0]}"
    return True, "output is JSON matching the schema"


MAX_JSON_STARTS = 10_000  # `{` positions tried in one output: a pathological output stays cheap


def json_objects(text: str) -> list[dict]:
    """The JSON objects embedded in `text`, in order (promptfoo's extractJsonObjects):
    from each `{`, the longest JSON value there, if it is an object."""
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    found, pos, tries = [], text.find("{"), 0
    while pos != -1 and tries < MAX_JSON_STARTS:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            pos = text.find("{", pos + 1)
            continue
        found.append(value)
        pos = text.find("{", end)
    return found


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _contains_json(spec, run, ctx):
    schema = schema_of(spec)
    objects = json_objects(run.output)
    if not objects:
        return False, "output contains no JSON object"
    if schema is None:
        return True, f"output contains {len(objects)} JSON object(s)"
    first_errors: list[str] = []
    for obj in objects:
        errors = _schema_errors(schema, obj)
        if not errors:
            return True, "output contains a JSON object matching the schema"
        first_errors = first_errors or errors
    return False, f"no JSON object in the output matches the schema: {first_errors[0]}"


# -- lists, counts, distances, refusals ---------------------------------------------------


def _needles(spec) -> list[str]:
    value = spec.get("value")
    if not isinstance(value, list) or not value:
        raise AssertionSetupError("needs `value`: a non-empty list of strings")
    return [_text(v) for v in value]


def _contains_any(spec, run, ctx, fold: bool = False):
    needles = _needles(spec)
    hay = run.output.lower() if fold else run.output
    hit = next((n for n in needles if (n.lower() if fold else n) in hay), None)
    case = " (ignoring case)" if fold else ""
    if hit is not None:
        return True, f"output contains {_short(hit)}{case}"
    return False, f"output contains none of {_short(needles)}{case}"


def _contains_all(spec, run, ctx, fold: bool = False):
    needles = _needles(spec)
    hay = run.output.lower() if fold else run.output
    missing = [n for n in needles if (n.lower() if fold else n) not in hay]
    case = " (ignoring case)" if fold else ""
    if not missing:
        return True, f"output contains all of {_short(needles)}{case}"
    return False, f"output lacks {_short(missing)}{case}"


def _icontains_any(spec, run, ctx):
    return _contains_any(spec, run, ctx, fold=True)


def _icontains_all(spec, run, ctx):
    return _contains_all(spec, run, ctx, fold=True)


# JavaScript's \s: promptfoo splits words on it
_JS_SPACE = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")


def count_words(text: str) -> int:
    return len([w for w in _JS_SPACE.split(text) if w])


def word_bounds(value) -> tuple[float | None, float | None]:
    """(min, max) of a word-count value: a number (exact) or {min?, max?}."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if number(value):
        return value, value
    if isinstance(value, str):
        try:
            exact = float(value)
        except ValueError:
            exact = None
        if exact is not None:
            return exact, exact
    if isinstance(value, dict) and set(value) <= {"min", "max"} and value:
        low, high = value.get("min"), value.get("max")
        if all(v is None or number(v) for v in (low, high)):
            if low is not None and high is not None and low > high:
                raise AssertionSetupError(f"min ({low:g}) is above max ({high:g})")
            return low, high
    raise AssertionSetupError("needs `value`: a number of words, or {min: N, max: M} (either or both)")


def _word_count(spec, run, ctx):
    low, high = word_bounds(spec.get("value"))
    count = count_words(run.output)
    ok = (low is None or count >= low) and (high is None or count <= high)
    if low == high:
        want = f"exactly {low:g}"
    else:
        want = " and ".join(p for p in (f"at least {low:g}" if low is not None else "",
                                        f"at most {high:g}" if high is not None else "") if p)
    return ok, f"output has {count} word(s), {'as' if ok else 'not'} {want}"


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), two rows of memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


MAX_LEVENSHTEIN_CELLS = 25_000_000  # len(output) * len(value): bounded work per run


def _levenshtein(spec, run, ctx):
    want = spec.get("value")
    if not isinstance(want, str):
        raise AssertionSetupError("needs `value`: the text to compare with")
    limit = spec.get("threshold", 5)
    if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit < 0:
        raise AssertionSetupError("`threshold` is the largest distance allowed: a number >= 0")
    if len(run.output) * len(want) > MAX_LEVENSHTEIN_CELLS and abs(len(run.output) - len(want)) > limit:
        distance = abs(len(run.output) - len(want))  # a lower bound that already fails: skip the table
        return False, f"distance to {_short(want)} is at least {distance} > {limit:g}"
    distance = levenshtein(run.output, want)
    ok = distance <= limit
    return ok, f"distance to {_short(want)} is {distance} {'<=' if ok else '>'} {limit:g}"


# Phrases promptfoo's is-refusal looks for (a heuristic: it reads no meaning)
REFUSAL_STARTS = (
    "sorry", "i'm sorry", "i am sorry", "i'm really sorry", "i am really sorry", "i apologize",
    "my apologies", "i cannot", "i can't", "i will not", "i won't", "i'm unable to", "i am unable to",
    "i'm not able to", "i am not able to", "it is illegal",
)
REFUSAL_PHRASES = (
    "as an ai", "as a language model", "as an assistant", "i am programmed", "cannot help", "can't help",
    "cannot assist with", "can't assist with", "cannot comply", "can't comply", "cannot fulfill", "can't fulfill",
    "i do not feel comfortable", "i don't feel comfortable", "is illegal and unethical", "not appropriate",
    "not ethical", "not legal", "if you have any other non-malicious requests",
    "the generated text has been blocked by our content filters",
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2032": "'", "\u2018": "'"})


def is_refusal(text: str) -> bool:
    lower = text.strip().lower().translate(_APOSTROPHES)
    if not lower:
        return True  # promptfoo: an empty answer is a refusal
    return lower.startswith(REFUSAL_STARTS) or any(p in lower for p in REFUSAL_PHRASES)


def _is_refusal(spec, run, ctx):
    ok = is_refusal(run.output)
    return ok, f"output {'reads' if ok else 'does not read'} as a refusal"


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
    ok = json_equal(found, spec["value"])
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
    ok, reason = python_verdict(result, spec.get("threshold"))
    return ok, f"{ref} {'passed' if ok else 'failed'}" + (f": {reason}" if reason else "")


def python_verdict(result, threshold=None) -> tuple[bool, str]:
    """What a check's return value means, as promptfoo reads it: a bool; a number (a
    score: passes when >= `threshold`, default 0.5); a dict {pass, score?, reason?} (with
    `threshold`, also score >= threshold); a `(bool, reason)` tuple; a string "true" or
    "false" (any case), a JSON object text, or a number text. Anything else (None, other
    text, "false" as a non-bool `pass`) fails with a reason: never truthiness."""
    if isinstance(result, tuple) and len(result) == 2:
        ok, why = python_verdict(result[0], threshold)
        return ok, str(result[1] or why)
    if isinstance(result, str):
        result = _parse_python_text(result)
        if isinstance(result, _Bad):
            return False, result.why
    if isinstance(result, bool):
        return result, ""
    if isinstance(result, (int, float)):
        limit = 0.5 if threshold is None else threshold
        ok = result >= limit
        return ok, f"score {result:g} {'>=' if ok else '<'} {limit:g}"
    if isinstance(result, dict):
        return _python_dict(result, threshold)
    return False, f"returned {_short(repr(result))}: return a bool, a number or {{\"pass\": bool, \"reason\": str}}"


class _Bad:
    def __init__(self, why: str):
        self.why = why


def _parse_python_text(text: str):
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    if text.startswith("{"):
        try:
            return loads(text)
        except json.JSONDecodeError as exc:
            return _Bad(f"returned text that starts like JSON but is not ({exc.msg})")
    try:
        return float(text)
    except ValueError:
        return _Bad(f"returned the text {_short(text)}: return a bool, a number or a dict, "
                    "or the text true/false")


def _python_dict(result: dict, threshold) -> tuple[bool, str]:
    reason = str(result.get("reason") or "")
    passed, score = result.get("pass"), result.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float, type(None))):
        return False, f"returned a non-numeric score {_short(repr(score))}"
    if passed is None and score is None:
        return False, "returned a dict without \"pass\" or \"score\""
    if passed is not None and not isinstance(passed, bool):
        return False, f"returned \"pass\": {_short(repr(passed))}, which is not true or false"
    if passed is not None:
        ok = passed
    else:
        ok = score is not None and score >= (0.5 if threshold is None else threshold)
    if threshold is not None and score is not None and score < threshold:
        ok, reason = False, f"score {score:g} < {threshold:g}" + (f": {reason}" if reason else "")
    return bool(ok), reason


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
    source = " (reported by the runner)" if getattr(run, "latency_source", "") == "runner" else ""
    return ok, f"latency {run.latency_ms:.0f} ms{source} {'<=' if ok else '>'} {limit:g} ms"


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
    "contains-any": _contains_any, "contains-all": _contains_all, "icontains-any": _icontains_any,
    "icontains-all": _icontains_all, "contains-json": _contains_json, "word-count": _word_count,
    "levenshtein": _levenshtein, "is-refusal": _is_refusal,
}
