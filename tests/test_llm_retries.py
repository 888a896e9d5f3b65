"""Transient failures are retried by the `openai` client itself; aevolve counts every
request and names every failed attempt. A real HTTP server on 127.0.0.1, the real client."""

from __future__ import annotations

import json
import threading
import time

import pytest

from aevolve._errors import EvolverFailed, UsageError
from aevolve._propose import llm

from conftest import wait_until
from fake_openai import FakeOpenAI

ANSWER = {"pass": True, "reason": "fine"}
MESSAGES = [{"role": "user", "content": "grade this"}]


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def ask(server, **settings) -> llm.JSONAnswer:
    chosen = llm.resolve_settings({}, overrides={"api_key": "test", "model": "fake-model",
                                                 "base_url": server.base_url, **settings}, env={})
    return llm.chat_json(llm.make_client(chosen), chosen.model, MESSAGES, settings=chosen)


def test_a_429_with_retry_after_is_retried_and_answers(server):
    server.error(429, "slow down", headers={"Retry-After": "0.01"}).answer_json(ANSWER)
    answer = ask(server)
    assert answer.data == ANSWER
    assert len(server.requests) == 2 and answer.usage.requests == 2


def test_a_server_error_is_retried_and_answers(server):
    server.error(500, "boom").answer_json(ANSWER)
    answer = ask(server)
    assert answer.data == ANSWER
    assert len(server.requests) == 2 and answer.usage.requests == 2


def test_the_same_request_is_sent_again(server):
    server.error(503).answer_json(ANSWER)
    ask(server)
    assert server.bodies[0] == server.bodies[1]


def test_max_retries_bounds_the_requests_and_every_attempt_is_named(server):
    server.error(429, "slow down", headers={"Retry-After": "0.01"}).error(502, "bad gateway").error(500, "boom")
    with pytest.raises(EvolverFailed) as error:
        ask(server, max_retries=2)
    assert len(server.requests) == 3
    assert ("failed 3 time(s) in a row, giving up (max_retries=2): attempt 1: HTTP 429: slow down; "
            "attempt 2: HTTP 502: bad gateway; attempt 3: HTTP 500: boom") in str(error.value)


def test_no_retries_when_max_retries_is_zero(server):
    server.error(500, "boom").answer_json(ANSWER)
    with pytest.raises(EvolverFailed, match="failed 1 time"):
        ask(server, max_retries=0)
    assert len(server.requests) == 1


def test_a_client_error_is_refused_without_a_retry(server):
    server.error(404, "no such model")
    with pytest.raises(EvolverFailed) as error:
        ask(server)
    assert len(server.requests) == 1
    assert "refused the request: HTTP 404: no such model (unknown model or wrong base URL" in str(error.value)


def test_a_timeout_is_retried_and_reported(server):
    server.answer_json(ANSWER, delay=5).answer_json(ANSWER)
    answer = ask(server, timeout=1.5)  # a total deadline: room for a loaded machine
    assert answer.data == ANSWER and len(server.requests) == 2 and answer.usage.requests == 2


def test_a_repair_round_counts_as_another_answer_not_a_retry(server):
    server.answer("not json").answer_json(ANSWER)
    answer = ask(server)
    assert answer.attempts == 2 and answer.usage.requests == 2


# -- deadlines and bounds ------------------------------------------------------------------


def _client_threads() -> set:
    return {t for t in threading.enumerate() if not t.name.startswith("fake-openai")}


def test_timeout_is_a_total_deadline_not_a_per_read_one(server):
    server.drip(json.dumps(ANSWER), interval=0.2)  # every read succeeds; the whole body takes seconds
    started = time.monotonic()
    with pytest.raises(EvolverFailed) as error:
        ask(server, timeout=1, max_retries=0)
    assert time.monotonic() - started < 30  # a hang detector, not a benchmark
    assert "timed out: no complete answer within timeout=1s" in str(error.value)
    assert server.base_url.split("//")[1] in str(error.value)  # names the endpoint


def test_total_bounds_the_call_with_its_retries_and_waits(server):
    server.error(500, "boom", headers={"Retry-After": "30"}).answer_json(ANSWER)
    chosen = llm.resolve_settings({}, overrides={"api_key": "test", "model": "fake-model",
                                                 "base_url": server.base_url, "max_retries": 3}, env={})
    with pytest.raises(EvolverFailed) as error:
        llm.chat_json(llm.make_client(chosen, total=5), chosen.model, MESSAGES, settings=chosen)
    assert len(server.requests) == 1  # a 30 s wait cannot fit in 5 s: not waited for
    assert "not retried: evolver.timeout=5s leaves no room" in str(error.value)


def test_a_response_over_max_response_bytes_is_refused(server):
    server.answer("x" * 200_000)
    with pytest.raises(EvolverFailed) as error:
        ask(server, max_response_bytes=65536, max_retries=3)
    assert "larger than max_response_bytes=65536" in str(error.value)
    assert len(server.requests) == 1  # not retried: the same endpoint would answer the same


def test_no_watchdog_thread_outlives_a_call(server):
    before = _client_threads()
    server.drip(json.dumps(ANSWER), interval=0.5).answer_json(ANSWER)
    ask(server, timeout=1.5, max_retries=1)
    wait_until(lambda: _client_threads() <= before, timeout=10, what="the call's threads to end")


def test_a_storm_of_identical_failures_is_listed_once(server):
    for _ in range(4):
        server.error(503, "overloaded")
    with pytest.raises(EvolverFailed) as error:
        ask(server, max_retries=3)
    assert "attempts 1-4: HTTP 503: overloaded" in str(error.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "soon"])
def test_a_timeout_that_is_not_a_finite_number_is_a_usage_error(value):
    with pytest.raises(UsageError, match="timeout must be a finite number"):
        llm.resolve_settings({}, overrides={"timeout": value}, env={})


def test_json_nested_deeper_than_the_bound_is_not_usable():
    with pytest.raises(ValueError, match="nested deeper than 200 levels"):
        llm.parse_json_content("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested deeper than 200 levels"):
        llm.parse_json_content("[" * 201 + "]" * 201)
    assert llm.parse_json_content("[" * 200 + "]" * 200) is not None
