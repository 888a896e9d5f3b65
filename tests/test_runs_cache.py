"""Run results that travel: refs/notes/aevolve-runs, written with the gate note, merged by sync."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_signing import make_key

from aevolve._gate.run import gate
from aevolve._gate.shared_runs import RUNS_REF, Shared, batches, dump, parse
from aevolve._git.repo import NOTES_REF, Repo
from aevolve._remote.notes_merge import Sides, runs_pick
from aevolve._remote.sync import sync

from conftest import git, run_cli
from gate_support import GateRepo, cases_yaml

IDS = ["c0", "c1", "c2", "c3"]


@pytest.fixture
def team(tmp_path):
    """(source GateRepo, alice, bob): a bare origin made from a gate repo with two evolution
    branches, and two clones of it. Every runner start of every clone is logged in source.log."""
    (tmp_path / "src").mkdir()
    g = GateRepo(tmp_path / "src", {i: "right" for i in IDS}, cases_yaml(*IDS), jobs=4)
    g.answers_branch("evolve/x", **{i: "right" for i in IDS}, extra="more")
    g.answers_branch("evolve/y", **{i: "right" for i in IDS}, other="fact")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(g.path), str(bare))
    assert run_cli("hooks", "install", "--server", bare).returncode == 0  # the runs notes pass its checks
    for name in ("alice", "bob"):
        git(tmp_path, "clone", "-q", str(bare), str(tmp_path / name))
        for branch in ("evolve/x", "evolve/y"):
            git(tmp_path / name, "branch", "-q", branch, f"origin/{branch}")
    return g, Repo.open(tmp_path / "alice"), Repo.open(tmp_path / "bob")


def _publish(clone: Repo) -> None:
    """What a CI clone does after gating: push its notes (the runs with them)."""
    git(clone.workdir, "push", "-q", "origin", f"{RUNS_REF}:{RUNS_REF}", f"{NOTES_REF}:{NOTES_REF}")


def _runs_of(repo: Repo, tree: str) -> list[dict]:
    return [run for batch in parse(repo.note_at(repo.ref_target(RUNS_REF), tree)) for run in batch["runs"]]


def test_a_gate_notes_its_runs_on_both_trees_with_the_gate_note(team):
    _g, alice, _bob = team
    report = gate(alice, "evolve/x")
    assert report.decision == "accept"
    assert alice.ref_target(RUNS_REF) is not None and alice.read_note(report.candidate) is not None
    for tree in (report.baseline_tree, report.candidate_tree):
        runs = _runs_of(alice, tree)
        assert sorted((r["rep"], r["result"]["output"]) for r in runs) == [(0, "right")] * len(IDS)
        assert {r["exam"] for r in runs} == {report.exam_digest}


def test_a_fresh_clone_after_sync_starts_no_runner_for_the_baseline(team):
    g, alice, bob = team
    gate(alice, "evolve/x")
    _publish(alice)
    sync(bob)
    before = g.runs()
    report = gate(bob, "evolve/y")  # another candidate: only its own tree needs runs
    assert report.decision == "accept"
    assert g.runs() - before == len(IDS) == report.timings["runs_started"]
    assert report.timings["runs_shared"] == len(IDS)
    assert all(entry["baseline"]["cached"] for entry in report.cases)


def test_a_fresh_clone_regating_the_same_candidate_starts_no_runner(team):
    g, alice, bob = team
    gate(alice, "evolve/x")
    _publish(alice)
    sync(bob)
    before = g.runs()
    report = gate(bob, "evolve/x", write_note=False)
    assert g.runs() == before and report.timings["runs_started"] == 0
    assert report.decision == "accept"


def test_without_sync_a_fresh_clone_runs_the_baseline(team):
    g, alice, bob = team
    gate(alice, "evolve/x")
    _publish(alice)
    before = g.runs()
    gate(bob, "evolve/y")
    assert g.runs() - before == 2 * len(IDS)


def test_regating_writes_no_new_runs(team):
    _g, alice, _bob = team
    gate(alice, "evolve/x")
    tip = alice.ref_target(RUNS_REF)
    gate(alice, "evolve/x")
    assert alice.ref_target(RUNS_REF) == tip


def test_a_no_cache_regate_adds_no_run_already_noted(team):
    _g, alice, _bob = team
    gate(alice, "evolve/x")
    tip = alice.ref_target(RUNS_REF)
    gate(alice, "evolve/x", use_cache=False)  # every run made again
    assert alice.ref_target(RUNS_REF) == tip


def test_runs_published_with_no_cache_are_reused_by_a_later_gate(team):
    g, alice, _bob = team
    gate(alice, "evolve/x", use_cache=False)  # the SQLite cache is not written
    before = g.runs()
    gate(alice, "evolve/y")
    assert g.runs() - before == len(IDS)  # the baseline came from the runs notes


def _drop_sqlite(repo: Repo) -> None:
    from aevolve._state.cache import cache_path

    cache_path(repo).unlink(missing_ok=True)


def test_timed_cases_are_never_shared(tmp_path):
    timed = "- id: timed\n  input: {q: timed}\n  assert:\n    - {type: latency, threshold: 60000}\n"
    cases = cases_yaml("quick") + timed
    g = GateRepo(tmp_path, {"quick": "right", "timed": "right"}, cases, jobs=2)
    g.answers_branch("evolve/x", quick="right", timed="right", extra="x")
    report = gate(g.repo, "evolve/x")
    assert report.decision == "accept"
    for tree in (report.baseline_tree, report.candidate_tree):
        runs = _runs_of(g.repo, tree)
        assert len(runs) == 1 and runs[0]["result"]["output"] == "right"  # quick's run only


def test_a_run_that_prints_a_secret_is_not_published(tmp_path, monkeypatch):
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    g = GateRepo(tmp_path, {"a": "right"}, cases_yaml("a"))
    tree = str(g.repo.resolve("main").tree.id)
    leaky = Shared((tree, "h1", "r", 0), "d", {"status": "ok", "output": f"key {secret}"})
    clean = Shared((tree, "h2", "r", 0), "d", {"status": "ok", "output": "right"})
    made = batches(g.repo, [leaky, clean], "main")
    assert [run["case"] for run in made[tree]["runs"]] == ["h2"]


def test_with_an_allowed_signers_list_only_runs_signed_by_a_listed_key_are_reused(team, tmp_path):
    g, alice, bob = team
    key = make_key(tmp_path / "keys", "ci")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'ci@example.com namespaces="aevolve-runs" {(tmp_path / "keys" / "ci.pub").read_text()}')
    git(bob.workdir, "config", "aevolve.allowedSigners", str(allowed))
    gate(alice, "evolve/x")  # unsigned
    _publish(alice)
    sync(bob)
    before = g.runs()
    gate(bob, "evolve/y", write_note=False)
    assert g.runs() - before == 2 * len(IDS)  # unsigned runs are not trusted

    git(alice.workdir, "config", "aevolve.signingKey", str(key))
    git(alice.workdir, "config", "user.email", "ci@example.com")
    _drop_sqlite(alice)
    gate(alice, "evolve/y", use_cache=False)  # signed runs of both trees
    _publish(alice)
    sync(bob)
    _drop_sqlite(bob)
    before = g.runs()
    report = gate(bob, "evolve/y", write_note=False)
    assert g.runs() == before and report.timings["runs_shared"] == 2 * len(IDS)


def test_sync_unites_the_runs_both_clones_made_on_one_tree(team):
    _g, alice, bob = team
    gate(alice, "evolve/x")
    gate(bob, "evolve/y")
    _publish(alice)
    merged = sync(bob)
    assert merged.runs is not None and merged.runs.changed
    base = str(bob.resolve("main").tree.id)
    assert len(_runs_of(bob, base)) == 2 * len(IDS)  # the same runs, made twice: both batches kept
    pushed = subprocess.run(["git", "push", "origin", f"{RUNS_REF}:{RUNS_REF}"], cwd=bob.workdir,
                            capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr  # on top of the server's: its hook accepts it


def test_runs_pick_is_the_same_union_on_both_sides():
    one = {"runs": [{"case": "a", "runner": "r", "rep": 0, "exam": "d", "result": {"status": "ok"}}]}
    two = {"runs": [{"case": "b", "runner": "r", "rep": 0, "exam": "d", "result": {"status": "ok"}}]}
    left, right = dump([one]), dump([two])
    ours, choice = runs_pick(Sides("t" * 40, left, right, None))
    theirs, _ = runs_pick(Sides("t" * 40, right, left, None))
    assert ours == theirs and choice.kept == "union"
    assert len(json.loads(ours)["batches"]) == 2


def test_a_clone_that_signs_verdicts_reuses_only_runs_it_signed_itself(team, tmp_path):
    g, alice, bob = team
    key = make_key(tmp_path / "keys", "ci")
    git(bob.workdir, "config", "aevolve.signingKey", str(key))  # bob signs verdicts (CI), with no signers list
    gate(alice, "evolve/x")  # anyone with push access could have written these runs
    _publish(alice)
    sync(bob)
    before = g.runs()
    gate(bob, "evolve/y", write_note=False)
    assert g.runs() - before == 2 * len(IDS)  # its signature never vouches for runs it cannot trust

    _drop_sqlite(bob)
    gate(bob, "evolve/y", use_cache=False)  # now runs it signed itself are noted
    _drop_sqlite(bob)
    before = g.runs()
    report = gate(bob, "evolve/y", write_note=False)
    assert g.runs() == before and report.timings["runs_shared"] == 2 * len(IDS)
