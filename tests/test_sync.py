"""`aevolve sync`: a bare origin with the server hook, and real clones of it."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_hooks_server import copy_remote, remote_template

from aevolve._git.notes import parse_report, write_gate_report
from aevolve._git.repo import APPROVALS_REF, NOTES_REF, OBSERVATIONS_REF, Repo
from aevolve._remote.sync import sync
from aevolve._state.observations import load_observations, observe

from conftest import git, make_state_repo, run_cli, verdict_for, write


def _build(root):
    source = make_state_repo(root / "state")
    bare = root / "origin.git"
    git(root, "clone", "-q", "--bare", str(source), str(bare))
    assert run_cli("hooks", "install", "--server", bare).returncode == 0
    for name in ("alice", "bob"):
        git(root, "clone", "-q", str(bare), str(root / name))


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    return remote_template(tmp_path_factory, _build)


@pytest.fixture
def team(_template, tmp_path):
    """(origin, alice, bob): a bare origin with the server hook and two clones of it."""
    return copy_remote(_template, tmp_path, bare="origin.git", clones=("alice", "bob"))


def commit(clone, files: dict, message: str, branch: str | None = None) -> str:
    if branch:
        git(clone, "switch", "-q", "-c", branch)
    write(clone, files)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "--no-verify", "-m", message)
    sha = git(clone, "rev-parse", "HEAD")
    if branch:
        git(clone, "switch", "-q", "main")
    return sha


def gate(clone, sha: str, decision: str = "accept", **extra) -> dict:
    """Note a verdict on sha's step from its parent, as the gate would."""
    repo = Repo.open(clone)
    report = verdict_for(repo, sha, decision, **extra)
    write_gate_report(repo, report)
    return report


def push(clone, *refs) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", *refs], cwd=clone, capture_output=True, text=True)


def note_of(clone, sha: str, ref: str = NOTES_REF) -> dict | None:
    return parse_report(Repo.open(clone).read_note(sha, ref))


def refs(clone) -> str:
    return git(clone, "for-each-ref")


def test_sync_keeps_notes_gated_on_different_commits_on_both_sides(team):
    _origin, alice, bob = team
    mine = commit(alice, {"prompts/system.md": "Alice.\n"}, "alice: prompt", "evolve/a")
    gate(alice, mine)
    theirs = commit(bob, {"prompts/system.md": "Bob.\n"}, "bob: prompt", "evolve/b")
    gate(bob, theirs)
    assert push(bob, "evolve/b", "refs/notes/aevolve").returncode == 0

    result = sync(Repo.open(alice))

    assert result.notes.action == "merged" and result.notes.taken == 1
    assert note_of(alice, mine)["candidate"] == mine
    assert note_of(alice, theirs)["candidate"] == theirs
    assert git(alice, "rev-parse", "origin/evolve/b") == theirs  # the teammate's branch came too


def test_merged_notes_are_accepted_by_the_servers_hook(team):
    origin, alice, bob = team
    gate(alice, commit(alice, {"prompts/system.md": "Alice.\n"}, "alice: prompt", "evolve/a"))
    gate(bob, commit(bob, {"prompts/system.md": "Bob.\n"}, "bob: prompt", "evolve/b"))
    assert push(bob, "evolve/b", "refs/notes/aevolve").returncode == 0
    sync(Repo.open(alice))

    pushed = push(alice, "evolve/a", "refs/notes/aevolve")

    assert pushed.returncode == 0, pushed.stderr
    assert git(origin, "rev-parse", "refs/notes/aevolve") == git(alice, "rev-parse", "refs/notes/aevolve")


def test_a_different_report_keeps_the_accepting_one_gated_against_the_first_parent(team):
    _origin, alice, bob = team
    sha = commit(bob, {"prompts/system.md": "Shared.\n"}, "shared change", "evolve/s")
    assert push(bob, "evolve/s").returncode == 0
    git(alice, "fetch", "-q", "origin", "evolve/s")
    gate(alice, sha, "reject")
    good = gate(bob, sha, "accept")
    assert push(bob, "refs/notes/aevolve").returncode == 0

    result = sync(Repo.open(alice))

    assert note_of(alice, sha) == good
    [choice] = result.notes.choices
    assert (choice.commit, choice.kept, choice.conflict) == (sha, "remote", False)
    assert "accepts it against its first parent" in choice.why


def test_an_accepting_report_against_another_baseline_loses_to_the_one_against_the_parent(team):
    _origin, alice, bob = team
    sha = commit(bob, {"prompts/system.md": "Shared.\n"}, "shared change", "evolve/s")
    assert push(bob, "evolve/s").returncode == 0
    git(alice, "fetch", "-q", "origin", "evolve/s")
    mine = gate(alice, sha, "accept")
    gate(bob, sha, "accept", baseline=sha)  # gated against itself: admits nothing
    assert push(bob, "refs/notes/aevolve").returncode == 0

    result = sync(Repo.open(alice))

    assert note_of(alice, sha) == mine
    assert [(c.kept, c.conflict) for c in result.notes.choices] == [("local", False)]


def test_two_reports_neither_admissible_keep_the_local_one_and_report_a_conflict(team):
    _origin, alice, bob = team
    sha = commit(bob, {"prompts/system.md": "Shared.\n"}, "shared change", "evolve/s")
    assert push(bob, "evolve/s").returncode == 0
    git(alice, "fetch", "-q", "origin", "evolve/s")
    mine = gate(alice, sha, "reject", reasons=["alice"])
    gate(bob, sha, "reject", reasons=["bob"])
    assert push(bob, "refs/notes/aevolve").returncode == 0

    proc = run_cli("sync", cwd=alice)

    assert proc.returncode == 0, proc.stderr
    assert note_of(alice, sha) == mine
    assert f"{sha[:12]}: kept the local note" in proc.stdout


def test_approvals_of_one_commit_from_both_sides_are_united(team):
    _origin, alice, bob = team
    head = git(alice, "rev-parse", "HEAD")

    def approval(key):
        return {"commit": head, "tree": "t", "message": "", "signer": key, "key": key,
                "created": "2025-01-01T00:00:00Z", "signature": {}}

    Repo.open(alice).write_note(head, json.dumps({"approvals": [approval("SHA256:a")]}).encode(), APPROVALS_REF)
    Repo.open(bob).write_note(head, json.dumps({"approvals": [approval("SHA256:b")]}).encode(), APPROVALS_REF)
    assert push(bob, "refs/notes/aevolve-approvals").returncode == 0

    sync(Repo.open(alice))

    stored = json.loads(Repo.open(alice).read_note(head, APPROVALS_REF))["approvals"]
    assert sorted(a["key"] for a in stored) == ["SHA256:a", "SHA256:b"]


def test_main_behind_the_remote_is_fast_forwarded_with_its_checkout(team):
    _origin, alice, bob = team
    sha = commit(bob, {"prompts/system.md": "Published.\n"}, "published change")
    gate(bob, sha)
    assert push(bob, "main", "refs/notes/aevolve").returncode == 0

    result = sync(Repo.open(alice))

    assert result.main.state == "fast-forward"
    assert git(alice, "rev-parse", "main") == sha
    assert (alice / "prompts/system.md").read_text() == "Published.\n"
    assert git(alice, "status", "--porcelain") == ""
    assert note_of(alice, sha)["decision"] == "accept"


def test_main_ahead_of_the_remote_is_left_and_its_unpublished_commits_named(team):
    _origin, alice, _bob = team
    sha = commit(alice, {"prompts/system.md": "Local only.\n"}, "local change")

    proc = run_cli("sync", "--json", cwd=alice)

    doc = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert doc["main"]["state"] == "ahead"
    assert [c["commit"] for c in doc["main"]["unpublished"]] == [sha]
    assert git(alice, "rev-parse", "main") == sha


def test_diverged_main_is_not_moved_and_the_output_names_each_unpublished_commit(team):
    _origin, alice, bob = team
    mine = commit(alice, {"prompts/system.md": "Local only.\n"}, "local change")
    theirs = commit(bob, {"prompts/system.md": "Published.\n"}, "published change")
    gate(bob, theirs)
    assert push(bob, "main", "refs/notes/aevolve").returncode == 0

    proc = run_cli("sync", cwd=alice)

    assert proc.returncode == 0, proc.stderr
    assert git(alice, "rev-parse", "main") == mine
    assert "diverged" in proc.stdout and "1 local commit(s) unpublished" in proc.stdout
    assert f"{mine[:12]} local change" in proc.stdout


def test_a_dirty_checkout_blocks_the_fast_forward_with_exit_6(team):
    _origin, alice, bob = team
    sha = commit(bob, {"prompts/system.md": "Published.\n"}, "published change")
    gate(bob, sha)
    assert push(bob, "main", "refs/notes/aevolve").returncode == 0
    before = git(alice, "rev-parse", "main")
    write(alice, {"prompts/system.md": "my unsaved edit\n"})

    proc = run_cli("sync", cwd=alice)

    assert proc.returncode == 6
    assert git(alice, "rev-parse", "main") == before
    assert (alice / "prompts/system.md").read_text() == "my unsaved edit\n"
    assert note_of(alice, sha) is not None  # the notes were merged all the same


def _obs(i):
    return {"id": f"obs-{i}", "task": f"task {i}", "output": "answer",
            "feedback": {"success": False, "expected": "x"}, "ts": "2025-01-01T10:00:00Z"}


def _observe(clone, tmp_path, name, records):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    observe(Repo.open(clone), [path])


def test_observations_of_both_sides_are_united_and_a_shared_one_stored_once(team, tmp_path):
    _origin, alice, bob = team
    _observe(alice, tmp_path, "a", [_obs(1), _obs(3)])
    _observe(bob, tmp_path, "b", [_obs(2), _obs(3)])
    assert push(bob, "refs/aevolve/observations").returncode == 0

    result = sync(Repo.open(alice))

    assert result.observations.action == "merged" and result.observations.added == 1
    assert [r["id"] for r in load_observations(Repo.open(alice))] == ["obs-1", "obs-2", "obs-3"]
    bob_tip = git(bob, "rev-parse", OBSERVATIONS_REF)
    assert Repo.open(alice).is_ancestor(bob_tip, git(alice, "rev-parse", OBSERVATIONS_REF))  # bob's kept whole


def test_observations_merged_and_pushed_fast_forward_the_other_clone(team, tmp_path):
    _origin, alice, bob = team
    _observe(alice, tmp_path, "a", [_obs(1)])
    _observe(bob, tmp_path, "b", [_obs(2)])
    assert push(bob, "refs/aevolve/observations").returncode == 0
    sync(Repo.open(alice))
    assert push(alice, "refs/aevolve/observations").returncode == 0

    result = sync(Repo.open(bob))

    assert result.observations.action == "fast-forward"
    assert git(bob, "rev-parse", OBSERVATIONS_REF) == git(alice, "rev-parse", OBSERVATIONS_REF)


def test_the_first_sync_of_a_fresh_clone_configures_it_and_commits_nothing(team, tmp_path):
    origin, _alice, bob = team
    sha = commit(bob, {"prompts/system.md": "Published.\n"}, "published change")
    gate(bob, sha)
    assert push(bob, "main", "refs/notes/aevolve").returncode == 0
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(origin), str(fresh))
    heads = git(fresh, "for-each-ref", "refs/heads")

    result = sync(Repo.open(fresh))

    assert any(line.startswith("merge.aevolve-jsonl.driver") for line in result.configured)
    assert "+refs/notes/aevolve*:refs/notes/remotes/origin/aevolve*" in git(
        fresh, "config", "--get-all", "remote.origin.fetch")
    assert git(fresh, "for-each-ref", "refs/heads") == heads
    assert git(fresh, "status", "--porcelain") == ""
    assert note_of(fresh, sha)["decision"] == "accept"  # the notes arrived in the local ref
    assert result.main.state == "up-to-date"


def test_plain_git_fetch_and_pull_succeed_after_local_gates(team):
    _origin, alice, bob = team
    sync(Repo.open(alice))  # configured, as `aevolve init` would
    local = commit(alice, {"prompts/system.md": "Alice.\n"}, "alice: prompt", "evolve/a")
    gate(alice, local)
    mine = git(alice, "rev-parse", "refs/notes/aevolve")
    theirs = commit(bob, {"prompts/system.md": "Published.\n"}, "published change")
    gate(bob, theirs)
    assert push(bob, "main", "refs/notes/aevolve").returncode == 0

    fetched = subprocess.run(["git", "fetch"], cwd=alice, capture_output=True, text=True)
    pulled = subprocess.run(["git", "pull", "--ff-only"], cwd=alice, capture_output=True, text=True)

    assert fetched.returncode == 0, fetched.stderr
    assert pulled.returncode == 0, pulled.stderr
    assert "rejected" not in fetched.stderr + pulled.stderr
    assert git(alice, "rev-parse", "main") == theirs
    assert git(alice, "rev-parse", "refs/notes/aevolve") == mine  # local verdicts untouched until a sync
    assert note_of(alice, theirs, "refs/notes/remotes/origin/aevolve")["decision"] == "accept"


def test_a_second_sync_changes_nothing(team, tmp_path):
    _origin, alice, bob = team
    gate(alice, commit(alice, {"prompts/system.md": "Alice.\n"}, "alice: prompt", "evolve/a"))
    theirs = commit(bob, {"prompts/system.md": "Published.\n"}, "published change")
    gate(bob, theirs)
    _observe(alice, tmp_path, "a", [_obs(1)])
    _observe(bob, tmp_path, "b", [_obs(2)])
    assert push(bob, "main", "refs/notes/aevolve", "refs/aevolve/observations").returncode == 0
    assert sync(Repo.open(alice)).changed
    before = refs(alice)

    again = sync(Repo.open(alice))

    assert not again.changed
    assert refs(alice) == before


def test_sync_to_an_unknown_remote_is_a_usage_error(team):
    _origin, alice, _bob = team
    proc = run_cli("sync", "nowhere", cwd=alice)
    assert proc.returncode == 2
    assert "no remote named 'nowhere'" in proc.stderr
