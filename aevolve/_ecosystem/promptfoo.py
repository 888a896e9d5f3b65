"""promptfoo tests as aevolve gate cases: the same verdicts, or a refusal that says where.

A test becomes one case (or one per combination, when a var holds a list, as promptfoo
expands it): `vars` is the case's `input`, `defaultTest` is merged in the way promptfoo
merges it (vars under the test's, its assertions first, its metadata under the test's),
assertions keep their type and value where aevolve has the same assertion, `{{var}}` in
a value is filled from the test's vars, JavaScript regexes are translated (`jsregex`),
`metric` names become case tags. What has no faithful equivalent is a `Problem` with the
file and test index; docs/gate.md lists what maps and why.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._ecosystem.jsregex import Untranslatable, translate
from aevolve._ecosystem.promptfoo_files import FILE, Problem, Suite, Test, load_suite
from aevolve._errors import InvalidInput, UsageError

# promptfoo type -> aevolve type: the same meaning on the same output
SAME = {"equals", "contains", "icontains", "regex", "starts-with", "is-json", "python", "llm-rubric", "latency",
        "cost", "contains-any", "contains-all", "icontains-any", "icontains-all", "contains-json", "word-count",
        "levenshtein", "is-refusal"}
ASSERTION_KEYS = {"type", "value", "threshold", "weight", "metric", "provider"}
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
MAX_COMBINATIONS = 1000


class Refused(ValueError):
    """One test cannot be converted; the message says why."""


@dataclass
class Conversion:
    cases: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # dropped on purpose, with why


def convert_config(config: str | Path, id_prefix: str, *, checks_root: Path | None = None) -> Conversion:
    """Every test of a promptfoo config as aevolve cases, with what could not be converted.
    `checks_root` is the repository root: `python` checks must be files under its evals/."""
    suite = load_suite(config)
    out = Conversion(problems=list(suite.problems))
    for test in suite.tests:
        try:
            cases = convert_test(test, suite, checks_root, out)
        except Refused as exc:
            out.problems.append(Problem(test.where, str(exc)))
            continue
        for case in cases:
            case["id"] = f"{id_prefix}-{len(out.cases) + 1}"
            out.cases.append({"id": case.pop("id"), **case})
    return out


def merged(test: dict, default: dict) -> dict:
    """promptfoo's merge of defaultTest into a test."""
    for key in ("vars", "options", "metadata"):
        for side in (test, default):
            if not isinstance(side.get(key) or {}, dict):
                raise Refused(f"{key} must be a mapping")
    out = copy.deepcopy(test)
    out["vars"] = {**(default.get("vars") or {}), **(test.get("vars") or {})}
    out["assert"] = [*(default.get("assert") or []), *(test.get("assert") or [])]
    if out.get("threshold") is None and default.get("threshold") is not None:
        out["threshold"] = default["threshold"]
    out["options"] = {**(default.get("options") or {}), **(test.get("options") or {})}
    out["metadata"] = {**(default.get("metadata") or {}), **(test.get("metadata") or {})}
    for key in ("provider", "providers"):
        if key not in out and key in default:
            out[key] = default[key]
    return out


def convert_test(test: Test, suite: Suite, checks_root: Path | None, out: Conversion) -> list[dict]:
    data = merged(test.data, suite.default)
    _refuse_test_fields(data)
    if data["options"].get("provider") is not None:
        out.notes.append(f"{test.where}: options.provider (the grading model) dropped: llm-rubric grades with "
                         "aevolve.yaml evolver.openai")
    cases = []
    for vars_ in _combinations(data["vars"]):
        asserts, tags = [], []
        for n, spec in enumerate(_flattened(data["assert"]), 1):
            try:
                converted = convert_assertion(spec, vars_, suite.config, checks_root)
            except Refused as exc:
                raise Refused(f"assertion {n} ({_kind(spec)}): {exc}") from None
            asserts.append(converted)
            if isinstance(spec.get("metric"), str) and spec["metric"] not in tags:
                tags.append(spec["metric"])
        if not asserts:
            raise Refused("no assertions: an aevolve case needs at least one")
        case: dict = {"id": ""}
        if isinstance(data.get("description"), str):
            case["description"] = data["description"]
        case["input"] = vars_
        case["assert"] = asserts
        if tags:
            case["tags"] = tags
        case["metadata"] = {**data["metadata"], "promptfoo": test.where}
        cases.append(case)
    return cases


def _kind(spec) -> str:
    return str(spec.get("type")) if isinstance(spec, dict) else "?"


def _refuse_test_fields(data: dict) -> None:
    if data.get("threshold") is not None:
        raise Refused(f"threshold {data['threshold']}: promptfoo passes a test when the weighted score of its "
                      "assertions reaches it; an aevolve run passes only when every assertion passes (a case's "
                      "threshold is a pass rate over repeats)")
    if data.get("provider") is not None:
        raise Refused("a test-level provider: aevolve runs one agent (gate.runner), not a model per test")
    options = {k: v for k, v in data["options"].items() if k != "provider" and v not in (None, "", {}, [])}
    if options:
        raise Refused(f"options {', '.join(sorted(options))}: they change the prompt or the output before "
                      "it is judged; aevolve judges the runner's output as it is")
    for key in data.get("_unknown", []):
        raise Refused(f"the CSV column {key} is not one promptfoo reads")
    if not isinstance(data["metadata"], dict):
        raise Refused("metadata must be a mapping")


def _combinations(vars_: dict) -> list[dict]:
    """promptfoo runs a test once per combination of list-valued vars."""
    if not isinstance(vars_, dict):
        raise Refused("vars must be a mapping")
    for name, value in vars_.items():
        if isinstance(value, str) and value.startswith(FILE):
            raise Refused(f"var {name!r} is loaded from {value}: inline the value (aevolve reads no files "
                          "into a case's input)")
    keys = list(vars_)
    choices = [v if isinstance(v, list) else [v] for v in vars_.values()]
    count = 1
    for options in choices:
        count *= len(options)
    if count > MAX_COMBINATIONS:
        raise Refused(f"its list vars make {count} combinations (at most {MAX_COMBINATIONS} are converted)")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*choices)]


def _flattened(asserts) -> list[dict]:
    if not isinstance(asserts, list):
        raise Refused("assert must be a list")
    out = []
    for spec in asserts:
        if not isinstance(spec, dict):
            raise Refused("an assertion is a mapping with a type")
        if spec.get("type") == "assert-set":
            if spec.get("threshold") is not None:
                raise Refused("an assert-set with a threshold passes on a weighted score; aevolve has none")
            out += _flattened(spec.get("assert"))
        else:
            out.append(spec)
    return out


# -- one assertion ------------------------------------------------------------------------


def convert_assertion(spec: dict, vars_: dict, config: Path, checks_root: Path | None) -> dict:
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise Refused("no type")
    base = kind.removeprefix("not-")
    if base == "javascript":
        raise Refused("javascript assertions run JavaScript, which aevolve never runs: rewrite it as a python "
                      "check (value: evals/<file>.py:<function>, see docs/gate.md)")
    if base not in SAME:
        raise Refused(f"aevolve has no {base} assertion")
    extra = sorted(set(spec) - ASSERTION_KEYS)
    if extra:
        raise Refused(f"{', '.join(extra)} has no aevolve equivalent")
    out: dict = {"type": kind}
    if "value" in spec:
        value = render(spec["value"], vars_)
        if isinstance(value, str) and value.startswith(FILE) and base != "python":
            raise Refused(f"a value loaded from {value}: inline it")
        out.update(_value_of(base, value, config, checks_root))
    for key in ("threshold", "weight"):
        if spec.get(key) is not None:
            out[key] = spec[key]
    if base == "levenshtein" and not out.get("threshold"):
        out["threshold"] = 5  # promptfoo's default distance (it reads 0 as unset too)
    return out


def _value_of(base: str, value, config: Path, checks_root: Path | None) -> dict:
    if base == "regex":
        if not isinstance(value, str):
            raise Refused("a regex value must be a string")
        try:
            return {"value": translate(value)}
        except Untranslatable as exc:
            raise Refused(f"the JavaScript regex /{value}/ has no faithful Python translation: {exc}") from None
    if base in ("is-json", "contains-json"):
        return _schema_of(value)
    if base == "python":
        return {"value": _python_check(value, config, checks_root)}
    if base in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        return {"value": _string_list(value)}
    textual = ("equals", "contains", "icontains", "starts-with", "levenshtein")
    if base in textual and not isinstance(value, (dict, list)):
        return {"value": js_string(value)}  # promptfoo compares String(value) with the output
    return {"value": value}


def _schema_of(value) -> dict:
    if isinstance(value, str):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise Refused(f"its schema is not YAML or JSON: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused("its schema must be a mapping")
    return {"schema": value}


def _string_list(value) -> list[str]:
    if isinstance(value, str):
        if '"' in value:
            raise Refused("a quoted comma-separated list: write the values as a YAML list")
        return [v.strip() for v in value.split(",")]
    if isinstance(value, list):
        return [js_string(v) for v in value]
    raise Refused("the value must be a list of strings")


def _python_check(value, config: Path, checks_root: Path | None) -> str:
    if not (isinstance(value, str) and value.startswith(FILE)):
        raise Refused("an inline python assertion is an expression evaluated by promptfoo; aevolve calls a "
                      "function in a file under evals/: write it as value: evals/<file>.py:<function>")
    ref = value.removeprefix(FILE)
    file, _, function = ref.partition(":")
    path = (config.parent / file).resolve()
    if checks_root is None or not path.is_relative_to((checks_root / "evals").resolve()):
        raise Refused(f"the check file {file} must lie under the repository's evals/ (the exam): move it there")
    return f"{path.relative_to(checks_root.resolve()).as_posix()}:{function or 'get_assert'}"


def render(value, vars_: dict):
    """promptfoo renders assertion values with the test's vars (Nunjucks); `{{ name }}`
    and `{{ a.b }}` are filled in, anything else in braces is refused."""
    if isinstance(value, list):
        return [render(v, vars_) for v in value]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value

    def fill(match: re.Match) -> str:
        found = vars_
        for part in match.group(1).split("."):
            if not isinstance(found, dict) or part not in found:
                raise Refused(f"{match.group(0)} names no var of the test")
            found = found[part]
        return js_string(found)

    rendered = _TEMPLATE.sub(fill, value)
    if "{{" in rendered or "{%" in rendered:
        raise Refused(f"the template in {value!r} uses more than {{{{ var }}}} (filters, tags)")
    return rendered


def js_string(value) -> str:
    """`String(value)` in JavaScript, for the scalars YAML gives."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, (dict, list)):
        raise Refused(f"{json.dumps(value)[:60]} is not text: JavaScript would compare '[object Object]' or a "
                      "comma-joined list")
    return str(value)


# -- writing the case file ----------------------------------------------------------------


@dataclass
class CasesImport:
    path: Path
    written: bool
    conversion: Conversion

    def to_dict(self) -> dict:
        c = self.conversion
        return {"path": str(self.path), "written": self.written, "cases": len(c.cases),
                "problems": [str(p) for p in c.problems], "notes": c.notes}


def output_path(root: Path, output: str | Path) -> Path:
    """Where the case file goes: under the repository's evals/ (the exam), never over a file."""
    path = Path(output)
    path = (path if path.is_absolute() else root / path).resolve()
    evals = (root / "evals").resolve()
    if not path.is_relative_to(evals) or path == evals:
        raise UsageError(f"{output}: the case file must go under {evals} (the exam: protected from evolvers)")
    if path.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{output}: a case file is YAML: name it .yaml")
    if path.exists():
        raise UsageError(f"{output}: exists; aevolve does not overwrite a case file: remove it or choose -o")
    return path


def import_promptfoo(config: str | Path, root: Path, output: str | Path, *, partial: bool = False) -> CasesImport:
    """Convert `config`'s tests into a case file under root/evals/. Nothing is written when
    a test cannot be converted, unless `partial` (then the rest is written)."""
    from aevolve._ecosystem.letta import yaml_text

    path = output_path(root, output)
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "promptfoo"
    conversion = convert_config(config, prefix, checks_root=root)
    result = CasesImport(path=path, written=False, conversion=conversion)
    if conversion.problems and not partial:
        raise InvalidInput(f"{config}: {len(conversion.problems)} test(s) or source(s) cannot be converted; "
                           "nothing was written (--partial writes the rest):\n" +
                           "\n".join(f"  {p}" for p in conversion.problems), conversion.problems)
    if not conversion.cases:
        raise InvalidInput(f"{config}: no test could be converted; nothing was written")
    header = (f"# Converted from {Path(config).name} by `aevolve cases import promptfoo`.\n"
              "# An exam change: review it, commit it (a maintainer change, which needs approval).\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml_text(conversion.cases), encoding="utf-8")
    result.written = True
    return result
