"""Assertions: each type, negation, the JSON path reader, python checks, the LLM rubric."""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from aevolve._gate.assertions import AssertContext, AssertionSetupError, evaluate, follow, grade, parse_path
from aevolve._gate.runner import RunResult
from aevolve._git.repo import Repo

from conftest import make_state_repo


def run(output, **kw):
    return RunResult("ok", output=output, **kw)


def check(spec, output, ctx=None, **kw):
    return evaluate(spec, run(output, **kw), ctx or AssertContext())


@pytest.mark.parametrize("spec, output, expected", [
    ({"type": "equals", "value": "30 days"}, "30 days", True),
    ({"type": "equals", "value": "30 days"}, "30 days.", False),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1}', True),
    ({"type": "contains", "value": "30 days"}, "within 30 days", True),
    ({"type": "contains", "value": "30 Days"}, "within 30 days", False),
    ({"type": "icontains", "value": "30 DAYS"}, "within 30 days", True),
    ({"type": "regex", "value": "(?i)store credit"}, "You get Store Credit", True),
    ({"type": "regex", "value": "^\\d+$"}, "12a", False),
    ({"type": "starts-with", "value": "Yes"}, "Yes, within 30 days", True),
    ({"type": "is-json"}, '{"a": [1]}', True),
    ({"type": "is-json"}, "{a: 1}", False),
    ({"type": "is-json", "value": {"type": "object", "required": ["answer"]}}, '{"answer": 1}', True),
    ({"type": "is-json", "schema": {"type": "object", "required": ["answer"]}}, '{"other": 1}', False),
    ({"type": "json-path", "path": "$.a.b[0]", "value": 3}, '{"a": {"b": [3, 4]}}', True),
    ({"type": "json-path", "path": "$.a.b[-1]", "value": 3}, '{"a": {"b": [3, 4]}}', False),
    ({"type": "json-path", "path": "$.a['c d']"}, '{"a": {"c d": null}}', True),
    ({"type": "json-path", "path": "$.missing"}, '{"a": 1}', False),
    ({"type": "not-contains", "value": "yes, of course"}, "no, sorry", True),
    ({"type": "not-contains", "value": "yes"}, "yes", False),
])
def test_assertion_types(spec, output, expected):
    passed, reason = check(spec, output)
    assert passed is expected
    assert reason.startswith(spec["type"] + ":")


def test_latency_and_cost_read_the_run():
    assert check({"type": "latency", "threshold": 100}, "x", latency_ms=40.0)[0] is True
    assert check({"type": "latency", "threshold": 100}, "x", latency_ms=140.0)[0] is False
    assert check({"type": "cost", "threshold": 0.01}, "x", cost=0.002)[0] is True
    passed, reason = check({"type": "cost", "threshold": 0.01}, "x")
    assert passed is False and "reported no cost" in reason


def test_broken_assertion_cannot_be_evaluated():
    with pytest.raises(AssertionSetupError, match="invalid regular expression"):
        check({"type": "regex", "value": "(unclosed"}, "x")


def test_unknown_assertion_type_cannot_be_evaluated():
    with pytest.raises(AssertionSetupError, match="unknown assertion type"):
        check({"type": "smells-right"}, "x")


def test_json_path_reader():
    assert parse_path("$.a.b[0]['x y'][\"z\"]") == ["a", "b", 0, "x y", "z"]
    assert parse_path("a.b") == ["a", "b"]
    assert follow({"a": [{"b": 2}]}, parse_path("$.a[0].b")) == 2
    with pytest.raises(AssertionSetupError):
        parse_path("$.a[?(@.x)]")


def test_grade_gives_every_assertions_result_with_its_reason():
    results = grade([{"type": "contains", "value": "a"}, {"type": "contains", "value": "z"},
                     {"type": "starts-with", "value": "q"}], run("abc"), AssertContext())
    assert [(r["type"], r["passed"]) for r in results] == [("contains", True), ("contains", False),
                                                           ("starts-with", False)]
    assert "'z'" in results[1]["reason"]


def _exam_state(tmp_path, checks: str):
    from aevolve._state.model import State

    root = make_state_repo(tmp_path / "s", {"evals/checks.py": checks, "evals/a.yaml": ""})
    return State.from_tree(Repo.open(root), "main")


def test_python_check_from_evals(tmp_path):
    root = _exam_state(tmp_path, (
        "def polite(output, context):\n    return 'please' in output, 'looked for please'\n"
        "def score(output, context):\n    return len(output) / 10\n"
        "def uses_input(output, context):\n    return {'pass': output == context['input']['q'], 'reason': 'echo'}\n"
    ))
    ctx = AssertContext(exam=root, case_input={"q": "hi"})
    assert check({"type": "python", "value": "evals/checks.py:polite"}, "yes please", ctx) == (
        True, "python: evals/checks.py:polite passed: looked for please")
    assert check({"type": "python", "value": "evals/checks.py:score", "threshold": 0.5}, "abc", ctx)[0] is False
    assert check({"type": "python", "value": "evals/checks.py:score", "threshold": 0.5}, "abcdef", ctx)[0] is True
    assert check({"type": "python", "value": "evals/checks.py:uses_input"}, "hi", ctx)[0] is True
    assert check({"type": "not-python", "value": "evals/checks.py:polite"}, "no", ctx)[0] is True


@pytest.mark.parametrize("ref, message", [
    ("manifest.yaml:f", "not a file under evals/"),
    ("evals/../manifest.yaml:f", "not a file under evals/"),
    ("evals/missing.py:f", "not a file under evals/"),
    ("evals/checks.py:nope", "no function 'nope'"),
])
def test_a_python_check_that_cannot_be_loaded_cannot_be_evaluated(tmp_path, ref, message):
    ctx = AssertContext(exam=_exam_state(tmp_path, "def f(o, c):\n    return True\n"))
    with pytest.raises(AssertionSetupError, match=message):
        check({"type": "python", "value": ref}, "x", ctx)


class _Grader(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose 'model' passes outputs that say please."""

    calls = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        text = body["messages"][-1]["content"]
        verdict = {"pass": "please" in text.split("Output to grade:")[1], "score": 1, "reason": "politeness"}
        data = json.dumps({
            "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps(verdict)}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def grader():
    server = HTTPServer(("127.0.0.1", 0), _Grader)
    # serve_forever checks for shutdown every poll_interval (0.5 s by default): the teardown waited that
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    _Grader.calls = 0
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_llm_rubric_asks_the_model_once_and_caches(tmp_path, grader, monkeypatch):
    monkeypatch.setenv("GRADER_KEY", "test-key")
    repo = Repo.open(make_state_repo(tmp_path / "s"))
    ctx = AssertContext(repo=repo, llm={"evolver": {"openai": {
        "model": "grader-1", "base_url": grader, "api_key_env": "GRADER_KEY"}}})
    spec = {"type": "llm-rubric", "value": "The answer is polite."}
    assert check(spec, "yes please", ctx)[0] is True
    assert check(spec, "no", ctx)[0] is False
    assert check(spec, "yes please", ctx)[0] is True
    assert check({"type": "not-llm-rubric", "value": "The answer is polite."}, "no", ctx)[0] is True
    assert _Grader.calls == 2  # the repeated (model, rubric, output) came from the cache


def test_llm_rubric_without_a_key_cannot_be_evaluated(tmp_path):
    ctx = AssertContext(llm={"evolver": {"openai": {"api_key_env": "NO_SUCH_KEY_VAR"}}})
    os.environ.pop("NO_SUCH_KEY_VAR", None)
    with pytest.raises(AssertionSetupError, match="NO_SUCH_KEY_VAR is not set"):
        check({"type": "llm-rubric", "value": "polite"}, "x", ctx)


# -- promptfoo's semantics, type by type ---------------------------------------------------
# (assertion, output, verdict promptfoo gives): drawn from promptfoo's documented and
# implemented behaviour of each deterministic type; `not-` forms are the opposite verdict.

PROMPTFOO_PAIRS = [
    # equals: a text value is compared as text; an object value with the output parsed as JSON,
    # type-strictly (true is not 1)
    ({"type": "equals", "value": "true"}, "true", True),
    ({"type": "equals", "value": True}, "1", False),
    ({"type": "equals", "value": 1}, "true", False),
    ({"type": "equals", "value": {"ok": True}}, '{"ok": 1}', False),
    ({"type": "equals", "value": {"ok": True}}, '{"ok": true}', True),
    ({"type": "equals", "value": [1, 2]}, "[1, 2.0]", True),
    ({"type": "equals", "value": {"a": [0]}}, '{"a": [false]}', False),
    # contains / icontains
    ({"type": "contains", "value": "Paris"}, "It is Paris.", True),
    ({"type": "contains", "value": "paris"}, "It is Paris.", False),
    ({"type": "icontains", "value": "PARIS"}, "It is Paris.", True),
    ({"type": "contains", "value": 42}, "the answer is 42", True),
    # contains-any / contains-all and their i forms
    ({"type": "contains-any", "value": ["cat", "dog"]}, "a dog barks", True),
    ({"type": "contains-any", "value": ["cat", "dog"]}, "a Dog barks", False),
    ({"type": "icontains-any", "value": ["cat", "dog"]}, "a Dog barks", True),
    ({"type": "icontains-any", "value": ["cat", "dog"]}, "a bird sings", False),
    ({"type": "contains-all", "value": ["red", "blue"]}, "red and blue", True),
    ({"type": "contains-all", "value": ["red", "blue"]}, "red and Blue", False),
    ({"type": "icontains-all", "value": ["red", "blue"]}, "RED and Blue", True),
    ({"type": "icontains-all", "value": ["red", "blue"]}, "red only", False),
    ({"type": "not-contains-any", "value": ["error", "fail"]}, "all good", True),
    ({"type": "not-contains-all", "value": ["a", "z"]}, "abc", True),
    ({"type": "not-icontains-any", "value": ["ERROR"]}, "an error", False),
    # starts-with, regex
    ({"type": "starts-with", "value": "Yes"}, "Yes, sure", True),
    ({"type": "starts-with", "value": "Yes"}, " Yes, sure", False),
    ({"type": "regex", "value": "\\d{3}"}, "call 555 now", True),
    # is-json: NaN and Infinity are not JSON; formats are checked; a schema may be text
    ({"type": "is-json"}, '{"x": NaN}', False),
    ({"type": "is-json"}, "[Infinity]", False),
    ({"type": "is-json"}, "null", True),
    ({"type": "is-json", "value": {"type": "string", "format": "email"}}, '"not-an-email"', False),
    ({"type": "is-json", "value": {"type": "string", "format": "email"}}, '"a@example.com"', True),
    ({"type": "is-json", "value": '{"type": "object", "required": ["a"]}'}, '{"b": 1}', False),
    ({"type": "is-json", "value": "type: object\nrequired: [a]\n"}, '{"a": 1}', True),
    ({"type": "is-json", "schema": "{type: array}"}, '{"a": 1}', False),
    ({"type": "not-is-json"}, "plain text", True),
    # contains-json: an object anywhere in the text, matching the schema when given
    ({"type": "contains-json"}, 'Here: {"a": 1} done', True),
    ({"type": "contains-json"}, "no json {here", False),
    ({"type": "contains-json"}, "[1, 2]", False),  # promptfoo looks for objects only
    ({"type": "contains-json", "value": {"required": ["b"]}}, '{"a": 1} and {"b": 2}', True),
    ({"type": "contains-json", "value": {"required": ["c"]}}, '{"a": 1} and {"b": 2}', False),
    ({"type": "contains-json"}, '{"x": NaN}', False),
    ({"type": "not-contains-json"}, "just text", True),
    # word-count: words split on whitespace; a number is exact, {min, max} a range
    ({"type": "word-count", "value": 3}, "one two  three", True),
    ({"type": "word-count", "value": 3}, "one two", False),
    ({"type": "word-count", "value": "4"}, "Word\tWith\tTabs\tHere", True),
    ({"type": "word-count", "value": {"min": 2, "max": 4}}, "a b c", True),
    ({"type": "word-count", "value": {"min": 2}}, "a", False),
    ({"type": "word-count", "value": {"max": 2}}, "  a  b  ", True),
    ({"type": "word-count", "value": 0}, "   ", True),
    ({"type": "not-word-count", "value": {"max": 2}}, "a b c", True),
    # levenshtein: distance <= threshold (promptfoo's default 5)
    ({"type": "levenshtein", "value": "kitten"}, "sitting", True),
    ({"type": "levenshtein", "value": "kitten", "threshold": 2}, "sitting", False),
    ({"type": "levenshtein", "value": "kitten", "threshold": 3}, "sitting", True),
    ({"type": "levenshtein", "value": "hello"}, "hello world, how are you", False),
    # is-refusal: empty output, or refusal phrasing
    ({"type": "is-refusal"}, "", True),
    ({"type": "is-refusal"}, "   \n", True),
    ({"type": "is-refusal"}, "I'm sorry, but I can't help with that.", True),
    ({"type": "is-refusal"}, "I\u2019m unable to provide that information.", True),
    ({"type": "is-refusal"}, "As an AI, I cannot do that", True),
    ({"type": "is-refusal"}, "The capital of France is Paris.", False),
    ({"type": "not-is-refusal"}, "Sure! Here is the recipe.", True),
    ({"type": "not-is-refusal"}, "Sorry, I cannot assist with your request.", False),
]


@pytest.mark.parametrize("spec, output, expected", PROMPTFOO_PAIRS,
                         ids=[f"{s['type']}-{i}" for i, (s, _, _) in enumerate(PROMPTFOO_PAIRS)])
def test_verdicts_match_promptfoo(spec, output, expected):
    passed, reason = check(spec, output)
    assert passed is expected, reason


def test_every_new_type_is_in_the_case_schema():
    from aevolve._gate.assertions import CHECKS
    from aevolve._state import schemas

    for kind in CHECKS:
        for prefix in ("", "not-"):
            case = {"id": "x", "input": 1, "assert": [{"type": prefix + kind}]}
            assert not [i for i in schemas.errors("eval-case", case) if "type" in i.pointer], kind


def test_json_path_compares_type_strictly():
    assert check({"type": "json-path", "path": "$.ok", "value": 1}, '{"ok": true}')[0] is False
    assert check({"type": "json-path", "path": "$.ok", "value": True}, '{"ok": true}')[0] is True


def test_a_word_count_range_upside_down_cannot_be_evaluated():
    with pytest.raises(AssertionSetupError, match=r"min \(5\) is above max \(2\)"):
        check({"type": "word-count", "value": {"min": 5, "max": 2}}, "x")


def test_a_schema_text_that_is_not_a_schema_cannot_be_evaluated():
    with pytest.raises(AssertionSetupError, match="schema must be a mapping"):
        check({"type": "is-json", "value": "just words"}, "{}")


def test_a_long_levenshtein_mismatch_stays_cheap():
    passed, reason = check({"type": "levenshtein", "value": "x" * 6000}, "y" * 9000)
    assert passed is False and "at least 3000" in reason


@pytest.mark.parametrize("returned, threshold, expected", [
    (True, None, True), (False, None, False),
    ("false", None, False), ("FALSE", None, False), ("true", None, True), ("True", None, True),
    ("no", None, False), ("", None, False), (None, None, False),
    ('{"pass": false, "score": 1, "reason": "r"}', None, False),
    ('{"pass": true, "score": 0.2, "reason": "r"}', 0.5, False),
    ("0.9", None, True), ("0.1", None, False),
    (0.7, None, True), (0.7, 0.8, False),
    ({"pass": "false"}, None, False), ({"pass": True}, None, True), ({"score": 0.9}, None, True),
    ((False, "why"), None, False), (("true", "why"), None, True),
    ([1], None, False),
])
def test_python_return_values_read_as_promptfoo_reads_them(returned, threshold, expected):
    from aevolve._gate.assertions import python_verdict

    assert python_verdict(returned, threshold)[0] is expected


def test_a_python_check_returning_the_text_false_fails(tmp_path):
    ctx = AssertContext(exam=_exam_state(tmp_path, "def says_false(output, context):\n    return 'false'\n"))
    passed, reason = check({"type": "python", "value": "evals/checks.py:says_false"}, "x", ctx)
    assert passed is False and "failed" in reason


# -- what a runner prints: trimmed text, its own latency ------------------------------------


@pytest.mark.parametrize("stdout, output", [
    ("hello\n", "hello"), ("\n  hello world \n\n", "hello world"), ("\tx\r\n", "x"),
    ('{"output": "  kept as printed "}', "  kept as printed "),
])
def test_plain_text_output_is_trimmed_at_both_ends_like_promptfoo_exec(stdout, output):
    from aevolve._gate.runner import read_stdout

    assert read_stdout(stdout).output == output


@pytest.mark.parametrize("printed, expected", [(12.5, 12.5), (0, 0.0), (-1, None), ("12", None), (True, None)])
def test_a_runner_may_report_its_own_latency(printed, expected):
    from aevolve._gate.runner import read_stdout

    assert read_stdout(json.dumps({"output": "x", "latency_ms": printed})).latency_ms == expected


def test_a_reported_latency_replaces_the_measured_one_and_says_so(tmp_path):
    from aevolve._gate.runner import RunnerConfig, run_once

    script = tmp_path / "runner.py"
    script.write_text("import json\nprint(json.dumps({'output': 'ok', 'latency_ms': 7}))\n")
    config = RunnerConfig((sys.executable, str(script)), 30.0)
    result = run_once(config, tmp_path, "c1", {})
    assert (result.latency_ms, result.latency_source) == (7.0, "runner")
    passed, reason = evaluate({"type": "latency", "threshold": 5}, result, AssertContext())
    assert passed is False and "7 ms (reported by the runner) > 5 ms" in reason
    assert RunResult.from_dict(result.to_dict()).latency_source == "runner"
