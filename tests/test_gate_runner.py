"""The runner contract with real processes: state dir, stdin, timeouts, crashes."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from aevolve._gate.materialize import CONCURRENT_CHANGE, materialize, trees_dir
from aevolve._gate.run import gate
from aevolve._gate.runner import RunnerConfig, RunResult, parse_stdout, run_once, tampered

from conftest import alive, wait_until
from gate_support import GateRepo, cases_yaml

PROBE = """\
import json, os, sys
data = json.load(sys.stdin)
print(json.dumps({"output": {"cwd": os.getcwd(), "state": os.environ["AEVOLVE_STATE_DIR"],
                             "case": os.environ["AEVOLVE_CASE_ID"], "input": data,
                             "writable": os.access(os.environ["AEVOLVE_STATE_DIR"], os.W_OK),
                             "prompt": open("prompts/system.md").read()},
                  "cost": 0.5, "steps": ["a"]}))
"""


def test_runner_gets_the_materialized_tree_its_case_and_input(tmp_path, state_repo):
    from aevolve._git.repo import Repo

    repo = Repo.open(state_repo)
    root = materialize(repo, str(repo.tree("main").id))
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = run_once(RunnerConfig((sys.executable, str(probe)), 20), root, "case-1", {"q": "é"})
    assert result.status == "ok" and result.cost == 0.5 and result.steps == ["a"]
    seen = json.loads(result.output)
    assert seen["cwd"] == str(root) == seen["state"]
    assert Path(seen["state"]).resolve() != state_repo.resolve()
    assert seen["case"] == "case-1" and seen["input"] == {"q": "é"}
    assert os.stat(seen["state"]).st_mode & 0o222 == 0  # read-only (mode bits: root ignores them)
    assert seen["prompt"] == (state_repo / "prompts/system.md").read_text()
    assert result.latency_ms > 0


def test_plain_text_and_json_stdout():
    assert parse_stdout("hello\n") == ("hello", None, None)
    assert parse_stdout('{"output": "hi", "cost": 2}') == ("hi", 2.0, None)
    assert parse_stdout('{"answer": 1}') == ('{"answer": 1}', None, None)  # JSON without "output" is text
    assert parse_stdout('{"output": {"a": 1}}')[0] == '{"a": 1}'


def test_materialized_tree_is_read_only_and_shared(state_repo):
    from aevolve._git.repo import Repo

    repo = Repo.open(state_repo)
    tree = str(repo.tree("main").id)
    roots = []
    threads = [threading.Thread(target=lambda: roots.append(materialize(repo, tree))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(roots)) == 1 and roots[0] == trees_dir(repo) / tree
    assert [p.name for p in trees_dir(repo).iterdir()] == [tree]  # losers cleaned up their temp copies
    assert (roots[0] / "memory/episodic.jsonl").read_bytes() == (state_repo / "memory/episodic.jsonl").read_bytes()
    assert os.stat(roots[0] / "prompts").st_mode & 0o222 == 0
    assert os.stat(roots[0] / "prompts/system.md").st_mode & 0o222 == 0


def test_hanging_runner_is_killed_with_its_child_and_is_an_error(tmp_path):
    g = GateRepo(tmp_path, {"a": "right", "h": "right"}, cases_yaml("a", "h"), timeout=1.2)
    g.answers_branch("evolve/hang", a="right", h="HANG")
    report = gate(g.repo, "evolve/hang")
    child = int(Path(str(g.log) + ".child").read_text())
    assert not alive(child)
    entry = next(c for c in report.cases if c["id"] == "h")
    assert entry["verdict"] == "error" and entry["regressed"] is True
    assert report.decision == "reject"
    [error] = report.errors
    assert error["case"] == "h" and error["side"] == "candidate" and "timed out after 1.2s" in error["error"]


def test_crashing_runner_is_an_error_with_its_stderr_not_a_failure(tmp_path):
    g = GateRepo(tmp_path, {"a": "right", "c": "right"}, cases_yaml("a", "c"))
    g.answers_branch("evolve/crash", a="right", c="CRASH")
    report = gate(g.repo, "evolve/crash")
    entry = next(c for c in report.cases if c["id"] == "c")
    assert entry["verdict"] == "error" and entry["candidate"]["errors"] == 1
    assert entry["candidate"]["failures"] == ["runner error: runner exited with status 3"]
    [error] = report.errors
    assert error["exit_code"] == 3 and "agent blew up" in error["stderr"]
    assert "1 by runner errors" in report.reasons[0]
    assert "Runner errors (not assertion failures):" in report.render_text()


def test_runner_that_cannot_start_is_an_error(tmp_path, state_repo):
    from aevolve._git.repo import Repo

    repo = Repo.open(state_repo)
    root = materialize(repo, str(repo.tree("main").id))
    result = run_once(RunnerConfig((str(tmp_path / "missing-program"),), 5), root, "x", {})
    assert result.status == "error" and "cannot start runner" in result.error


def _root(state_repo):
    from aevolve._git.repo import Repo

    repo = Repo.open(state_repo)
    return materialize(repo, str(repo.tree("main").id))


def test_a_runner_that_is_not_found_is_a_start_error(state_repo):
    result = run_once(RunnerConfig(("definitely-not-a-command-xyz",), 5), _root(state_repo), "x", {})
    assert (result.status, result.error_kind) == ("error", "start")
    assert "cannot start runner 'definitely-not-a-command-xyz'" in result.error


def test_a_runner_that_is_not_executable_or_has_no_state_dir_is_a_start_error(tmp_path, state_repo):
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    assert run_once(RunnerConfig((str(script),), 5), _root(state_repo), "x", {}).error_kind == "start"
    config = RunnerConfig((sys.executable, "-c", "print(1)"), 5)
    assert run_once(config, tmp_path / "no-such-dir", "x", {}).error_kind == "start"


def test_a_non_zero_exit_is_an_exit_error(state_repo):
    config = RunnerConfig((sys.executable, "-c", "import sys; sys.exit(7)"), 5)
    result = run_once(config, _root(state_repo), "x", {})
    assert (result.status, result.error_kind, result.exit_code) == ("error", "exit", 7)


def test_a_runner_past_its_timeout_is_a_timeout_error(state_repo):
    config = RunnerConfig((sys.executable, "-c", "import time; time.sleep(30)"), 0.2)
    result = run_once(config, _root(state_repo), "x", {})
    assert (result.status, result.error_kind) == ("error", "timeout")


def test_a_successful_run_has_no_error_kind(state_repo):
    result = run_once(RunnerConfig((sys.executable, "-c", "print('hi')"), 5), _root(state_repo), "x", {})
    assert (result.status, result.output, result.error_kind) == ("ok", "hi", "")


def test_error_kind_survives_the_cache_round_trip_and_old_dicts_still_load():
    run = RunResult("error", error="runner exited with status 2", exit_code=2, error_kind="exit")
    assert RunResult.from_dict(run.to_dict()) == run
    old = {"status": "ok", "output": "hi", "cost": None, "steps": None, "latency_ms": 3.0,
           "exit_code": 0, "error": "", "stderr": ""}  # cached before error_kind existed
    loaded = RunResult.from_dict(old, cached=True)
    assert loaded.output == "hi" and loaded.error_kind == "" and loaded.cached is True


def test_tampered_turns_a_run_into_an_error_naming_at_most_five_paths():
    run = RunResult("ok", output="42", exit_code=0, latency_ms=5.0)
    paths = [f"prompts/p{n}.md" for n in range(7)]
    bad = tampered(run, paths)
    assert (bad.status, bad.error_kind, bad.output) == ("error", "tampered", "42")
    assert bad.error == ("runner wrote into its read-only state dir: prompts/p0.md, prompts/p1.md, "
                         "prompts/p2.md, prompts/p3.md, prompts/p4.md (and 2 more)")
    assert run.status == "ok"  # the original is left as it was


def test_tampered_by_a_concurrent_run_says_so():
    bad = tampered(RunResult("ok"), [CONCURRENT_CHANGE])
    assert bad.error_kind == "tampered" and "modified by a concurrent run" in bad.error
    assert "wrote into" not in bad.error


def test_flaky_runner_with_repeats_neither_blocks_nor_admits(tmp_path):
    # four repeats: 0 of 4 -> 4 of 4 is clearly significant (p = 1/70); three would sit on the 0.05 line
    g = GateRepo(tmp_path, {"a": "right", "b": "wrong"}, cases_yaml("a", "b"), repeats=4,
                 policy="min_improvement: 0.1")
    # a now fails one run in four (flaky) while b is really fixed: accepted
    fixed = g.answers_branch("evolve/fixed", a="FLAKY:2", b="right")
    report = gate(g.repo, fixed)
    by_id = {c["id"]: c for c in report.cases}
    assert by_id["a"]["candidate"]["passes"] == 3 and by_id["a"]["verdict"] == "pass"
    assert by_id["b"]["verdict"] == "improvement" and by_id["b"]["p_value"] < 0.05
    assert report.decision == "accept"
    # b passes one run in four (a lucky run): the aggregate gain is noise, not an improvement
    lucky = g.answers_branch("evolve/lucky", a="right", b="LUCKY:3")
    report = gate(g.repo, lucky)
    by_id = {c["id"]: c for c in report.cases}
    assert by_id["b"]["candidate"]["passes"] == 1 and by_id["b"]["verdict"] == "fail"
    assert report.decision == "reject" and "no case improved significantly" in report.reasons[0]


def test_interrupted_gate_kills_running_runners_and_their_children(tmp_path):
    import signal
    import subprocess

    g = GateRepo(tmp_path, {"h": "right"}, cases_yaml("h"), timeout=120)
    g.answers_branch("evolve/hang", h="HANG")
    proc = subprocess.Popen([sys.executable, "-m", "aevolve", "gate", "evolve/hang"], cwd=g.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = Path(str(g.log) + ".child")
    try:
        wait_until(lambda: marker.exists() and marker.read_text(), what="the runner to start its child")
        child = int(marker.read_text())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130 and "interrupted" in err
    wait_until(lambda: not alive(child), timeout=10, what=f"the runner's child {child} to die")
