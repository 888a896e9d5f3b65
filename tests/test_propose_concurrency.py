"""Proposes at once all succeed; a killed propose leaves no branch or a complete one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from aevolve._propose.rationale import parse

from conftest import git


def fsck_clean(root):
    proc = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=root, capture_output=True, text=True)
    return proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr


def propose_argv(edit_file):
    return [sys.executable, "-m", "aevolve", "propose", "--edits", str(edit_file), "--title", "parallel change",
            "--diagnosis", "d", "--change", "c", "--expected-effect", "e", "--json"]


def edit_file(tmp_path, k):
    path = tmp_path / f"edits-{k}.json"
    path.write_text(json.dumps([{"op": "write", "path": f"prompts/p{k}.md", "content": f"prompt {k}\n"}]))
    return path


def test_concurrent_proposes_with_one_title_all_get_distinct_branches(state_repo, tmp_path):
    procs = [subprocess.Popen(propose_argv(edit_file(tmp_path, k)), cwd=state_repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(4)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    branches = {json.loads(out)["branch"] for out, _ in outputs}
    assert len(branches) == 4
    assert len(git(state_repo, "for-each-ref", "refs/heads/evolve/").splitlines()) == 4
    assert fsck_clean(state_repo)[0]


@pytest.mark.parametrize("stage, expect_branch", [("policy", False), ("objects", False), ("ref", True)])
def test_a_propose_killed_at_any_stage_leaves_no_branch_or_a_complete_one(state_repo, tmp_path, stage, expect_branch):
    env = {**os.environ, "AEVOLVE_TEST_PAUSE_AT": stage, "AEVOLVE_TEST_PAUSE_SECONDS": "60"}
    proc = subprocess.Popen(propose_argv(edit_file(tmp_path, 0)), cwd=state_repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert line.strip() == f"aevolve-test-pause {stage}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    refs = git(state_repo, "for-each-ref", "--format=%(refname)", "refs/heads/evolve/").split()
    assert bool(refs) == expect_branch
    for ref in refs:
        rationale = parse(git(state_repo, "log", "-1", "--format=%B", ref))
        assert rationale is not None and rationale.title == "parallel change" and rationale.expected_effect == "e"
        assert git(state_repo, "show", f"{ref}:prompts/p0.md") == "prompt 0"
    assert git(state_repo, "status", "--porcelain") == ""
    ok, err = fsck_clean(state_repo)
    assert ok, err


def test_concurrent_proposes_of_one_change_open_one_branch(state_repo, tmp_path):
    """docs/propose.md: the same change again on the same base says so instead of a duplicate."""
    same = edit_file(tmp_path, 0)
    # Held after the early duplicate check, so every process passes it before any branch exists:
    # only the check under the lock can keep them from opening eight.
    env = {**os.environ, "AEVOLVE_TEST_PAUSE_AT": "policy", "AEVOLVE_TEST_PAUSE_SECONDS": "2"}
    procs = [subprocess.Popen(propose_argv(same), cwd=state_repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    created = [r["branch"] for r in results if not r["nothing_to_do"]]
    assert len(created) == 1
    refs = git(state_repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/evolve/").split()
    assert refs == created
    for r in results:
        if r["nothing_to_do"]:
            assert r["reason"] == f"the same change is already proposed on {created[0]}"
