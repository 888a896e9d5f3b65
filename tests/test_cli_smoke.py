"""The real `python -m aevolve` process, end to end.

Every other CLI test runs `aevolve.cli.main` in the test process (conftest.run_cli);
these few show what only a separate process can: the entry point, exit statuses
as a shell sees them, stdin from a pipe, Ctrl-C, and a hook that git itself runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from aevolve._gate.run import gate

from conftest import git, run_cli_process, write
from gate_support import GateRepo, cases_yaml


def test_help_and_version_come_from_the_real_entry_point():
    proc = run_cli_process("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("init", "validate", "observe", "propose", "gate", "promote", "demo", "hooks"):
        assert f"  {command} " in proc.stdout, command
    version = run_cli_process("--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_demo_runs_the_whole_loop_in_a_real_process(tmp_path):
    proc = run_cli_process("demo", tmp_path / "demo", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["accepted_report"]["decision"] == "accept" and result["rejected_report"]["decision"] == "reject"
    assert git(tmp_path / "demo", "rev-parse", "main") == result["final_main"]


def test_usage_malformed_input_and_policy_exit_2_3_and_4(state_repo, tmp_path):
    assert run_cli_process("validate", "--no-such-flag", cwd=state_repo).returncode == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    malformed = run_cli_process("observe", bad, cwd=state_repo)
    assert malformed.returncode == 3 and f"{bad}:1: broken JSON" in malformed.stderr
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps([{"op": "write", "path": "evals/basic.yaml", "content": "[]"}]))
    refused = run_cli_process("propose", "--edits", edits, "--title", "cheat", "--diagnosis", "d",
                              "--change", "c", "--expected-effect", "e", cwd=state_repo)
    assert refused.returncode == 4 and "evals/basic.yaml: protected path" in refused.stderr
    assert "Traceback" not in malformed.stderr + refused.stderr


def test_a_rejecting_gate_exits_100_and_a_dirty_checkout_exits_6(tmp_path):
    g = GateRepo(tmp_path, {"a": "right", "b": "wrong"}, cases_yaml("a", "b"))
    g.answers_branch("evolve/break", a="wrong", b="wrong")
    rejected = run_cli_process("gate", "evolve/break", cwd=g.path)
    assert rejected.returncode == 100, rejected.stderr
    fixed = g.answers_branch("evolve/fix", a="right", b="right")
    assert gate(g.repo, fixed).decision == "accept"
    (g.path / "memory" / "facts.jsonl").write_text("local edit\n")
    dirty = run_cli_process("promote", "evolve/fix", "--no-regate", cwd=g.path)
    assert dirty.returncode == 6, dirty.stderr
    assert "Traceback" not in rejected.stderr + dirty.stderr


def test_observations_piped_on_stdin_are_ingested(state_repo):
    record = {"id": "obs-1", "task": "a question", "output": "answer", "feedback": {"success": False},
              "ts": "2025-01-01T10:00:00Z"}
    proc = run_cli_process("observe", "-", "--json", cwd=state_repo, input=json.dumps(record) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"] == 1


def test_ctrl_c_exits_130_without_a_traceback_or_a_branch(state_repo, tmp_path):
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps([{"op": "write", "path": "prompts/p.md", "content": "p\n"}]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aevolve", "propose", "--edits", str(edits), "--title", "interrupted change",
         "--diagnosis", "d", "--change", "c", "--expected-effect", "e"],
        cwd=state_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "AEVOLVE_TEST_PAUSE_AT": "objects", "AEVOLVE_TEST_PAUSE_SECONDS": "60"})
    try:
        assert proc.stderr.readline().strip() == "aevolve-test-pause objects"  # it is inside propose now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130 and "aevolve: interrupted" in err and "Traceback" not in err
    assert git(state_repo, "for-each-ref", "refs/heads/evolve/") == ""


def test_a_hook_installed_by_the_command_is_run_by_git(state_repo):
    assert run_cli_process("hooks", "install", cwd=state_repo).returncode == 0
    write(state_repo, {"skills/bad/SKILL.md": "---\nname: Wrong_Name\ndescription: x\n---\nbody\n"})
    git(state_repo, "add", "-A")
    commit = subprocess.run(["git", "commit", "-q", "-m", "bad skill"], cwd=state_repo, capture_output=True, text=True)
    assert commit.returncode != 0 and "skills/bad/SKILL.md:2:" in commit.stderr
