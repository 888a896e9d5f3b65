"""Transient failures are retried by the `openai` client itself; aevolve counts every
request and names every failed attempt. A real HTTP server on 127.0.0.1, the real client."""

from __future__ import annotations

import pytest

from aevolve._errors import EvolverFailed
from aevolve._propose import llm

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
    server.answer_json(ANSWER, delay=3).answer_json(ANSWER)
    answer = ask(server, timeout=0.2)
    assert answer.data == ANSWER and len(server.requests) == 2 and answer.usage.requests == 2


def test_a_repair_round_counts_as_another_answer_not_a_retry(server):
    server.answer("not json").answer_json(ANSWER)
    answer = ask(server)
    assert answer.attempts == 2 and answer.usage.requests == 2
