"""Hostile runners through `aevolve gate`: each ends in a clear verdict, in bounded time and
memory, and no process a run started outlives it.

The candidate's memory tells the agent below how to misbehave; the baseline answers right,
so a candidate run that errors is a regression (exit 100) and one that answers is accepted.
Every process of a run carries the runner log's path in its argv (forked copies of the
agent, or the marker passed on), which is how a test finds survivors in /proc.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import git, run_cli, wait_until
from gate_support import GateRepo, cases_yaml

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

HOSTILE_AGENT = textwrap.dedent('''
    import json, os, signal, sys, time
    case = os.environ["AEVOLVE_CASE_ID"]
    facts = {}
    for line in open(os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "facts.jsonl")):
        if line.strip():
            rec = json.loads(line)
            facts[rec["id"]] = rec.get("content", "")
    mode = facts.get(case, "unknown")
    if mode != "NOSTDIN":
        json.load(sys.stdin)

    def sleeper(setsid=False):
        """A forked copy of this process (its argv carries the marker) that sleeps."""
        pid = os.fork()
        if pid == 0:
            if setsid:
                os.setsid()
            time.sleep(600)
            os._exit(0)
        return pid

    def escaped():
        """Double fork and setsid: the grandchild is orphaned and in no group of the run."""
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)

    def say(data, code=0):
        sys.stdout.buffer.write(data)
        sys.stderr.buffer.write(data)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.exit(code)

    if mode == "FLOOD":
        chunk = b"x" * (1 << 20)
        for _ in range(200):
            sys.stdout.buffer.write(chunk)
            sys.stderr.buffer.write(chunk[:4096])
        sys.stdout.flush()
    elif mode == "ESCAPE":
        escaped()
        print("right")
    elif mode == "HOLD":
        sleeper()  # inherits stdout and stderr and keeps them open
        print("right")
    elif mode == "FORKBOMB":
        for n in range(50):
            sleeper(setsid=n % 2 == 1)
        time.sleep(600)
    elif mode == "CLOSE":
        print("right", flush=True)
        os.close(1)
        time.sleep(600)
    elif mode == "CLOSE_EXIT":
        print("right", flush=True)
        os.close(1)
        os.close(2)
        time.sleep(0.3)
    elif mode == "BYTES":
        say(b"ri\\x00ght\\xff\\xfe\\xc3\\n", 3)
    elif mode == "NOTERM":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sleeper()  # inherits the ignored SIGTERM
        time.sleep(600)
    elif mode == "ESC":
        say("\\x1b[2J\\x1b]0;pwned\\x07right\\x9b31m\\n".encode(), 3)
    elif mode == "NOSTDIN":
        print("right", flush=True)
        time.sleep(0.2)  # the gate's input is still unwritten when it exits
    else:
        print(mode)
''')


def hostile_repo(tmp_path: Path, mode: str, *, timeout: float = 20, cases: str | None = None) -> GateRepo:
    """A state repo whose baseline answers right and whose branch evolve/x behaves as `mode` on case a."""
    # b keeps answering on the candidate: a side where every run errored would be unjudgeable (exit 1)
    g = GateRepo(tmp_path, {"a": "right", "b": "right"}, cases or cases_yaml("a", "b"), timeout=timeout, jobs=2)
    (tmp_path / "agent.py").write_text(HOSTILE_AGENT)  # the runner argv points at it, outside the state
    g.answers_branch("evolve/x", a=mode, b="right")
    return g


def survivors(marker: str) -> list[int]:
    """Live (not zombie) processes whose argv carries `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                argv = fh.read()
            with open(f"/proc/{name}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in argv and state != "Z":
            found.append(int(name))
    return found


def assert_nothing_survives(g: GateRepo) -> None:
    wait_until(lambda: not survivors(str(g.log)), timeout=10, what="every process of the runs to be gone")


def gate_json(g: GateRepo, *args: str):
    result = run_cli("gate", "evolve/x", "--json", *args, cwd=g.path)
    assert "Traceback" not in result.stderr, result.stderr
    return result, json.loads(result.stdout)


def test_a_runner_printing_200_mb_is_cut_in_bounded_memory_and_the_cache_stays_small(tmp_path):
    import subprocess

    g = hostile_repo(tmp_path, "FLOOD")
    limited = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
               "from aevolve.cli import main; main(sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", limited, "gate", "evolve/x", "--json"], cwd=g.path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 100, proc.stderr
    report = json.loads(proc.stdout)
    assert report["regressions"] == ["a"] and report["errors"] == []
    assert any("cut at gate.max_output_bytes: a (stdout past 1048576 bytes)" in n for n in report["notices"])
    assert (g.path / ".git/aevolve/cache.sqlite").stat().st_size < 8 * 1024 * 1024


def test_a_double_forked_setsid_grandchild_does_not_survive_an_accepted_gate(tmp_path):
    g = hostile_repo(tmp_path, "ESCAPE")
    result, report = gate_json(g)
    assert result.returncode == 0 and report["decision"] == "accept" and report["errors"] == []
    assert_nothing_survives(g)


def test_a_runner_that_exits_0_while_its_child_holds_the_pipes_is_judged_by_its_exit(tmp_path):
    g = hostile_repo(tmp_path, "HOLD", timeout=30)
    result, report = gate_json(g)
    assert result.returncode == 0 and report["decision"] == "accept" and report["errors"] == []
    assert_nothing_survives(g)


def test_a_fork_bomb_is_bounded_by_the_timeout_and_every_child_is_killed(tmp_path):
    g = hostile_repo(tmp_path, "FORKBOMB", timeout=2)
    result, report = gate_json(g)
    assert result.returncode == 100 and report["decision"] == "reject"
    assert [(e["side"], e["kind"]) for e in report["errors"]] == [("candidate", "timeout")]
    assert_nothing_survives(g)


@pytest.mark.parametrize("behaviour", ["CLOSE", "NOTERM"], ids=["closes-stdout-and-runs-on", "ignores-sigterm"])
def test_a_runner_still_running_at_the_timeout_is_killed_and_times_out(tmp_path, behaviour):
    g = hostile_repo(tmp_path, behaviour, timeout=1.5)
    result, report = gate_json(g)
    assert result.returncode == 100
    assert [e["kind"] for e in report["errors"]] == ["timeout"]
    assert_nothing_survives(g)


def test_a_runner_that_closes_its_pipes_before_exiting_0_is_judged_on_what_it_printed(tmp_path):
    g = hostile_repo(tmp_path, "CLOSE_EXIT")
    result, report = gate_json(g)
    assert result.returncode == 0 and report["decision"] == "accept"
    assert_nothing_survives(g)


def test_invalid_utf8_and_nul_bytes_are_reported_replaced_and_the_note_is_json(tmp_path):
    g = hostile_repo(tmp_path, "BYTES")
    result, report = gate_json(g)
    assert result.returncode == 100
    [error] = report["errors"]
    assert error["kind"] == "exit" and error["exit_code"] == 3
    assert "ri\x00ght\ufffd\ufffd" in error["stderr"]
    note = json.loads(git(g.path, "notes", "--ref=aevolve", "show", "evolve/x"))
    assert note["errors"][0]["stderr"] == error["stderr"]
    assert_nothing_survives(g)


def test_escape_sequences_from_a_runner_stay_escaped_in_the_note_and_off_the_terminal(tmp_path):
    g = hostile_repo(tmp_path, "ESC")
    result = run_cli("gate", "evolve/x", cwd=g.path)
    assert result.returncode == 100 and "Runner errors" in result.stdout
    note = git(g.path, "notes", "--ref=aevolve", "show", "evolve/x")
    assert "\x1b" not in note and "\\u001b]0;pwned\\u0007right" in note
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in result.stdout + result.stderr


def test_a_runner_that_reads_no_stdin_while_sent_a_large_input_does_not_deadlock(tmp_path):
    big = "x" * (1 << 20)  # far beyond a pipe's buffer
    cases = (f"- id: a\n  input: {{q: a, blob: {big}}}\n  assert:\n    - {{type: equals, value: right}}\n"
             + cases_yaml("b"))
    g = hostile_repo(tmp_path, "NOSTDIN", timeout=30, cases=cases)
    result, report = gate_json(g)
    assert result.returncode == 0 and report["decision"] == "accept", report
    assert_nothing_survives(g)
