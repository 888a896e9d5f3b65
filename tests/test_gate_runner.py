"""The runner contract with real processes: state dir, stdin, timeouts, crashes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from pathlib import Path

from aevolve._gate.materialize import CONCURRENT_CHANGE, materialize, trees_dir
from aevolve._gate.run import gate
from aevolve._gate.runner import RunnerConfig, RunResult, read_stdout, run_once, tampered

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


def parse_stdout(text: str) -> tuple:
    printed = read_stdout(text)
    return printed.output, printed.cost, printed.steps


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


# -- the output cap -----------------------------------------------------------------------


def _py(code: str, timeout: float = 20, cap: int = 1024) -> RunnerConfig:
    return RunnerConfig((sys.executable, "-S", "-c", code), timeout, cap)


def test_stdout_past_the_cap_keeps_its_head_and_says_it_was_cut(state_repo):
    code = "import sys; sys.stdout.write('a' * 1024 + 'b' * 100000)"
    result = run_once(_py(code), _root(state_repo), "x", {})
    assert (result.status, result.output, result.truncated) == ("ok", "a" * 1024, ["stdout"])


def test_a_cut_json_stdout_is_judged_as_text(state_repo):
    code = "import json; print(json.dumps({'output': 'y' * 5000, 'cost': 1}))"
    result = run_once(_py(code), _root(state_repo), "x", {})
    assert result.output.startswith('{"output": "yyy') and len(result.output) == 1024
    assert result.cost is None and result.truncated == ["stdout"]


def test_stderr_past_the_cap_keeps_its_tail_and_says_it_was_cut(state_repo):
    code = "import sys; sys.stderr.write('e' * 100000 + 'THE END'); print('hi')"
    result = run_once(_py(code), _root(state_repo), "x", {})
    assert (result.status, result.output, result.truncated) == ("ok", "hi", ["stderr"])
    assert result.stderr.endswith("e" * 100 + "THE END") and len(result.stderr) <= 2000


def test_output_within_the_cap_is_not_marked_cut(state_repo):
    code = "import sys; sys.stdout.write('a' * 1024); sys.stderr.write('e' * 1024)"
    result = run_once(_py(code), _root(state_repo), "x", {})
    assert result.output == "a" * 1024 and result.truncated == []


def test_a_character_cut_in_two_at_the_cap_is_dropped(state_repo):
    code = "import sys; sys.stdout.buffer.write(b'a' * 1023 + 'é'.encode() * 10)"
    result = run_once(_py(code), _root(state_repo), "x", {})
    assert result.output == "a" * 1023 and result.truncated == ["stdout"]


def test_the_cap_comes_from_the_config_and_is_part_of_the_runner_hash():
    cfg = {"gate": {"runner": ["agent"], "timeout": 5, "max_output_bytes": 4096}}
    config = RunnerConfig.from_config(cfg)
    assert config.max_output_bytes == 4096
    assert config.hash != RunnerConfig(("agent",), 5.0, 8192).hash
    assert config.hash == RunnerConfig(("agent",), 5.0, 4096).hash


def test_truncated_survives_the_cache_round_trip():
    run = RunResult("ok", output="a", exit_code=0, truncated=["stdout", "stderr"])
    assert RunResult.from_dict(json.loads(json.dumps(run.to_dict()))).truncated == ["stdout", "stderr"]


# -- every process of a run dies with it --------------------------------------------------------

ORPHAN = """\
import os, sys, time
pid_file = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)  # holds none of the run's pipes
        with open(pid_file + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(pid_file + ".tmp", pid_file)
        CLEAR
        time.sleep(600)
    os._exit(0)
os.waitpid(pid, 0)
while not os.path.exists(pid_file):
    time.sleep(0.01)
WAIT
print("done")
"""


def _orphan_runner(tmp_path: Path, name: str, clear_env: bool = False, wait_for: Path | None = None):
    code = ORPHAN.replace("CLEAR", "os.execve(sys.executable, [sys.executable, '-S', '-c', "
                                   "'import time; time.sleep(600)'], {})" if clear_env else "")
    code = code.replace("WAIT", "" if wait_for is None else textwrap.dedent(f"""\
        while not os.path.exists({str(wait_for)!r}):
            time.sleep(0.01)
        state = open(f"/proc/{{open(pid_file).read()}}/stat").read().rsplit(")", 1)[1].split()[0]
        print("grandchild", "dead" if state == "Z" else "alive")"""))
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    pid_file = tmp_path / f"{name}.pid"
    return RunnerConfig((sys.executable, "-S", str(script), str(pid_file)), 30), pid_file


def test_each_run_gets_its_own_run_token(state_repo):
    config = _py("import os; print(os.environ['AEVOLVE_RUN_TOKEN'])")
    first, second = (run_once(config, _root(state_repo), "x", {}).output for _ in range(2))
    assert first != second and len(first) == 32


def test_a_double_forked_setsid_grandchild_is_killed_when_its_run_ends(tmp_path, state_repo):
    config, pid_file = _orphan_runner(tmp_path, "escape")
    result = run_once(config, _root(state_repo), "x", {})
    assert (result.status, result.output) == ("ok", "done")
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not alive(grandchild), timeout=10, what="the orphaned grandchild to die")


def test_an_orphan_that_cleared_its_environment_is_killed_once_no_run_is_live(tmp_path, state_repo):
    config, pid_file = _orphan_runner(tmp_path, "hidden", clear_env=True)
    assert run_once(config, _root(state_repo), "x", {}).status == "ok"
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not alive(grandchild), timeout=10, what="the orphan without a token to die")


def test_a_run_ending_leaves_the_orphans_of_another_live_run_alone(tmp_path, state_repo):
    root = _root(state_repo)
    a_done = tmp_path / "a-done"
    config_b, b_pid = _orphan_runner(tmp_path, "b", wait_for=a_done)
    results = []
    thread = threading.Thread(target=lambda: results.append(run_once(config_b, root, "b", {})))
    thread.start()
    try:
        wait_until(b_pid.exists, timeout=30, what="run b's orphan to start")
        config_a, a_pid = _orphan_runner(tmp_path, "a")
        assert run_once(config_a, root, "a", {}).status == "ok"
        wait_until(lambda: not alive(int(a_pid.read_text())), timeout=10, what="run a's orphan to die")
    finally:
        a_done.write_text("")
        thread.join(60)
    [b] = results
    assert b.output == "grandchild alive\ndone"  # run a's end did not touch it
    wait_until(lambda: not alive(int(b_pid.read_text())), timeout=10, what="run b's orphan to die")


def test_without_a_pidfd_the_runner_exit_is_still_seen_while_a_child_holds_the_pipes(state_repo, monkeypatch):
    import aevolve._gate.runner as runner

    monkeypatch.setattr(runner, "_pidfd", lambda pid: None)  # kernels before 5.3, other systems
    code = "import subprocess, sys; subprocess.Popen(['sleep', '600']); print('hi')"
    result = run_once(_py(code, timeout=30), _root(state_repo), "x", {})
    assert (result.status, result.output) == ("ok", "hi")


def test_orphans_are_found_by_a_scan_of_proc_where_threads_list_no_children(tmp_path, state_repo, monkeypatch):
    import aevolve._gate.runner as runner

    runner._prepare()
    monkeypatch.setattr(runner._reaper, "children_files", False)  # kernels without CONFIG_PROC_CHILDREN
    config, pid_file = _orphan_runner(tmp_path, "scan")
    assert run_once(config, _root(state_repo), "x", {}).status == "ok"
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not alive(grandchild), timeout=10, what="the orphaned grandchild to die")
