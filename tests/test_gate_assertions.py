"""Assertions: each type, negation, the JSON path reader, python checks, the LLM rubric."""

from __future__ import annotations

import json
import os
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


def test_grade_collects_every_failed_reason():
    ok, failures = grade([{"type": "contains", "value": "a"}, {"type": "contains", "value": "z"},
                          {"type": "starts-with", "value": "q"}], run("abc"), AssertContext())
    assert ok is False and len(failures) == 2 and "'z'" in failures[0]


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
