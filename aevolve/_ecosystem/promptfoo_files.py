"""Reading a promptfoo config's tests: inline, or `file://` YAML, JSON, JSON Lines and CSV.

Each test comes with where it was written (`Test.where`: file and test index, or CSV
row), so anything the converter refuses is reported at its place. Sources aevolve
cannot read (test generators in JavaScript or Python, datasets behind URLs) are
reported the same way, as `Problem`s.
"""

from __future__ import annotations

import csv
import glob
import io
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._ecosystem.files import read_bounded
from aevolve._errors import InvalidInput

MAX_BYTES = 64 * 1024 * 1024  # of one config or tests file
FILE = "file://"


@dataclass
class Test:
    where: str  # "tests.csv row 3", "promptfooconfig.yaml test 2"
    data: dict


@dataclass
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Suite:
    config: Path
    tests: list[Test] = field(default_factory=list)
    default: dict = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def read_text(path: Path) -> str:
    data = read_bounded(path, MAX_BYTES)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 (byte {exc.start})") from None


def load_document(path: Path):
    """A YAML or JSON file (YAML reads JSON too), with aevolve's bounds on hostile YAML."""
    from aevolve._state.model import load_yaml

    return load_yaml(read_text(path), str(path))


def load_suite(config: str | Path) -> Suite:
    path = Path(config)
    doc = load_document(path)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: a promptfoo config is a mapping (with `tests`)")
    suite = Suite(config=path)
    default = doc.get("defaultTest") or {}
    if isinstance(default, str) and default.startswith(FILE):
        default = load_document(_resolve(path, default))
    if not isinstance(default, dict):
        raise InvalidInput(f"{path}: defaultTest must be a mapping or a file:// reference")
    suite.default = default
    tests = doc.get("tests")
    if tests is None:
        suite.problems.append(Problem(str(path), "no `tests`: nothing to convert"))
        return suite
    for n, item in enumerate(tests if isinstance(tests, list) else [tests], 1):
        if isinstance(item, dict):
            suite.tests.append(Test(f"{path.name} test {n}", item))
        elif isinstance(item, str):
            _read_source(path, item, suite)
        else:
            suite.problems.append(Problem(f"{path.name} test {n}", "a test is a mapping or a file:// reference"))
    return suite


def _resolve(config: Path, ref: str) -> Path:
    return config.parent / ref.removeprefix(FILE)


def _read_source(config: Path, ref: str, suite: Suite) -> None:
    if not ref.startswith(FILE):
        suite.problems.append(Problem(f"{config.name}: tests {ref!r}", "only file:// test sources can be read "
                                      "(datasets behind URLs and generators are not followed)"))
        return
    pattern = _resolve(config, ref)
    paths = sorted(Path(p) for p in glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [pattern]
    if not paths:
        suite.problems.append(Problem(f"{config.name}: tests {ref!r}", "no file matches"))
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            suite.tests += csv_tests(path)
        elif suffix in (".yaml", ".yml", ".json"):
            suite.tests += _document_tests(path, suite)
        elif suffix == ".jsonl":
            suite.tests += _jsonl_tests(path)
        else:
            suite.problems.append(Problem(str(path), f"a {suffix or 'suffix-less'} test source is not read "
                                          "(test generators run code: convert their output instead)"))


def _document_tests(path: Path, suite: Suite) -> list[Test]:
    doc = load_document(path)
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for n, item in enumerate(items, 1):
        if isinstance(item, dict):
            out.append(Test(f"{path} test {n}", item))
        else:
            suite.problems.append(Problem(f"{path} test {n}", "a test is a mapping"))
    return out


def _jsonl_tests(path: Path) -> list[Test]:
    from aevolve._state.jsonl import read_jsonl

    return [Test(f"{path}:{number} (test {n})", record)
            for n, (number, record) in enumerate(read_jsonl(read_text(path), str(path)), 1)]


# -- CSV: promptfoo's own reading of a row (src/csv.ts) ---------------------------------

# Assertion types promptfoo recognises in an `__expected` cell ("type:value", "type(0.8):value").
CSV_TYPES = [
    "answer-relevance", "bleu", "classifier", "contains", "contains-all", "contains-any", "contains-html",
    "contains-json", "contains-sql", "contains-xml", "context-faithfulness", "context-recall",
    "context-relevance", "cost", "equals", "factuality", "finish-reason", "g-eval", "gleu", "icontains",
    "icontains-all", "icontains-any", "is-html", "is-json", "is-refusal", "is-sql",
    "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml", "javascript", "latency",
    "levenshtein", "llm-rubric", "meteor", "model-graded-closedqa", "model-graded-factuality", "moderation",
    "perplexity", "perplexity-score", "python", "regex", "rouge-n", "similar", "starts-with", "webhook",
    "word-count",
]
_THRESHOLD_DEFAULT = {"similar": 0.8}
_THRESHOLD_TYPES = {"answer-relevance", "classifier", "context-faithfulness", "context-recall",
                    "context-relevance", "cost", "latency", "levenshtein", "perplexity-score", "perplexity",
                    "rouge-n", "similar", "starts-with"}


def assertion_from_string(text: str) -> dict:
    """An `__expected` cell as promptfoo reads it; plain text means `equals`."""
    import re

    for prefix, kind in (("javascript:", "javascript"), ("fn:", "javascript"), ("eval:", "javascript"),
                         ("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric"), ("python:", "python")):
        if text.startswith(prefix):
            value = text[len(prefix):]
            return {"type": kind, "value": value.strip() if kind != "llm-rubric" else value}
    if text.startswith(FILE) and (text.endswith(".py") or ".py:" in text):
        return {"type": "python", "value": text}
    if text.startswith(FILE) and any(s in text for s in (".js", ".ts")):
        return {"type": "javascript", "value": text}
    pattern = r"^(not-)?(" + "|".join(map(re.escape, sorted(CSV_TYPES, key=len, reverse=True))) + \
        r")(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
    match = re.match(pattern, text)
    if not match:
        return {"type": "equals", "value": text}
    negate, kind, threshold, value = match.groups()
    out: dict = {"type": (negate or "") + kind, "value": value}
    if kind in ("contains-all", "contains-any", "icontains-all", "icontains-any"):
        out["value"] = [v.strip() for v in (value or "").split(",")]
    elif kind in _THRESHOLD_TYPES:
        out["threshold"] = float(threshold) if threshold and float(threshold) else \
            _THRESHOLD_DEFAULT.get(kind, 0.75)
    if out["value"] is None:
        del out["value"]
    return out


def csv_tests(path: Path) -> list[Test]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    out = []
    for row in reader:
        out.append(Test(f"{path} line {reader.line_num}", test_from_row(row)))
    return out


def test_from_row(row: dict) -> dict:
    test: dict = {"vars": {}, "assert": []}
    metric = None
    for key, value in row.items():
        value = value or ""
        if key is None:
            continue
        if key.startswith("__expected"):
            if value.strip():
                test["assert"].append(assertion_from_string(value))
        elif key == "__description":
            test["description"] = value
        elif key == "__metric":
            metric = value
        elif key == "__threshold":
            test["threshold"] = float(value) if value.strip() else None
        elif key in ("__prefix", "__suffix"):
            test.setdefault("options", {})[key[2:]] = value
        elif key.startswith("__"):
            test.setdefault("_unknown", []).append(key)
        else:
            test["vars"][key] = value
    if metric:
        for spec in test["assert"]:
            spec["metric"] = metric
    if test.get("threshold") is None:
        test.pop("threshold", None)
    return test
