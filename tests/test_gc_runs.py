"""`aevolve gc` and the upkeep prune refs/notes/aevolve-runs: which runs notes go, which stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from test_signing import make_key

from aevolve._gate import gc, shared_runs
from aevolve._gate.shared_runs import NAMESPACE_RUNS, RUNS_REF, Shared, batches, dump, parse, payload
from aevolve._git.repo import MAIN, Repo

from conftest import git, run_cli

DAY = 86400.0
LIM = gc.Limits(keep_trees=3, max_cache_rows=5000, max_age_days=30.0)


@pytest.fixture
def repo(state_repo) -> Repo:
    return Repo.open(state_repo)


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime(shared_runs.MADE_FORMAT)


def a_tree(repo: Repo, name: str) -> str:
    """A tree no ref points at (a candidate gated once, whose branch is gone)."""
    return str(repo.build_tree(repo.tree("main"), {"memory/extra.jsonl": f'{{"id": "{name}"}}\n'.encode()}))


def batch(case: str = "c", made: float | None = None) -> dict:
    out: dict = {"runs": [{"case": case, "runner": "r", "rep": 0, "exam": "d",
                           "result": {"status": "ok", "output": "right"}}]}
    if made is not None:
        out["made"] = iso(made)
    return out


def add_note(repo: Repo, tree: str, *found: dict) -> None:
    repo.update_note(tree, lambda old: dump([*parse(old), *found]), RUNS_REF)


def notes(repo: Repo) -> set[str]:
    tip = repo.ref_target(RUNS_REF)
    return {n.tree for n in gc.runs_notes(repo, tip)} if tip else set()


def prune(repo: Repo, now: float | None = None, lim: gc.Limits = LIM) -> gc.GcResult:
    out = gc.GcResult()
    gc.prune_runs(repo, lim, time.time() if now is None else now, out)
    return out


def advance_main(repo: Repo, n: int) -> list[str]:
    """`n` new first-parent commits on main; the tree of each, oldest first."""
    trees = []
    for i in range(n):
        parent = repo.ref_target(MAIN)
        tree = str(repo.build_tree(repo.tree(parent), {"memory/main.jsonl": f'{{"id": "m{i}"}}\n'.encode()}))
        repo.update_ref(MAIN, str(repo.commit(tree, [parent], f"main {i}\n")), parent)
        trees.append(tree)
    return trees


OLD = time.time() - 40 * DAY


# -- what goes, what stays -----------------------------------------------------------------

def test_the_runs_note_of_an_old_tree_nothing_uses_is_dropped(repo):
    tree = a_tree(repo, "old")
    add_note(repo, tree, batch(made=OLD))
    size = len(repo.note_at(repo.ref_target(RUNS_REF), tree) or b"")
    result = prune(repo)
    assert tree not in notes(repo)
    assert (result.runs_notes_removed, result.runs_bytes, result.runs_notes_kept) == (1, size, 0)


def test_the_runs_note_of_a_recent_main_tree_is_kept_however_old(repo):
    tree = str(repo.tree("main").id)
    add_note(repo, tree, batch(made=OLD))
    assert prune(repo).runs_notes_kept == 1
    assert tree in notes(repo)


def test_a_main_tree_older_than_keep_trees_commits_goes_once_its_runs_are_old(repo):
    first, *recent = advance_main(repo, LIM.keep_trees + 1)
    for tree in (first, *recent):
        add_note(repo, tree, batch(made=OLD))
    prune(repo)
    assert notes(repo) == set(recent)


@pytest.mark.parametrize("ref", ["refs/heads/evolve/x", "refs/remotes/origin/evolve/y"])
def test_the_runs_note_of_a_live_evolve_tip_local_or_remote_tracking_is_kept(repo, ref):
    tree = a_tree(repo, ref)
    repo.create_ref(ref, str(repo.commit(tree, [repo.ref_target(MAIN)], "evolve: x\n")))
    add_note(repo, tree, batch(made=OLD))
    prune(repo)
    assert tree in notes(repo)


def test_a_note_that_gained_runs_within_max_age_days_is_kept(repo):
    tree = a_tree(repo, "recent")
    add_note(repo, tree, batch("a", made=OLD), batch("b", made=time.time() - DAY))
    prune(repo)
    assert tree in notes(repo)


def test_a_batch_without_made_ages_by_when_the_runs_ref_last_wrote_its_note(repo):
    tree = a_tree(repo, "legacy")
    add_note(repo, tree, batch())  # written before batches carried `made`
    prune(repo)
    assert tree in notes(repo)  # written just now
    prune(repo, now=time.time() + 40 * DAY)
    assert tree not in notes(repo)


def test_a_made_far_in_the_future_does_not_keep_a_note_forever(repo):
    tree = a_tree(repo, "forged")
    add_note(repo, tree, batch(made=time.time() + 3650 * DAY))
    prune(repo, now=time.time() + 40 * DAY)  # counted as undated: aged by the runs ref's history
    assert tree not in notes(repo)


def test_gc_without_a_runs_ref_is_a_no_op(repo):
    result = gc.collect(repo, LIM)
    assert repo.ref_target(RUNS_REF) is None
    assert (result.runs_notes_removed, result.runs_notes_kept, result.warnings) == (0, 0, [])


def test_pruning_writes_one_notes_commit_on_top_of_the_old_tip(repo):
    olds = [a_tree(repo, f"old{i}") for i in range(3)]
    for tree in olds:
        add_note(repo, tree, batch(made=OLD))
    before = repo.ref_target(RUNS_REF)
    prune(repo)
    after = repo.resolve(repo.ref_target(RUNS_REF))
    assert [str(p) for p in after.parent_ids] == [before] and notes(repo) == set()


def test_a_second_gc_finds_nothing_more_to_drop(repo):
    add_note(repo, a_tree(repo, "old"), batch(made=OLD))
    prune(repo)
    tip = repo.ref_target(RUNS_REF)
    assert prune(repo).runs_notes_removed == 0 and repo.ref_target(RUNS_REF) == tip


# -- hostile notes ---------------------------------------------------------------------------

def test_a_runs_note_that_is_not_json_is_dropped_with_a_warning_naming_its_tree(repo):
    tree, kept = str(repo.tree("main").id), a_tree(repo, "fine")
    repo.write_note(tree, b"{ not json \x00\xff" * 1000, RUNS_REF)
    add_note(repo, kept, batch(made=time.time()))
    result = prune(repo)
    assert notes(repo) == {kept}
    assert len(result.warnings) == 1 and tree in result.warnings[0]


def test_a_runs_note_over_the_size_a_gate_reads_is_dropped_without_being_read(repo, monkeypatch):
    tree = str(repo.tree("main").id)
    add_note(repo, tree, *(batch(f"case{i}", made=time.time()) for i in range(50)))
    monkeypatch.setattr(shared_runs, "MAX_NOTE_BYTES", 1000)
    huge = repo.note_at(repo.ref_target(RUNS_REF), tree)
    assert huge is not None and len(huge) > 1000
    monkeypatch.setattr(repo, "blob", lambda oid: pytest.fail(f"read the note {oid}"))
    result = prune(repo)
    assert tree not in notes(repo) and tree in result.warnings[0]


def test_the_gc_command_prints_the_warning_about_a_garbled_note(repo):
    tree = a_tree(repo, "garbled")
    repo.write_note(tree, b"[1, 2, 3]\n", RUNS_REF)
    result = run_cli("-C", repo.workdir, "gc")
    assert result.returncode == 0, result.stderr
    assert f"the runs note of tree {tree}" in result.stderr
    assert "removed 1 runs note(s)" in result.stdout


# -- races -------------------------------------------------------------------------------

def _race_once(repo: Repo, monkeypatch, tree: str, case: str) -> list[str]:
    """Make a gate (another Repo: another process's view) add a batch on `tree` between
    gc's plan and its compare-and-swap; the names update_ref was called with."""
    other, real, calls = Repo.open(repo.workdir), repo.update_ref, []

    def racing(name, new, old):
        if name == RUNS_REF and not calls:
            add_note(other, tree, batch(case, made=time.time()))
        calls.append(name)
        return real(name, new, old)

    monkeypatch.setattr(repo, "update_ref", racing)
    return calls


def test_a_gate_note_written_on_the_tree_gc_is_dropping_keeps_the_note(repo, monkeypatch):
    tree = a_tree(repo, "old")
    add_note(repo, tree, batch("old", made=OLD))
    calls = _race_once(repo, monkeypatch, tree, "fresh")
    result = prune(repo)
    assert calls == [RUNS_REF] and result.runs_notes_removed == 0  # the lost swap was planned again
    held = parse(repo.note_at(repo.ref_target(RUNS_REF), tree))
    assert {run["case"] for b in held for run in b["runs"]} == {"old", "fresh"}


def test_a_gate_note_written_while_gc_prunes_survives_the_prune(repo, monkeypatch):
    old, new = a_tree(repo, "old"), a_tree(repo, "new")
    add_note(repo, old, batch("old", made=OLD))
    calls = _race_once(repo, monkeypatch, new, "fresh")
    result = prune(repo)
    assert calls == [RUNS_REF, RUNS_REF] and result.runs_notes_removed == 1
    assert notes(repo) == {new}


def test_a_gate_note_written_just_after_gc_pruned_lands_on_the_pruned_tip(repo):
    tree = a_tree(repo, "old")
    add_note(repo, tree, batch("old", made=OLD))
    stale = repo.ref_target(RUNS_REF)
    prune(repo)
    calls = []
    other = Repo.open(repo.workdir)

    def change(old):
        calls.append(old)
        return dump([*parse(old), batch("fresh", made=time.time())])

    other.update_note(tree, change, RUNS_REF)
    assert calls == [None] and stale != repo.ref_target(RUNS_REF)
    held = parse(repo.note_at(repo.ref_target(RUNS_REF), tree))
    assert [run["case"] for b in held for run in b["runs"]] == ["fresh"]


WRITER = """
import sys, time
from datetime import UTC, datetime
from aevolve._gate.shared_runs import RUNS_REF, dump, parse
from aevolve._git.repo import Repo
repo, count = Repo.open(sys.argv[1]), int(sys.argv[2])
for i in range(count):
    tree = f"{i:040x}"
    made = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    batch = {"runs": [{"case": str(i), "runner": "r", "rep": 0, "exam": "d", "result": {"status": "ok"}}],
             "made": made}
    repo.update_note(tree, lambda old: dump([*parse(old), batch]), RUNS_REF)
    print(tree, flush=True)
"""


def test_notes_a_racing_process_writes_all_survive_repeated_gcs(repo):
    olds = [a_tree(repo, f"old{i}") for i in range(20)]
    for tree in olds:
        add_note(repo, tree, batch(made=OLD))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(repo.workdir), "30"], stdout=subprocess.PIPE,
                              text=True)
    pruned = 0
    try:
        deadline = time.monotonic() + 60
        while writer.poll() is None and time.monotonic() < deadline:
            pruned += prune(repo).runs_notes_removed
    finally:
        written, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    pruned += prune(repo).runs_notes_removed
    assert notes(repo) == set(written.split())  # every racing note kept, every old one dropped
    assert pruned == len(olds)


# -- what remains still verifies, and sync ----------------------------------------------------

def test_signed_batches_that_remain_still_verify(repo, tmp_path):
    from aevolve._trust.signing import verify

    key = make_key(tmp_path / "keys", "ci")
    git(repo.workdir, "config", "aevolve.signingKey", str(key))
    git(repo.workdir, "config", "user.email", "ci@example.com")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'ci@example.com namespaces="aevolve-runs" {(tmp_path / "keys" / "ci.pub").read_text()}')
    main_tree, old = str(repo.tree("main").id), a_tree(repo, "old")
    runs = [Shared((t, "case", "runner", 0), "exam", {"status": "ok", "output": "right"}) for t in (main_tree, old)]
    for tree, made in batches(repo, runs, "main").items():
        add_note(repo, tree, {**made, "made": iso(OLD)})
    add_note(repo, main_tree, batch("unsigned", made=OLD))  # in the same note
    prune(repo)
    assert notes(repo) == {main_tree}
    held = parse(repo.note_at(repo.ref_target(RUNS_REF), main_tree))
    signed = [b for b in held if "signature" in b]
    assert len(held) == 2 and len(signed) == 1
    checked = verify(payload(main_tree, signed[0]["runs"]), signed[0]["signature"], NAMESPACE_RUNS, allowed)
    assert checked.valid


def test_a_note_gc_dropped_stays_dropped_when_a_sync_merges_a_remote_that_still_has_it(repo):
    from aevolve._remote.notes_merge import merge_notes, runs_pick

    tree = a_tree(repo, "old")
    add_note(repo, tree, batch(made=OLD))
    remote = repo.ref_target(RUNS_REF)
    other = a_tree(repo, "theirs")  # the remote moved on: a merge, not "ahead"
    theirs = str(repo.note_commit(other, dump([batch(made=time.time())]), remote, RUNS_REF))
    prune(repo)
    merge_notes(repo, RUNS_REF, theirs, runs_pick, deletions_stick=True)
    assert notes(repo) == {other}  # the remote's new runs came, the pruned note did not


def test_a_note_gc_dropped_comes_back_when_the_remote_added_runs_to_it(repo):
    from aevolve._remote.notes_merge import merge_notes, runs_pick

    tree = a_tree(repo, "old")
    add_note(repo, tree, batch(made=OLD))
    remote = repo.ref_target(RUNS_REF)
    theirs = str(repo.note_commit(tree, dump([batch(made=OLD), batch("d", made=time.time())]), remote, RUNS_REF))
    prune(repo)
    merge_notes(repo, RUNS_REF, theirs, runs_pick, deletions_stick=True)
    assert tree in notes(repo)  # new runs on it: the note lives again (and is recent)


def test_a_gate_writes_made_on_its_batches_and_gc_keeps_what_main_and_the_branch_need(tmp_path):
    from aevolve._gate.run import gate

    from gate_support import GateRepo, cases_yaml

    g = GateRepo(tmp_path, {"a": "right"}, cases_yaml("a"))
    g.answers_branch("evolve/x", a="right", extra="more")
    report = gate(g.repo, "evolve/x")
    tip = g.repo.ref_target(RUNS_REF)
    made = [b.get("made") for t in (report.baseline_tree, report.candidate_tree) for b in parse(g.repo.note_at(tip, t))]
    assert made and all(abs(shared_runs.made_at({"made": m}, time.time()) - time.time()) < 3600 for m in made)
    later = time.time() + 40 * DAY
    prune(g.repo, now=later)
    assert notes(g.repo) == {report.baseline_tree, report.candidate_tree}
    git(g.path, "branch", "-q", "-D", "evolve/x")
    prune(g.repo, now=later)
    assert notes(g.repo) == {report.baseline_tree}


# -- the command line and the upkeep ----------------------------------------------------------

def test_gc_json_reports_the_runs_notes_and_bytes_it_removed(repo):
    tree = a_tree(repo, "old")
    add_note(repo, tree, batch(made=OLD))
    size = len(repo.note_at(repo.ref_target(RUNS_REF), tree) or b"")
    result = run_cli("-C", repo.workdir, "gc", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["runs_notes_removed"], data["runs_bytes"], data["dry_run"]) == (1, size, False)
    assert tree not in notes(repo)


def test_gc_dry_run_counts_the_runs_notes_it_would_remove_and_writes_nothing(repo):
    tree = a_tree(repo, "old")
    add_note(repo, tree, batch(made=OLD))
    tip = repo.ref_target(RUNS_REF)
    result = run_cli("-C", repo.workdir, "gc", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["runs_notes_removed"], data["dry_run"]) == (1, True) and data["runs_bytes"] > 0
    assert repo.ref_target(RUNS_REF) == tip
    text = run_cli("-C", repo.workdir, "gc", "--dry-run")
    assert "would remove 1 runs note(s)" in text.stdout and repo.ref_target(RUNS_REF) == tip


def test_the_upkeep_prunes_the_runs_notes_at_most_once_a_day(repo):
    first, second = a_tree(repo, "first"), a_tree(repo, "second")
    add_note(repo, first, batch(made=OLD))
    done = gc.maintain(repo)
    assert done is not None and done.runs_notes_removed == 1 and first not in notes(repo)
    add_note(repo, second, batch(made=OLD))
    gc.maintain(repo)
    assert second in notes(repo)  # pruned again tomorrow
    yesterday = time.time() - DAY - 60
    os.utime(repo.common_dir / "aevolve" / gc.RUNS_STAMP, (yesterday, yesterday))
    gc.maintain(repo)
    assert second not in notes(repo)
