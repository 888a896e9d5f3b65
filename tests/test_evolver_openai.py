"""The `openai` evolver against a real HTTP server on 127.0.0.1, driven by the real
`openai` client, end to end through `aevolve._propose.run.propose` on real repositories.

Only the model's answers are scripted (tests/fake_openai.py); every proposal
either ends in a commit on an evolve/ branch or in a clear refusal that leaves
no branch behind and `main` where it was.
"""

from __future__ import annotations

import json

import pytest

from aevolve._config import resolve as resolve_config
from aevolve._errors import EvolverFailed, PolicyRefused, UsageError
from aevolve._propose import llm
from aevolve._propose.run import propose
from aevolve._state.observations import observe

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli
from fake_openai import FakeOpenAI

FAILURES = [
    {"id": "obs-1", "task": "Can I return shoes after 40 days?", "output": "Yes, of course!",
     "feedback": {"success": False, "score": 0, "detail": "The return window is 30 days; offer store credit.",
                  "expected": "No: returns are accepted within 30 days; offer store credit."},
     "tags": ["refund"], "ts": "2025-01-02T10:00:00Z"},
    {"id": "obs-2", "task": "Return a jacket bought 45 days ago?", "output": "Sure.",
     "feedback": {"success": False, "detail": "Past 30 days only store credit is possible."},
     "tags": ["refund"], "ts": "2025-01-03T10:00:00Z"},
    {"id": "obs-3", "task": "What is 2+2?", "output": "4", "feedback": {"success": True}, "ts": "2025-01-01T10:00:00Z"},
]

GOOD = {
    "title": "remember the 30-day return window",
    "diagnosis": "obs-1 and obs-2 promised returns after 30 days: the agent has no memory of the window.",
    "change": "Appends one memory entry stating the 30-day window and the store-credit fallback.",
    "expected_effect": "Fixes obs-1 and obs-2; arithmetic is untouched.",
    "evidence": ["obs-1", "obs-2"],
    "edits": [{"op": "append-jsonl", "path": "memory/episodic.jsonl",
               "records": [{"id": "m-window", "content": "After 30 days, offer store credit instead of a refund."}]}],
}

FAST = {"api_key": "test", "model": "fake-model", "base_delay": 0.005, "max_delay": 0.05}


def with_edits(*edits) -> dict:
    return {**GOOD, "edits": list(edits)}


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def ingest(repo, tmp_path, records=FAILURES):
    source = tmp_path / "observations.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    observe(repo, [source])


@pytest.fixture
def repo(tmp_path):
    root = make_state_repo(tmp_path / "state")
    ingest(root, tmp_path)
    return root


def options(server, **extra) -> dict:
    return {**FAST, "base_url": server.base_url, **extra}


def evolve_branches(repo) -> str:
    return git(repo, "for-each-ref", "refs/heads/evolve")


def assert_nothing_left(repo, main_before: str) -> None:
    assert evolve_branches(repo) == ""
    assert git(repo, "rev-parse", "main") == main_before
    assert git(repo, "status", "--porcelain") == ""


# -- good answers ------------------------------------------------------------------------


def test_a_good_answer_becomes_a_commit_on_an_evolve_branch_with_the_models_rationale(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer_json(GOOD, usage={"prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980})

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.branch.startswith("evolve/") and result.commit
    assert git(repo, "rev-parse", f"refs/heads/{result.branch}") == result.commit
    assert git(repo, "rev-parse", "main") == main_before
    message = git(repo, "log", "-1", "--format=%B", result.commit)
    assert message.startswith("evolve(memory): remember the 30-day return window")
    assert GOOD["diagnosis"] in message
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", result.commit)
    assert "Aevolve-Evolver: openai/fake-model" in trailers
    assert "Aevolve-Evidence: obs-1, obs-2" in trailers
    memory = git(repo, "show", f"{result.commit}:memory/episodic.jsonl")
    assert "m-window" in memory and "m-1" in memory
    assert result.proposal.usage["total_tokens"] == 980
    assert result.proposal.usage["requests"] == 1


def test_the_request_asks_for_structured_output_against_the_proposal_schema(repo, server):
    server.answer_json(GOOD)

    propose(repo, evolver="openai", evolver_options=options(server, temperature=0.7))

    (body,) = server.bodies
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0.7
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "proposal"
    assert set(fmt["json_schema"]["schema"]["required"]) == {"title", "diagnosis", "change", "expected_effect", "edits"}
    system, user = body["messages"]
    assert system["role"] == "system" and "evals/" in system["content"] and "aevolve.yaml" in system["content"]
    assert "memory/" in system["content"]  # the evolvable layers from the manifest
    assert user["role"] == "user"
    assert "obs-1" in user["content"] and "The return window is 30 days" in user["content"]
    assert "obs-3" not in user["content"]  # only failures are evidence
    assert "refund-policy" in user["content"] and "Shoes can be returned" in user["content"]


def test_an_answer_in_a_json_code_fence_is_accepted(repo, server):
    server.answer("```json\n" + json.dumps(GOOD, indent=2) + "\n```")

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.commit and len(server.requests) == 1


def test_evidence_the_model_invents_is_dropped_not_replaced_by_every_failure(repo, server):
    server.answer_json({**GOOD, "evidence": ["obs-999"]})

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.rationale.evidence == []
    assert "Aevolve-Evidence: none" in result.message


def test_only_the_evidence_the_model_cites_is_kept(repo, server):
    server.answer_json({**GOOD, "evidence": ["obs-999", "obs-1"]})

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.rationale.evidence == ["obs-1"]


def test_seed_zero_is_sent_to_the_endpoint(repo, server):
    server.answer_json(GOOD)

    propose(repo, evolver="openai", evolver_options=options(server), seed=0)

    assert server.bodies[0]["seed"] == 0


# -- unusable answers --------------------------------------------------------------------


def test_invalid_json_twice_is_refused_with_the_parse_error_and_nothing_left(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer("Sure! Here is my proposal: {title: oops").answer("still {not json")

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server))

    assert error.value.exit_code == 5
    assert "not valid JSON" in str(error.value) and "line 1 column" in str(error.value)
    assert len(server.requests) == 2
    repair = server.bodies[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here is my proposal: {title: oops"}
    assert "could not be used" in repair[-1]["content"] and "not valid JSON" in repair[-1]["content"]
    assert_nothing_left(repo, main_before)


def test_one_repair_round_turns_a_broken_answer_into_a_commit(repo, server):
    server.answer("not json at all").answer_json(GOOD)

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.commit
    assert result.proposal.usage["answers"] == 2
    assert result.proposal.usage["total_tokens"] == 240  # summed over both answers


def test_a_schema_violating_answer_is_refused_naming_what_is_wrong(repo, server):
    main_before = git(repo, "rev-parse", "main")
    bad = {"title": "x" * 150, "diagnosis": "d", "change": "c", "expected_effect": "e", "edits": []}
    server.answer_json(bad).answer_json(bad)

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server))

    text = str(error.value)
    assert "/title: too long: 150 characters" in text
    assert "/edits" in text
    assert "one repair retry" in text
    assert "/title: too long" in server.bodies[1]["messages"][-1]["content"]  # the errors were fed back
    assert_nothing_left(repo, main_before)


def test_an_answer_cut_off_at_the_token_limit_says_so(repo, server):
    cut = json.dumps(GOOD)[:120]
    server.answer(cut, finish_reason="length").answer(cut, finish_reason="length")

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server, max_output_tokens=50))

    assert "cut off at max_output_tokens=50" in str(error.value)
    assert server.bodies[0]["max_tokens"] == 50
    assert evolve_branches(repo) == ""


def test_an_answer_that_edits_evals_is_refused_by_the_policy(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer_json(with_edits({"op": "write", "path": "evals/basic.yaml", "content": "[]\n"}))

    with pytest.raises(PolicyRefused) as error:
        propose(repo, evolver="openai", evolver_options=options(server))

    assert error.value.exit_code == 4
    assert "evals/basic.yaml" in str(error.value)
    assert_nothing_left(repo, main_before)


def test_an_answer_with_dot_dot_paths_is_refused_by_the_policy(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer_json(with_edits({"op": "write", "path": "memory/../../outside.txt", "content": "x\n"}))

    with pytest.raises(PolicyRefused) as error:
        propose(repo, evolver="openai", evolver_options=options(server))

    assert "'..'" in str(error.value)
    assert_nothing_left(repo, main_before)
    assert not (repo.parent / "outside.txt").exists()


# -- transient failures ------------------------------------------------------------------


def test_a_429_is_retried_and_then_the_answer_is_committed(repo, server):
    server.error(429, "slow down", headers={"Retry-After": "0"}).answer_json(GOOD)

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.commit
    assert len(server.requests) == 2
    assert server.bodies[0] == server.bodies[1]  # the same request, sent again
    assert result.proposal.usage["requests"] == 2


def test_server_errors_are_retried_up_to_max_retries_then_refused(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.error(500).error(502).error(503)

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server, max_retries=2))

    assert len(server.requests) == 3
    text = str(error.value)
    assert "failed 3 time(s)" in text and "HTTP 500" in text and "HTTP 503" in text
    assert_nothing_left(repo, main_before)


def test_a_timeout_is_retried_then_reported_clearly(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer_json(GOOD, delay=3).answer_json(GOOD, delay=3)

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server, timeout=0.1, max_retries=1))

    assert len(server.requests) == 2
    assert "timed out" in str(error.value) and "max_retries=1" in str(error.value)
    assert_nothing_left(repo, main_before)


def test_a_rejected_key_is_not_retried(repo, server):
    server.error(401, "invalid api key")

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server))

    assert len(server.requests) == 1
    assert "HTTP 401" in str(error.value) and "invalid api key" in str(error.value)


def test_a_missing_key_names_the_variable_and_sends_nothing(repo, server):
    main_before = git(repo, "rev-parse", "main")

    with pytest.raises(UsageError) as error:
        propose(repo, evolver="openai", evolver_options={"base_url": server.base_url})

    assert error.value.exit_code == 2
    assert "OPENAI_API_KEY" in str(error.value)
    assert server.requests == []
    assert_nothing_left(repo, main_before)


def test_aevolve_yaml_chooses_model_and_key_variable_over_the_environment(tmp_path, server, monkeypatch):
    from aevolve._config import TEMPLATE

    files = {
        **SAMPLE_STATE,
        "aevolve.yaml": TEMPLATE.replace("model: null ", "model: yaml-model ")
                                .replace("api_key_env: OPENAI_API_KEY", "api_key_env: MY_LLM_KEY"),
    }
    root = make_state_repo(tmp_path / "state", files)
    ingest(root, tmp_path)
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-variable")
    monkeypatch.setenv("MY_LLM_KEY", "right-key")
    server.answer_json(GOOD)

    result = propose(root, evolver="openai", evolver_options={"base_delay": 0.005})

    assert server.bodies[0]["model"] == "yaml-model"
    assert server.requests[0]["headers"]["authorization"] == "Bearer right-key"
    assert result.rationale.evolver == "openai/yaml-model"


def test_settings_precedence_is_option_then_file_then_environment_then_default():
    env = {"OPENAI_MODEL": "env-model", "OPENAI_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "key-from-env-42"}
    silent = llm.resolve_settings({}, env=env)
    assert (silent.model, silent.base_url) == ("env-model", "http://env/v1")
    from_file = llm.resolve_settings({"evolver": {"openai": {"model": "file-model"}}}, env=env)
    assert from_file.model == "file-model"
    # the aevolve.yaml that `aevolve init` writes leaves the model null, so OPENAI_MODEL applies
    template = llm.resolve_settings(resolve_config({}), env=env)
    assert template.model == "env-model"
    option = llm.resolve_settings({"evolver": {"openai": {"model": "file"}}}, overrides={"model": "cli"}, env=env)
    assert option.model == "cli"
    assert llm.resolve_settings({}, env={}).model == "gpt-4.1-mini"
    assert silent.api_key == "key-from-env-42"
    assert "key-from-env-42" not in repr(silent) and "api_key" not in silent.public()


def test_no_failed_observations_means_nothing_to_do_and_no_request(tmp_path, server):
    root = make_state_repo(tmp_path / "state")
    ingest(root, tmp_path, [FAILURES[2]])

    result = propose(root, evolver="openai", evolver_options=options(server))

    assert result.nothing_to_do and "no failed observations" in result.reason
    assert server.requests == [] and evolve_branches(root) == ""


# -- what is sent ------------------------------------------------------------------------

OPENAI_LIKE = "sk-proj-" + "Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9f"
GITHUB_LIKE = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx9" + "Z" * 60 + "\n-----END RSA PRIVATE KEY-----"


def test_requests_stay_within_the_budget_and_carry_no_secret(tmp_path, server, monkeypatch):
    files = dict(SAMPLE_STATE)
    for i in range(300):  # far more state than the budget can show
        files[f"skills/skill-{i:03d}/SKILL.md"] = (
            f"---\nname: skill-{i:03d}\ndescription: Skill number {i} about topic {i % 17}.\n---\n\n"
            + f"# Skill {i}\n" + "Some guidance line.\n" * 80
        )
    files["skills/leaky/SKILL.md"] = (
        "---\nname: leaky\ndescription: Refund returns window store credit helper.\n---\n\n"
        f"Use the key {OPENAI_LIKE} to call the refunds API.\n{PRIVATE_KEY}\n"
    )
    files["prompts/system.md"] = f"You are a support agent.\napi_key = \"{GITHUB_LIKE}\"\n"
    files["memory/episodic.jsonl"] = "".join(
        json.dumps({"id": f"m-{i}", "content": f"Fact {i} " + "x" * 200}) + "\n" for i in range(200)
    )
    root = make_state_repo(tmp_path / "state", files)
    run_key = "sk-test-the-real-key-of-this-run-0123456789"  # no pattern matches it: only the literal check
    leaky = {**FAILURES[0], "output": f"My token is {GITHUB_LIKE}, returns are fine."}
    echo = {**FAILURES[1], "feedback": {"success": False, "detail": f"the agent printed {run_key}"}}
    ingest(root, tmp_path, [leaky, echo])
    monkeypatch.setenv("OPENAI_API_KEY", run_key)
    budget = 12000
    server.answer("nope").answer_json(GOOD)  # a repair round too: it must fit the budget as well

    propose(root, evolver="openai", evolver_options={
        **options(server), "api_key": None, "budget_chars": budget,
    })

    assert len(server.requests) == 2
    for body in server.bodies:
        assert sum(len(m["content"]) for m in body["messages"]) <= budget
        sent = json.dumps(body)
        for secret in (OPENAI_LIKE, GITHUB_LIKE, "MIIEowIBAAKCAQEA", "sk-test-the-real-key-of-this-run"):
            assert secret not in sent
        assert "[REDACTED]" in sent
    user = server.bodies[0]["messages"][1]["content"]
    assert "more skills not listed" in user or "more skill bodies not shown" in user
    assert "- leaky:" in user  # the most relevant skill comes first
    assert "m-199" in user  # the memory tail: newest records


def test_too_small_a_budget_is_a_usage_error_before_any_request(repo, server):
    with pytest.raises(UsageError) as error:
        propose(repo, evolver="openai", evolver_options=options(server, budget_chars=1000))

    assert "budget_chars=1000 is too small" in str(error.value)
    assert server.requests == []


def test_gate_reports_of_rejected_proposals_are_fed_back(repo, server):
    rejected = {
        "version": 1, "candidate": "a" * 40, "decision": "reject", "title": "tell everyone yes",
        "reasons": ["1 case regressed: refund-window"], "regressions": ["refund-window"],
        "cases": [{"id": "refund-window", "verdict": "regression",
                   "candidate": {"failures": ["expected output to contain '30 days'"]}}],
    }
    server.answer_json(GOOD)

    propose(repo, evolver="openai", evolver_options=options(server), history=[rejected])

    user = server.bodies[0]["messages"][1]["content"]
    assert "Gate reports of earlier proposals that were rejected or gained nothing" in user
    assert "tell everyone yes" in user and "1 case regressed: refund-window" in user
    assert "expected output to contain '30 days'" in user


# -- the command line --------------------------------------------------------------------


def _cli_env(server) -> dict:
    return {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test", "OPENAI_MODEL": "cli-model"}


def test_cli_propose_openai_json_reports_branch_and_usage(repo, server):
    server.answer_json(GOOD, usage={"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050})

    proc = run_cli("propose", "--evolver", "openai", "--json", cwd=repo, env=_cli_env(server))

    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["branch"].startswith("evolve/")
    assert out["usage"]["total_tokens"] == 1050 and out["usage"]["prompt_tokens"] == 1000
    assert out["rationale"]["evolver"] == "openai/cli-model"
    assert git(repo, "rev-parse", f"refs/heads/{out['branch']}") == out["commit"]


def test_cli_garbage_answers_exit_5_without_a_traceback(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer("garbage").answer("more garbage")

    proc = run_cli("propose", "--evolver", "openai", cwd=repo, env=_cli_env(server))

    assert proc.returncode == 5
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert_nothing_left(repo, main_before)


def test_cli_without_a_key_exits_2_naming_the_variable(repo, server):
    proc = run_cli("propose", "--evolver", "openai", cwd=repo, env={"OPENAI_BASE_URL": server.base_url})

    assert proc.returncode == 2
    assert "OPENAI_API_KEY" in proc.stderr
    assert server.requests == []


def test_cli_model_and_base_url_flags_beat_the_environment(repo, server):
    server.answer_json(GOOD)
    env = {**_cli_env(server), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}  # nothing listens there

    proc = run_cli("propose", "--evolver", "openai", "--model", "flag-model", "--base-url", server.base_url,
                   "-o", "max_retries=0", "--json", cwd=repo, env=env)

    assert proc.returncode == 0, proc.stderr
    assert server.bodies[0]["model"] == "flag-model"
    assert json.loads(proc.stdout)["rationale"]["evolver"] == "openai/flag-model"


def test_cli_unknown_openai_option_is_a_usage_error(repo, server):
    proc = run_cli("propose", "--evolver", "openai", "-o", "modle=x", cwd=repo, env=_cli_env(server))

    assert proc.returncode == 2
    assert "unknown openai evolver option(s): modle" in proc.stderr and "Traceback" not in proc.stderr
    assert server.requests == []


# -- secrets never leave the machine -----------------------------------------------------

RUN_KEY = "sk-run-key-of-this-machine-0123456789"  # no pattern matches it: only its value is known


def _objects(repo) -> str:
    return git(repo, "count-objects", "-v")


def test_cli_an_answer_that_echoes_the_api_key_exits_5_and_writes_nothing(repo, server, monkeypatch, capsys):
    from aevolve.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", RUN_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    server.answer_json({**GOOD, "diagnosis": f"I authenticated with {RUN_KEY}; obs-1 and obs-2 failed."})
    main_before, objects_before = git(repo, "rev-parse", "main"), _objects(repo)

    with pytest.raises(SystemExit) as exited:
        main(["-C", str(repo), "propose", "--evolver", "openai"])

    assert exited.value.code == 5
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {RUN_KEY}"  # the key it echoed is the one sent
    err = capsys.readouterr().err
    assert "contains the value of $OPENAI_API_KEY (in the rationale's Diagnosis)" in err
    assert "nothing was written" in err and RUN_KEY not in err
    assert_nothing_left(repo, main_before)
    assert _objects(repo) == objects_before
    git(repo, "fsck", "--strict")


def test_an_answer_that_writes_the_api_key_into_an_edit_is_refused_naming_the_edit(repo, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", RUN_KEY)
    main_before = git(repo, "rev-parse", "main")
    leaky = {"op": "append-jsonl", "path": "memory/episodic.jsonl", "records": [{"id": "m-key", "content": RUN_KEY}]}
    server.answer_json(with_edits(leaky))

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options={**options(server), "api_key": None})

    assert error.value.exit_code == 5
    assert "$OPENAI_API_KEY (in edit 1 (memory/episodic.jsonl))" in str(error.value)
    assert RUN_KEY not in str(error.value)
    assert_nothing_left(repo, main_before)


def test_the_key_variable_aevolve_yaml_names_is_guarded_whatever_its_name(tmp_path, server, monkeypatch):
    from aevolve._config import TEMPLATE

    files = {**SAMPLE_STATE,
             "aevolve.yaml": TEMPLATE.replace("api_key_env: OPENAI_API_KEY", "api_key_env: LLM_CREDENTIAL")}
    root = make_state_repo(tmp_path / "state", files)
    ingest(root, tmp_path)
    monkeypatch.setenv("LLM_CREDENTIAL", "cred-of-this-run-42")
    server.answer_json({**GOOD, "change": "Appends a memory entry (sent with cred-of-this-run-42)."})

    with pytest.raises(EvolverFailed) as error:
        propose(root, evolver="openai", evolver_options={"base_url": server.base_url, "base_delay": 0.005})

    assert "$LLM_CREDENTIAL (in the rationale's Change)" in str(error.value)
    assert evolve_branches(root) == ""


def test_an_unusable_answer_that_quotes_the_key_is_reported_without_it(repo, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", RUN_KEY)
    bad = {**GOOD, "evidence": [RUN_KEY, RUN_KEY]}  # the schema error message quotes the duplicate items
    server.answer_json(bad).answer_json(bad)

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options={**options(server), "api_key": None})

    assert "non-unique elements" in str(error.value)
    assert RUN_KEY not in str(error.value) and "[REDACTED]" in str(error.value)


# -- bounds ------------------------------------------------------------------------------


def test_the_whole_call_is_bounded_by_evolver_timeout(tmp_path, server):
    from aevolve._config import TEMPLATE

    files = {**SAMPLE_STATE, "aevolve.yaml": TEMPLATE.replace("timeout: 600 ", "timeout: 3 ", 1)}
    root = make_state_repo(tmp_path / "state", files)
    ingest(root, tmp_path)
    main_before = git(root, "rev-parse", "main")
    for _ in range(6):
        server.answer_json(GOOD, delay=10)

    with pytest.raises(EvolverFailed) as error:
        propose(root, evolver="openai", evolver_options=options(server, timeout=2, max_retries=5))

    assert "within evolver.timeout=3s" in str(error.value)
    assert len(server.requests) <= 2
    assert_nothing_left(root, main_before)


def test_max_response_bytes_bounds_what_is_read_of_an_answer(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer_json({**GOOD, "diagnosis": "d" * 5000})

    with pytest.raises(EvolverFailed) as error:
        propose(repo, evolver="openai", evolver_options=options(server, max_response_bytes=2048))

    assert "larger than max_response_bytes=2048" in str(error.value)
    assert_nothing_left(repo, main_before)


def test_escape_sequences_and_control_characters_leave_the_rationale(repo, server):
    server.answer_json({**GOOD, "title": "fix\x1b[1m the\x1b[0m\twindow\x07",
                        "change": "Appends\x1b]8;;http://x\x1b\\ one entry.\r\nNothing else."})

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert result.rationale.title == "fix the window"
    message = git(repo, "log", "-1", "--format=%B", result.commit)
    assert "Appends one entry.\nNothing else." in message
    assert not any(c in message for c in "\x1b\x07\r\x9b")


# -- edits that do not need the whole file; no write over what the model saw cut -------------------

SKILL = "skills/refund-policy/SKILL.md"


def test_a_write_to_a_skill_shown_without_its_front_matter_is_sent_back_and_replace_is_used(repo, server):
    clobber = with_edits({"op": "write", "path": SKILL, "content": "# Refund policy\nStore credit after 30 days.\n"})
    fixed = with_edits({"op": "replace", "path": SKILL, "old": "Returns are accepted within 30 days with a receipt.",
                        "content": "Returns are accepted within 30 days with a receipt; after that, store credit."})
    server.answer_json(clobber).answer_json(fixed)

    result = propose(repo, evolver="openai", evolver_options=options(server))

    repair = server.bodies[1]["messages"][-1]["content"]
    assert f"a write would replace all of {SKILL}" in repair and "`replace`" in repair
    skill = git(repo, "show", f"{result.commit}:{SKILL}")
    assert "name: refund-policy" in skill and "after that, store credit." in skill


def test_a_write_to_a_file_shown_truncated_is_refused(tmp_path, server):
    long_prompt = "You are a support agent.\n" + "".join(f"Rule {n}: be precise about item {n}.\n" for n in range(3000))
    root = make_state_repo(tmp_path / "state", {"prompts/system.md": long_prompt})
    ingest(root, tmp_path)
    main_before = git(root, "rev-parse", "main")
    clobber = with_edits({"op": "write", "path": "prompts/system.md", "content": "You are a support agent.\n"})
    server.answer_json(clobber).answer_json(clobber)

    with pytest.raises(EvolverFailed) as error:
        propose(root, evolver="openai", evolver_options=options(server, budget_chars=20000))

    assert "prompts/system.md, which was shown to you cut or in part" in str(error.value)
    assert "truncated" in server.bodies[0]["messages"][1]["content"]
    assert_nothing_left(root, main_before)


def test_a_write_to_a_file_shown_whole_is_allowed(repo, server):
    server.answer_json(with_edits({"op": "write", "path": "prompts/system.md", "content": "Answer precisely.\n"}))

    result = propose(repo, evolver="openai", evolver_options=options(server))

    assert git(repo, "show", f"{result.commit}:prompts/system.md") == "Answer precisely."
    assert len(server.bodies) == 1


def test_append_adds_a_section_to_a_file_without_the_whole_file(repo, server):
    section = "## After 30 days\nOffer store credit.\n"
    server.answer_json(with_edits({"op": "append", "path": SKILL, "content": section}))

    result = propose(repo, evolver="openai", evolver_options=options(server))

    skill = git(repo, "show", f"{result.commit}:{SKILL}")
    assert "Returns are accepted within 30 days" in skill and skill.endswith("Offer store credit.")


def test_a_replace_whose_span_is_not_in_the_file_is_refused_by_the_policy(repo, server):
    main_before = git(repo, "rev-parse", "main")
    server.answer_json(with_edits({"op": "replace", "path": "prompts/system.md", "old": "Answer at length.",
                                   "content": "Answer briefly."}))

    with pytest.raises(PolicyRefused) as error:
        propose(repo, evolver="openai", evolver_options=options(server))

    assert "found 0 times" in str(error.value)
    assert_nothing_left(repo, main_before)


def test_the_system_message_offers_replace_and_append(repo, server):
    server.answer_json(GOOD)

    propose(repo, evolver="openai", evolver_options=options(server))

    system = server.bodies[0]["messages"][0]["content"]
    assert "`replace` (path + old" in system and "`append` (path + content" in system
