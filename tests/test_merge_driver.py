"""The memory JSONL merge driver, through real `git merge` (and called directly as git would)."""

from __future__ import annotations

import json
import subprocess

from conftest import git, run_cli, write

BASE = '{"id": "m-1", "content": "Shoes can be returned within 30 days."}\n'


def branch_with(repo, name, content, start="main"):
    git(repo, "checkout", "-q", "-b", name, start)
    write(repo, {"memory/episodic.jsonl": content})
    git(repo, "commit", "-q", "-am", f"memory on {name}")


def merge(repo, branch) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "merge", "--no-edit", branch], cwd=repo, capture_output=True, text=True)


def test_two_branches_that_both_appended_memory_merge_cleanly(state_repo):
    branch_with(state_repo, "evolve/a", BASE + '{"id": "m-2", "content": "Gift cards never expire."}\n')
    branch_with(state_repo, "evolve/b", BASE + '{"id": "m-3", "content": "Store credit after 30 days."}\n')
    result = merge(state_repo, "evolve/a")
    assert result.returncode == 0, result.stdout + result.stderr
    text = (state_repo / "memory/episodic.jsonl").read_text()
    assert "<<<<<<<" not in text and ">>>>>>>" not in text
    assert sorted(json.loads(line)["id"] for line in text.splitlines() if line.strip()) == ["m-1", "m-2", "m-3"]
    assert git(state_repo, "status", "--porcelain") == ""


def test_plain_line_merge_would_have_conflicted(state_repo):
    """The reason the driver exists: without it git conflicts on the same appends."""
    (state_repo / ".git" / "info").mkdir(exist_ok=True)
    (state_repo / ".git" / "info" / "attributes").write_text("memory/**/*.jsonl merge=text\n")
    branch_with(state_repo, "evolve/a", BASE + '{"id": "m-2", "content": "a"}\n')
    branch_with(state_repo, "evolve/b", BASE + '{"id": "m-3", "content": "b"}\n')
    assert merge(state_repo, "evolve/a").returncode != 0


def test_same_id_edited_on_both_sides_is_a_clear_conflict(state_repo):
    branch_with(state_repo, "evolve/a", '{"id": "m-1", "content": "Returns within 14 days."}\n')
    branch_with(state_repo, "evolve/b", '{"id": "m-1", "content": "Returns within 60 days."}\n')
    result = merge(state_repo, "evolve/a")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "record 'm-1' edited on both sides differently" in output
    assert "CONFLICT" in output and "memory/episodic.jsonl" in output
    text = (state_repo / "memory/episodic.jsonl").read_text()
    assert "<<<<<<<" in text and "14 days" in text and "60 days" in text and ">>>>>>>" in text
    assert "memory/episodic.jsonl" in git(state_repo, "diff", "--name-only", "--diff-filter=U")


def test_merge_jsonl_command_exit_codes(tmp_path):
    base, ours, theirs = (tmp_path / n for n in ("O", "A", "B"))
    base.write_text(BASE)
    ours.write_text(BASE + '{"id": "m-2", "content": "a"}\n')
    theirs.write_text(BASE + '{"id": "m-3", "content": "b"}\n')
    clean = run_cli("merge-jsonl", base, ours, theirs, "memory/episodic.jsonl", "--json")
    assert clean.returncode == 0
    assert json.loads(clean.stdout)["clean"] is True
    assert [json.loads(line)["id"] for line in ours.read_text().splitlines()] == ["m-1", "m-2", "m-3"]

    ours.write_text('{"id": "m-1", "content": "x"}\n')
    theirs.write_text('{"id": "m-1", "content": "y"}\n')
    conflict = run_cli("merge-jsonl", base, ours, theirs, "memory/episodic.jsonl")
    assert conflict.returncode == 1
    assert "conflict: memory/episodic.jsonl: record 'm-1'" in conflict.stderr
    assert "<<<<<<<" in ours.read_text()
