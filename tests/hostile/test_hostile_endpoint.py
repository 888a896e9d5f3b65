"""`aevolve propose --evolver openai` against a hostile endpoint (hostile_openai.py, its
own server on 127.0.0.1, the real `openai` client): every misbehaviour ends in a clear
message and its exit code, in bounded time, with no thread left behind and the
repository as it was (no branch, refs identical, fsck clean)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from hostile_openai import THREAD_PREFIX, HostileOpenAI

from aevolve._config import TEMPLATE
from aevolve._state.observations import observe

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli, wait_until

KEY = "sk-hostile-test-key-0123456789abcdef"
FAILURES = [
    {"id": "obs-1", "task": "Can I return shoes after 40 days?", "output": "Yes, of course!",
     "feedback": {"success": False, "detail": "The return window is 30 days."}, "ts": "2025-01-02T10:00:00Z"},
]
GOOD = {
    "title": "remember the 30-day return window",
    "diagnosis": "obs-1 promised a return after 30 days.",
    "change": "Appends one memory entry stating the 30-day window.",
    "expected_effect": "Fixes obs-1.",
    "evidence": ["obs-1"],
    "edits": [{"op": "append-jsonl", "path": "memory/episodic.jsonl",
               "records": [{"id": "m-window", "content": "Returns: 30 days, then store credit."}]}],
}
HANG = 30  # seconds: a hang detector, far above every deadline used here


def make_repo(tmp_path, evolver_timeout: int | None = None):
    files = dict(SAMPLE_STATE)
    if evolver_timeout is not None:
        files["aevolve.yaml"] = TEMPLATE.replace("timeout: 600 ", f"timeout: {evolver_timeout} ", 1)
        assert files["aevolve.yaml"] != TEMPLATE
    root = make_state_repo(tmp_path / "state", files)
    source = tmp_path / "observations.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in FAILURES))
    observe(root, [source])
    return root


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path)


def refs(repo) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def client_threads() -> set:
    return {t for t in threading.enumerate() if not t.name.startswith(THREAD_PREFIX)}


def propose(repo, server, *options: str):
    """`aevolve propose --evolver openai` against `server`: (result, seconds it took)."""
    args = ["propose", "--evolver", "openai", "--base-url", server.base_url, "--model", "hostile-model"]
    for option in options:
        args += ["-o", option]
    started = time.monotonic()
    result = run_cli(*args, cwd=repo, env={"OPENAI_API_KEY": KEY})
    return result, time.monotonic() - started


def assert_refused(repo, before: str, threads: set, result, elapsed: float, code: int = 5) -> str:
    """Exit `code`, no traceback, bounded time, no thread left, the repository unchanged."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < HANG
    assert refs(repo) == before and git(repo, "for-each-ref", "refs/heads/evolve") == ""
    git(repo, "fsck", "--strict", "--no-progress")
    wait_until(lambda: client_threads() <= threads, timeout=10, what="the call's threads to end")
    return result.stderr


def run_refused(repo, server, *options: str, code: int = 5) -> str:
    before, threads = refs(repo), client_threads()
    result, elapsed = propose(repo, server, *options)
    return assert_refused(repo, before, threads, result, elapsed, code)


# -- time ---------------------------------------------------------------------------------


def test_a_dripping_body_ends_at_the_total_deadline(repo):
    with HostileOpenAI("drip", interval=0.2) as server:
        message = run_refused(repo, server, "timeout=2", "max_retries=0")
    assert "timed out: no complete answer within timeout=2s" in message
    assert server.base_url.split("/v1")[0] in message  # names the endpoint


def test_retries_of_a_dripping_body_are_bounded_by_evolver_timeout(tmp_path):
    repo = make_repo(tmp_path, evolver_timeout=4)
    with HostileOpenAI("drip", interval=0.2) as server:
        message = run_refused(repo, server, "timeout=2", "max_retries=20")
    assert "within evolver.timeout=4s (every attempt, retry and wait included)" in message
    assert server.requests <= 3


def test_headers_then_silence_end_at_the_deadline(repo):
    with HostileOpenAI("hang_after_headers") as server:
        message = run_refused(repo, server, "timeout=1", "max_retries=0")
    assert "timed out: no complete answer within timeout=1s" in message


def test_headers_dripped_byte_by_byte_end_at_the_deadline(repo):
    with HostileOpenAI("drip_headers", interval=0.05) as server:
        message = run_refused(repo, server, "timeout=1", "max_retries=1")
    assert "failed 2 time(s)" in message and "timed out: no complete answer within timeout=1s" in message
    assert server.requests == 2


# -- size and shape -------------------------------------------------------------------------


def test_a_50_mb_body_is_refused_after_max_response_bytes(repo):
    with HostileOpenAI("huge", size=50 * 1024 * 1024) as server:
        message = run_refused(repo, server, "max_retries=2")
    assert "larger than max_response_bytes=8388608" in message
    assert server.requests == 1  # not retried: the same endpoint would send the same


def test_a_body_announced_over_the_bound_is_refused_unread(repo):
    with HostileOpenAI("raw", body=b"[" + b" " * 2_000_000 + b"]") as server:
        message = run_refused(repo, server, "max_response_bytes=1048576")
    assert "larger than max_response_bytes=1048576 (it announced 2000002 bytes)" in message


def test_a_200_with_a_body_that_is_not_json_is_exit_5(repo):
    with HostileOpenAI("raw", body=b"<html><body>Welcome to nginx!</body></html>") as server:
        message = run_refused(repo, server)
    assert "answered with a body that is not JSON" in message and "/v1" in message


@pytest.mark.parametrize(("body", "says"), [
    ({"id": "x"}, "the response has no choices"),
    ({"choices": "all of them"}, "choices that are a str, not a list"),
    ({"choices": []}, "an empty list of choices"),
    ({"choices": [7]}, "first choice has no message object"),
    ({"choices": [{"message": {"role": "assistant", "content": None}}]}, "the message content is null"),
    ({"choices": [{"message": {"role": "assistant", "content": ["a"]}}]}, "content is a list, not a string"),
    ({"choices": [{"message": {"role": "assistant", "content": "Sure! {title: oops"}}]}, "not valid JSON"),
], ids=["no-choices", "choices-not-a-list", "no-choice", "choice-not-an-object", "content-null",
        "content-not-a-string", "content-not-json"])
def test_json_of_the_wrong_shape_is_exit_5(repo, body, says):
    with HostileOpenAI("raw", body=json.dumps(body).encode()) as server:
        message = run_refused(repo, server)
    assert "the model's answer was unusable after 2 attempt(s)" in message and says in message
    assert server.requests == 2  # one repair round, then exit 5


def test_content_nested_100k_deep_is_exit_5_not_a_recursion_error(repo):
    with HostileOpenAI("completion", content="[" * 100_000 + "]" * 100_000) as server:
        message = run_refused(repo, server)
    assert "nested deeper than 200 levels" in message and "RecursionError" not in message


def test_a_body_nested_100k_deep_is_exit_5_not_a_recursion_error(repo):
    with HostileOpenAI("raw", body=b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}") as server:
        message = run_refused(repo, server)
    assert "nested too deeply" in message and "RecursionError" not in message


# -- failures the client retries ----------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
def test_a_storm_of_errors_is_bounded_by_max_retries(repo, status):
    with HostileOpenAI("status", status=status) as server:
        message = run_refused(repo, server, "max_retries=3")
    assert server.requests == 4
    assert f"failed 4 time(s) in a row, giving up (max_retries=3): attempts 1-4: HTTP {status}" in message


def test_a_retry_after_past_evolver_timeout_is_not_waited_for(tmp_path):
    repo = make_repo(tmp_path, evolver_timeout=5)
    with HostileOpenAI("status", status=503, headers={"Retry-After": "100"}) as server:
        message = run_refused(repo, server, "max_retries=4")
    assert server.requests == 1
    assert "not retried: evolver.timeout=5s leaves no room for the client's wait (retry-after: 100)" in message


def test_a_connection_reset_mid_body_is_retried_then_exit_5(repo):
    with HostileOpenAI("reset") as server:
        message = run_refused(repo, server, "max_retries=1")
    assert server.requests == 2
    assert "failed 2 time(s)" in message and "connection failed" in message


# -- what the model says -------------------------------------------------------------------------


def test_an_answer_echoing_the_api_key_is_refused_without_showing_it(repo):
    echo = {**GOOD, "diagnosis": f"I was called with {KEY}."}
    with HostileOpenAI("completion", content=json.dumps(echo)) as server:
        message = run_refused(repo, server)
    assert "$OPENAI_API_KEY" in message and "the rationale's Diagnosis" in message
    assert KEY not in message


def test_escape_sequences_in_the_title_reach_neither_the_commit_nor_the_terminal(repo):
    hostile = {**GOOD, "title": "fix \x1b[31mred\x1b[0m \x1b]0;owned\x07window\x9b2J now",
               "diagnosis": "obs-1 \x1b[2Jcleared the screen\x07 and rang\r\nthe bell."}
    with HostileOpenAI("completion", content=json.dumps(hostile)) as server:
        result, _ = propose(repo, server)
    assert result.returncode == 0, result.stderr
    (branch,) = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/evolve").splitlines()
    message = git(repo, "log", "-1", "--format=%B", branch)
    for text in (branch, message, result.stdout, result.stderr):
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text and "\r" not in text
    assert message.startswith("evolve(memory): fix red window now")
    assert "cleared the screen and rang\nthe bell." in message
    git(repo, "fsck", "--strict", "--no-progress")


# -- the command line -------------------------------------------------------------------------


def test_an_unclosed_bracket_in_an_option_is_a_usage_error(repo):
    before = refs(repo)
    result = run_cli("propose", "--evolver", "openai", "-o", "x=[unclosed", cwd=repo, env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "-o x: malformed YAML" in result.stderr
    assert refs(repo) == before


def test_an_alias_bomb_in_an_option_is_a_usage_error(repo):
    bomb = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x]"] + [
        f"&{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]) + "]"
    before = refs(repo)
    # a separate process with a memory limit: an expanded bomb must fail the test, not the machine
    result = subprocess.run([sys.executable, "-c", LIMITED, "propose", "--evolver", "openai", "-o", f"model={bomb}"],
                            cwd=repo, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "OPENAI_API_KEY": KEY})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "-o model: YAML alias expansion exceeds" in result.stderr
    assert refs(repo) == before


LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from aevolve.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("value", [".nan", ".inf", "-1", "soon"])
def test_a_timeout_option_that_is_not_a_positive_finite_number_is_a_usage_error(repo, value):
    result = run_cli("propose", "--evolver", "openai", "-o", f"timeout={value}", cwd=repo,
                     env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "openai timeout must be" in result.stderr
