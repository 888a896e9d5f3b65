"""`aevolve demo`: the whole loop offline, told as a story."""

from __future__ import annotations

import json

import pytest

from aevolve._git.notes import read_gate_report
from aevolve._git.repo import Repo

from conftest import admissible, git, isolated_git_env, run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `aevolve demo --json` run, shared by the tests that only read what it left: (folder, result)."""
    with isolated_git_env(tmp_path_factory):
        root = tmp_path_factory.mktemp("demo") / "demo"
        proc = run_cli("demo", root, "--json")
    assert proc.returncode == 0, proc.stderr
    return root, json.loads(proc.stdout)


def test_demo_promotes_the_good_proposal_and_rejects_the_wrong_one(demo):
    root, result = demo
    repo = Repo.open(root)

    assert result["accepted_report"]["decision"] == "accept"
    assert set(result["accepted_report"]["improvements"]) == {"shipping-time", "password-reset"}
    assert result["rejected_report"]["decision"] == "reject"
    assert result["rejected_report"]["regressions"] == ["refund-window"]

    main = repo.ref_target("refs/heads/main")
    assert main == result["promoted_main"] == result["final_main"]
    assert admissible(repo, main)
    rejected_tip = repo.ref_target(f"refs/heads/{result['rejected_branch']}")
    assert read_gate_report(repo, rejected_tip)["decision"] == "reject"
    assert not repo.git.descendant_of(main, rejected_tip)


def test_demo_leaves_a_clean_consistent_repository(demo, cli):
    root, _ = demo
    assert git(root, "status", "--porcelain") == ""
    git(root, "fsck", "--strict")
    assert cli("validate", cwd=root).returncode == 0


def test_demo_tells_the_story_on_stdout(tmp_path, cli):
    proc = cli("demo", tmp_path / "demo")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for step in ("Observe", "Propose (rules evolver)", "Diagnosis:", "decision: ACCEPT", "Promote: main",
                 "REGRESSION", "decision: REJECT", "main stays at"):
        assert step in out, step
    assert out.index("decision: ACCEPT") < out.index("decision: REJECT")


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path, cli):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    proc = cli("demo", target)
    assert proc.returncode == 2
    assert "not empty" in proc.stderr
    assert (target / "keep.txt").read_text() == "mine"
    assert not (target / ".git").exists()
