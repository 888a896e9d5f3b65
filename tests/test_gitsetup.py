"""Repository setup: attributes, drivers and refspecs, checked with real git."""

from __future__ import annotations

import subprocess

from aevolve._git.notes import write_gate_report
from aevolve._git.repo import Repo
from aevolve._state.gitsetup import configure_repo, configured, setup

from conftest import git, make_state_repo, run_cli, write


def test_init_routes_memory_jsonl_through_the_aevolve_drivers(state_repo):
    attrs = git(state_repo, "check-attr", "merge", "diff", "--", "memory/episodic.jsonl", "memory/deep/x.jsonl")
    assert attrs.splitlines() == [
        "memory/episodic.jsonl: merge: aevolve-jsonl",
        "memory/episodic.jsonl: diff: aevolve-jsonl",
        "memory/deep/x.jsonl: merge: aevolve-jsonl",
        "memory/deep/x.jsonl: diff: aevolve-jsonl",
    ]
    assert git(state_repo, "check-attr", "merge", "--", "prompts/system.md").endswith("unspecified")
    assert git(state_repo, "config", "merge.aevolve-jsonl.driver").endswith("-m aevolve merge-jsonl %O %A %B %P")
    assert git(state_repo, "config", "diff.aevolve-jsonl.textconv").endswith("-m aevolve hook textconv-jsonl")
    assert ".gitattributes" in git(state_repo, "ls-files")  # committed by init


def test_configure_is_idempotent(state_repo):
    repo = Repo.open(state_repo)
    before = git(state_repo, "config", "--local", "--list")
    assert configure_repo(repo) == []
    assert git(state_repo, "config", "--local", "--list") == before
    assert (state_repo / ".gitattributes").read_text().count("aevolve-jsonl") == 2


def test_existing_gitattributes_lines_are_kept(tmp_path):
    root = tmp_path / "s"
    write(root, {".gitattributes": "*.png binary", "manifest.yaml": "name: s\nversion: 0.1.0\n"})
    make_state_repo(root, files={})
    text = (root / ".gitattributes").read_text()
    assert text.startswith("*.png binary\n") and "merge=aevolve-jsonl" in text


def test_git_diff_of_memory_shows_one_line_per_changed_record(state_repo):
    write(state_repo, {"memory/episodic.jsonl": (
        '{"content": "Shoes within 14 days.", "id": "m-1"}\n'
        '{"id": "m-0", "content": "new"}\n'
    )})
    diff = git(state_repo, "diff")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert sorted(changed) == [
        '+{"id": "m-0", "content": "new"}',
        '+{"id": "m-1", "content": "Shoes within 14 days."}',
        '-{"id": "m-1", "content": "Shoes can be returned within 30 days."}',
    ]


def test_refspecs_are_added_once_per_remote(state_repo, tmp_path):
    bare = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(state_repo, "remote", "add", "origin", str(bare))
    repo = Repo.open(state_repo)
    first = setup(repo)
    assert "remote.origin.push = HEAD" in first.config
    assert setup(repo).config == []
    fetch = git(state_repo, "config", "--get-all", "remote.origin.fetch").splitlines()
    assert fetch == [
        "+refs/heads/*:refs/remotes/origin/*",
        "+refs/notes/aevolve*:refs/notes/remotes/origin/aevolve*",
        "+refs/aevolve/*:refs/aevolve-remotes/origin/*",
    ]


def test_outdated_fetch_refspecs_into_the_local_refs_are_replaced(state_repo, tmp_path):
    bare = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(state_repo, "remote", "add", "origin", str(bare))
    for spec in ("refs/notes/aevolve*:refs/notes/aevolve*", "refs/aevolve/*:refs/aevolve/*"):
        git(state_repo, "config", "--add", "remote.origin.fetch", spec)
    repo = Repo.open(state_repo)
    assert configured(repo)[1]["origin"]["configured"] is False

    report = setup(repo)

    fetch = git(state_repo, "config", "--get-all", "remote.origin.fetch").splitlines()
    assert fetch == ["+refs/heads/*:refs/remotes/origin/*",
                     "+refs/notes/aevolve*:refs/notes/remotes/origin/aevolve*",
                     "+refs/aevolve/*:refs/aevolve-remotes/origin/*"]
    assert any("(removed" in line for line in report.config)
    assert configured(repo)[1]["origin"] == {"configured": True, "missing": []}


def test_a_user_push_refspec_is_respected(state_repo, tmp_path):
    bare = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(state_repo, "remote", "add", "origin", str(bare))
    git(state_repo, "config", "remote.origin.push", "refs/heads/main:refs/heads/main")
    setup(Repo.open(state_repo))
    push = git(state_repo, "config", "--get-all", "remote.origin.push").splitlines()
    assert "HEAD" not in push and push[0] == "refs/heads/main:refs/heads/main"
    assert "refs/notes/aevolve*:refs/notes/aevolve*" in push


def _remote_with_clone(tmp_path):
    source = make_state_repo(tmp_path / "state")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert run_cli("hooks", "install", cwd=clone).returncode == 0
    return source, bare, clone


def test_plain_fetch_and_push_carry_gate_notes_and_aevolve_refs(tmp_path):
    _source, bare, clone = _remote_with_clone(tmp_path)
    assert subprocess.run(["git", "fetch"], cwd=clone, capture_output=True).returncode == 0  # remote has no notes yet
    head = git(clone, "rev-parse", "HEAD")
    write_gate_report(Repo.open(clone), {"version": 1, "candidate": head, "decision": "accept", "reasons": []})
    git(clone, "update-ref", "refs/aevolve/observations", head)
    result = subprocess.run(["git", "push"], cwd=clone, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/notes/aevolve") == git(clone, "rev-parse", "refs/notes/aevolve")
    assert git(bare, "rev-parse", "refs/aevolve/observations") == head

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    assert run_cli("hooks", "install", cwd=other).returncode == 0
    git(other, "fetch", "-q")
    assert git(other, "notes", "--ref=remotes/origin/aevolve", "list", head)  # the remote-tracking copy
    assert git(other, "rev-parse", "refs/aevolve-remotes/origin/observations") == head


def test_fetch_after_a_local_gate_succeeds_and_keeps_the_local_notes(tmp_path):
    _source, bare, clone = _remote_with_clone(tmp_path)
    head = git(clone, "rev-parse", "HEAD")
    repo = Repo.open(clone)
    write_gate_report(repo, {"version": 1, "candidate": head, "decision": "accept", "reasons": ["local"]})
    local = git(clone, "rev-parse", "refs/notes/aevolve")
    bare_repo = Repo.open(bare)
    write_gate_report(bare_repo, {"version": 1, "candidate": head, "decision": "reject", "reasons": ["remote"]})
    result = subprocess.run(["git", "fetch"], cwd=clone, capture_output=True, text=True)
    assert result.returncode == 0 and "rejected" not in result.stderr, result.stderr
    assert git(clone, "rev-parse", "refs/notes/aevolve") == local  # `aevolve sync` merges, never a fetch
    assert git(clone, "rev-parse", "refs/notes/remotes/origin/aevolve") == git(bare, "rev-parse", "refs/notes/aevolve")


def test_git_diff_of_memory_shows_changed_records_not_reordered_lines(state_repo):
    write(state_repo, {"memory/episodic.jsonl": (
        '{"content": "Stores open at 9am.", "id": "m-2"}\n'
        '{"id": "m-1", "content": "Shoes can be returned within 30 days."}\n'
    )})
    diff = git(state_repo, "diff", "--", "memory/episodic.jsonl")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ['+{"id": "m-2", "content": "Stores open at 9am."}']  # m-1 only moved: no change shown


def test_setup_sets_the_display_ref_and_keeps_the_users_own(tmp_path):
    root = make_state_repo(tmp_path / "state")
    git(root, "config", "--unset-all", "notes.displayRef", check=False)
    git(root, "config", "--add", "notes.displayRef", "refs/notes/mine")
    setup(Repo.open(root), attributes=False)
    assert git(root, "config", "--get-all", "notes.displayRef").split() == ["refs/notes/mine",
                                                                           "refs/notes/aevolve-log"]
    assert setup(Repo.open(root), attributes=False).config == []
