"""`aevolve status`: main, open evolution branches, worktree differences, validity."""

from __future__ import annotations

import json

from aevolve._git.repo import MAIN, Repo
from aevolve._state.status import status

from conftest import git, make_state_repo, run_cli, write


def open_branch(root, name: str, path: str, data: bytes) -> str:
    repo = Repo.open(root)
    main = repo.ref_target(MAIN)
    commit = repo.commit(repo.build_tree(repo.tree(main), {path: data}), [main], f"evolve: {name}\n")
    repo.create_ref(f"refs/heads/evolve/{name}", commit)
    return str(commit)


def test_status_of_a_fresh_state_repository(state_repo):
    proc = run_cli("status", cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    main = git(state_repo, "rev-parse", "main")
    assert proc.stdout.splitlines() == [
        f"repository: {state_repo}",
        f"main:       {main[:12]}  aevolve: adopt agent state",
        "evolution branches: none open",
        "working tree: same as main",
        "state:      valid",
    ]


def test_status_lists_open_evolution_branches_but_not_merged_ones(state_repo):
    commit = open_branch(state_repo, "add-memory", "memory/extra.jsonl", b'{"id": "x"}\n')
    repo = Repo.open(state_repo)
    repo.create_ref("refs/heads/evolve/already-in", repo.ref_target(MAIN))

    info = status(repo)

    assert info.branches == [{"branch": "evolve/add-memory", "commit": commit, "subject": "evolve: add-memory"}]
    assert "evolve/add-memory  evolve: add-memory" in run_cli("status", cwd=state_repo).stdout


def test_status_tells_which_files_differ_from_main(state_repo):
    write(state_repo, {"prompts/system.md": "edited\n", "prompts/new.md": "new\n"})
    (state_repo / "memory" / "episodic.jsonl").unlink()
    info = status(Repo.open(state_repo))
    assert info.worktree_changes == ["memory/episodic.jsonl", "prompts/new.md", "prompts/system.md"]
    assert "working tree: 3 file(s) differ from main" in run_cli("status", cwd=state_repo).stdout


def test_status_reports_an_invalid_state(state_repo):
    write(state_repo, {"manifest.yaml": "version: 1\n"})
    proc = run_cli("status", cwd=state_repo)
    assert proc.returncode == 0
    assert "state:      invalid (1 errors)" in proc.stdout


def test_status_json(state_repo):
    write(state_repo, {
        "skills/refund-policy/SKILL.md": "---\nname: refund-policy\ndescription: d\nkeywords: [a]\n---\nbody\n",
    })
    doc = json.loads(run_cli("status", "--json", cwd=state_repo).stdout)
    assert doc["main"] == git(state_repo, "rev-parse", "main")
    assert doc["worktree_changes"] == ["skills/refund-policy/SKILL.md"]
    assert (doc["valid"], doc["errors"], doc["warnings"]) == (True, 0, 1)
    assert doc["branches"] == []


def test_status_of_a_bare_repository_validates_main(tmp_path):
    src = make_state_repo(tmp_path / "src")
    git(tmp_path, "clone", "-q", "--bare", str(src), "bare.git")
    info = status(Repo.open(tmp_path / "bare.git"))
    assert info.worktree_changes is None
    assert info.valid is True
    assert info.main == git(src, "rev-parse", "main")


def test_status_of_a_repository_without_main(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main", "empty")
    proc = run_cli("status", cwd=tmp_path / "empty")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "main:       (no commits yet)" in proc.stdout


def test_status_outside_a_repository_is_a_clear_error(tmp_path):
    proc = run_cli("status", cwd=tmp_path)
    assert proc.returncode == 1
    assert "aevolve init" in proc.stderr and "Traceback" not in proc.stderr
