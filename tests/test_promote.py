"""Promotion: main moves only to an accepted descendant, with its note, atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aevolve._errors import Conflict, GateRejected
from aevolve._git.notes import write_gate_report
from aevolve._git.repo import MAIN, NOTES_REF, Repo
from aevolve._promote.promote import NotGated, promote
from aevolve._state import schemas

from conftest import SAMPLE_STATE, admissible, git, make_state_repo, run_cli, verdict_for


def report(commit: str, decision: str = "accept", **extra) -> dict:
    return {"version": 1, "candidate": str(commit), "decision": decision, "reasons": [f"test: {decision}"], **extra}


def accept(repo: Repo, commit: str) -> None:
    write_gate_report(repo, verdict_for(repo, commit))


def candidate(repo: Repo, files: dict, branch: str | None = None, parent: str | None = None) -> str:
    """A commit on `parent` (main) built from objects, like `aevolve propose` makes."""
    parent = parent or repo.ref_target(MAIN)
    edits = {p: (None if c is None else c.encode()) for p, c in files.items()}
    commit = str(repo.commit(repo.build_tree(repo.resolve(parent).tree, edits), [parent], "evolve: test change\n"))
    if branch:
        repo.create_ref(f"refs/heads/{branch}", commit)
    return commit


def note_of(path, rev: str = "main") -> dict:
    return json.loads(git(path, "notes", "--ref", "aevolve", "show", rev))


@pytest.fixture
def repo(state_repo) -> Repo:
    return Repo.open(state_repo)


def test_the_test_reports_are_schema_valid(repo):
    assert schemas.errors("gate-report", report("a" * 40)) == []


# -- the rule ----------------------------------------------------------------------

def test_accepted_candidate_moves_main_and_its_note_is_on_main(repo):
    old = repo.ref_target(MAIN)
    cand = candidate(repo, {"prompts/system.md": "Be precise.\n"}, branch="evolve/one")
    accept(repo, cand)
    result = promote(repo, "evolve/one", regate=False)
    assert (result.old, result.new, result.rebased, result.promoted) == (old, cand, False, True)
    assert repo.ref_target(MAIN) == cand
    assert note_of(repo.workdir)["candidate"] == cand
    assert result.report["decision"] == "accept"


def test_candidate_without_a_note_is_refused_and_main_stays(repo):
    old = repo.ref_target(MAIN)
    cand = candidate(repo, {"prompts/system.md": "x\n"}, branch="evolve/ungated")
    with pytest.raises(NotGated, match="it has no gate note"):
        promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == old


def test_rejected_candidate_is_refused_with_the_reasons(repo):
    old = repo.ref_target(MAIN)
    cand = candidate(repo, {"prompts/system.md": "x\n"})
    write_gate_report(repo, {**verdict_for(repo, cand, "reject"), "reasons": ["refund-window regressed"]})
    with pytest.raises(GateRejected, match="refund-window regressed") as err:
        promote(repo, cand, regate=False)
    assert err.value.exit_code == 100
    assert repo.ref_target(MAIN) == old


def test_a_note_on_the_parent_does_not_count(repo):
    old = repo.ref_target(MAIN)
    cand = candidate(repo, {"prompts/system.md": "x\n"})
    write_gate_report(repo, report(old))
    with pytest.raises(NotGated):
        promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == old


def test_a_note_naming_another_commit_does_not_count(repo):
    old = repo.ref_target(MAIN)
    cand = candidate(repo, {"prompts/system.md": "x\n"})
    repo.write_note(cand, json.dumps(report(old)).encode())  # accepts the parent, stored on cand
    with pytest.raises(NotGated, match="verdict on another commit"):
        promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == old


def test_a_shard_report_does_not_count(repo):
    cand = candidate(repo, {"prompts/system.md": "x\n"})
    write_gate_report(repo, verdict_for(repo, cand, shard={"index": 1, "count": 2}))
    with pytest.raises(NotGated, match="partial shard report"):
        promote(repo, cand, regate=False)


def test_a_candidate_already_on_main_is_nothing_to_do(repo):
    old = repo.ref_target(MAIN)
    result = promote(repo, "main", regate=False)
    assert not result.promoted and result.new == old


def test_without_regate_a_candidate_behind_a_moved_main_is_refused(repo):
    first = candidate(repo, {"prompts/system.md": "first\n"})
    second = candidate(repo, {"skills/x/SKILL.md": "---\nname: x\ndescription: d\n---\n"})
    accept(repo, first)
    accept(repo, second)
    promote(repo, first, regate=False)
    with pytest.raises(Conflict, match="moved since"):
        promote(repo, second, regate=False)
    assert repo.ref_target(MAIN) == first


def test_the_note_is_kept_when_the_notes_ref_holds_other_notes(repo):
    cand = candidate(repo, {"prompts/system.md": "x\n"})
    accept(repo, cand)
    for i in range(3):  # other notes written after the accepting one
        write_gate_report(repo, report(candidate(repo, {f"prompts/p{i}.md": "p\n"}), "reject"))
    notes_before = repo.ref_target(NOTES_REF)
    promote(repo, cand, regate=False)
    assert repo.ref_target(NOTES_REF) == notes_before  # verified, not rewritten
    assert admissible(repo, repo.ref_target(MAIN))


# -- the checkout ------------------------------------------------------------------

def status(path) -> str:
    """`git status --porcelain` exactly (the conftest helper strips the leading column)."""
    proc = subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True, check=True)
    return proc.stdout.rstrip("\n")


def test_clean_checkout_follows_main_and_status_stays_clean(repo):
    root = repo.workdir
    cand = candidate(repo, {"prompts/system.md": "Be precise.\n", "skills/new/SKILL.md": "---\nname: new\n---\n",
                            "tools/registry.yaml": None})
    accept(repo, cand)
    result = promote(repo, cand, regate=False)
    assert (root / "prompts/system.md").read_text() == "Be precise.\n"
    assert (root / "skills/new/SKILL.md").exists()
    assert not (root / "tools/registry.yaml").exists()
    assert status(root) == ""
    assert git(root, "rev-parse", "HEAD") == cand
    assert result.checkouts == [str(root)]


def test_dirty_file_that_would_change_refuses_and_nothing_moves(repo):
    root = repo.workdir
    old, notes = repo.ref_target(MAIN), repo.ref_target(NOTES_REF)
    cand = candidate(repo, {"prompts/system.md": "new\n", "memory/episodic.jsonl": ""})
    accept(repo, cand)
    notes = repo.ref_target(NOTES_REF)
    (root / "prompts/system.md").write_text("my local edit\n")
    with pytest.raises(Conflict) as err:
        promote(repo, cand, regate=False)
    assert err.value.files == ["prompts/system.md"]
    assert "prompts/system.md" in str(err.value) and err.value.exit_code == 6
    assert (repo.ref_target(MAIN), repo.ref_target(NOTES_REF)) == (old, notes)
    assert (root / "prompts/system.md").read_text() == "my local edit\n"
    assert status(root) == " M prompts/system.md"


def test_staged_change_that_would_change_refuses(repo):
    root = repo.workdir
    old = repo.ref_target(MAIN)
    cand = candidate(repo, {"prompts/system.md": "new\n"})
    accept(repo, cand)
    (root / "prompts/system.md").write_text("staged\n")
    git(root, "add", "prompts/system.md")
    (root / "prompts/system.md").write_text(SAMPLE_STATE["prompts/system.md"])  # worktree back to OLD
    with pytest.raises(Conflict, match=r"prompts/system\.md"):
        promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == old


def test_untracked_file_in_the_way_refuses(repo):
    root = repo.workdir
    cand = candidate(repo, {"skills/new/SKILL.md": "---\nname: new\n---\n"})
    accept(repo, cand)
    (root / "skills/new").mkdir()
    (root / "skills/new/SKILL.md").write_text("mine, never committed\n")
    with pytest.raises(Conflict) as err:
        promote(repo, cand, regate=False)
    assert err.value.files == ["skills/new/SKILL.md"]
    assert (root / "skills/new/SKILL.md").read_text() == "mine, never committed\n"


def test_unrelated_dirty_file_is_kept_and_main_moves(repo):
    root = repo.workdir
    cand = candidate(repo, {"prompts/system.md": "new\n"})
    accept(repo, cand)
    (root / "memory/episodic.jsonl").write_text('{"id": "local"}\n')
    (root / "scratch.txt").write_text("untracked\n")
    promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == cand
    assert (root / "prompts/system.md").read_text() == "new\n"
    assert (root / "memory/episodic.jsonl").read_text() == '{"id": "local"}\n'
    assert status(root).splitlines() == [" M memory/episodic.jsonl", "?? scratch.txt"]


def test_checkout_of_another_branch_is_left_alone(repo):
    root = repo.workdir
    git(root, "switch", "-q", "-c", "work")
    (root / "prompts/system.md").write_text("dirty on work\n")
    cand = candidate(repo, {"prompts/system.md": "new\n"})
    accept(repo, cand)
    result = promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == cand and result.checkouts == []
    assert (root / "prompts/system.md").read_text() == "dirty on work\n"
    assert git(root, "rev-parse", "HEAD") != cand


def test_linked_worktree_with_main_is_updated(repo, tmp_path):
    root = repo.workdir
    git(root, "switch", "-q", "-c", "work")
    linked = tmp_path / "deploy"
    git(root, "worktree", "add", "-q", str(linked), "main")
    cand = candidate(repo, {"prompts/system.md": "deployed\n"})
    accept(repo, cand)
    result = promote(repo, cand, regate=False)
    assert result.checkouts == [str(linked)]
    assert (linked / "prompts/system.md").read_text() == "deployed\n"
    assert status(linked) == ""


def test_bare_repository_moves_only_refs(state_repo, tmp_path):
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(state_repo), str(bare))
    repo = Repo.open(bare)
    cand = candidate(repo, {"prompts/system.md": "new\n"})
    accept(repo, cand)
    result = promote(repo, cand, regate=False)
    assert repo.ref_target(MAIN) == cand and result.checkouts == []
    assert note_of(bare)["decision"] == "accept"
    assert git(bare, "fsck", "--no-dangling") == ""


# -- the command -------------------------------------------------------------------

def test_cli_promotes_and_prints_json(repo):
    cand = candidate(repo, {"prompts/system.md": "new\n"}, branch="evolve/cli")
    accept(repo, cand)
    proc = run_cli("promote", "evolve/cli", "--json", "--no-regate", cwd=repo.workdir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["promoted"] is True and out["new"] == cand and out["rebased"] is False


def test_cli_exit_codes_tell_refusals_apart(repo):
    root = repo.workdir
    rejected = candidate(repo, {"prompts/system.md": "r\n"})
    write_gate_report(repo, verdict_for(repo, rejected, "reject"))
    ungated = candidate(repo, {"prompts/system.md": "u\n"})
    dirty = candidate(repo, {"prompts/system.md": "d\n"})
    accept(repo, dirty)
    (root / "prompts/system.md").write_text("local\n")
    assert run_cli("promote", rejected, "--no-regate", cwd=root).returncode == 100
    proc = run_cli("promote", ungated, "--no-regate", cwd=root)
    assert proc.returncode == 1 and "no gate note" in proc.stderr
    proc = run_cli("promote", dirty, "--no-regate", "--json", cwd=root)
    assert proc.returncode == 6
    assert json.loads(proc.stdout)["files"] == ["prompts/system.md"]
    assert "Traceback" not in proc.stderr


# -- with the real gate --------------------------------------------------------------

AGENT = """\
import json, os, sys
root = os.environ["AEVOLVE_STATE_DIR"]
json.load(sys.stdin)
memory = open(os.path.join(root, "memory", "episodic.jsonl")).read()
print(json.dumps({"output": " ".join(json.loads(l).get("content", "") for l in memory.splitlines() if l.strip())}))
"""

GATED_STATE = {
    **SAMPLE_STATE,
    "agent/run.py": AGENT,
    "aevolve.yaml": f"gate:\n  runner: [{json.dumps(sys.executable)}, -S, agent/run.py]\n  jobs: 2\n  timeout: 30\n",
}


def mem(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


BASE_MEMORY = {"id": "m-1", "content": "Shoes can be returned within 30 days."}


@pytest.fixture
def gated(tmp_path) -> Repo:
    return Repo.open(make_state_repo(tmp_path / "gated", GATED_STATE))


def test_promote_gates_an_ungated_candidate_and_notes_it_in_the_same_move(gated):
    cand = candidate(gated, {"memory/episodic.jsonl": mem(BASE_MEMORY, {"id": "m-2", "content": "Receipts help."})},
                     branch="evolve/mem")
    notes_before = gated.ref_target(NOTES_REF)
    result = promote(gated, "evolve/mem")
    assert result.gated and result.new == cand
    assert gated.ref_target(MAIN) == cand
    note = note_of(gated.workdir)
    assert note["decision"] == "accept" and note["candidate"] == cand
    # the note arrived with main: one notes commit on top of what was there
    assert [str(p) for p in gated.resolve(NOTES_REF).parent_ids] == ([notes_before] if notes_before else [])


def test_promote_rejects_a_regression_and_records_the_verdict(gated):
    old = gated.ref_target(MAIN)
    cand = candidate(gated, {"memory/episodic.jsonl": mem({"id": "m-1", "content": "No returns."})})
    with pytest.raises(GateRejected):
        promote(gated, cand)
    assert gated.ref_target(MAIN) == old
    assert note_of(gated.workdir, cand)["decision"] == "reject"


def test_moved_main_rebases_merges_memory_and_gates_again(gated):
    root = gated.workdir
    first = candidate(gated, {"memory/episodic.jsonl": mem(BASE_MEMORY, {"id": "a", "content": "From A."})},
                      branch="evolve/a")
    second = candidate(gated, {"memory/episodic.jsonl": mem(BASE_MEMORY, {"id": "b", "content": "From B."})},
                       branch="evolve/b")
    promote(gated, "evolve/a")
    result = promote(gated, "evolve/b")
    assert result.rebased and result.old == first and result.new != second
    new = gated.resolve(result.new)
    assert [str(p) for p in new.parent_ids] == [first]
    assert f"Aevolve-Rebased-From: {second}" in new.message
    ids = [json.loads(line)["id"] for line in (root / "memory/episodic.jsonl").read_text().splitlines()]
    assert ids == ["m-1", "a", "b"]
    assert gated.ref_target("refs/heads/evolve/b") == result.new and result.branch_moved
    assert admissible(gated, result.new)
    assert status(root) == ""


def test_moved_main_with_a_same_id_edit_on_both_sides_is_a_conflict(gated):
    old = gated.ref_target(MAIN)
    first = candidate(gated, {"memory/episodic.jsonl": mem({**BASE_MEMORY, "content": "30 days, with receipt."})})
    second = candidate(gated, {"memory/episodic.jsonl": mem({**BASE_MEMORY, "content": "30 days, any store."})})
    accept(gated, first)
    promote(gated, first)
    with pytest.raises(Conflict) as err:
        promote(gated, second)
    assert err.value.files == ["memory/episodic.jsonl"]
    assert "record 'm-1' edited on both sides differently" in str(err.value)
    assert gated.ref_target(MAIN) == first and old != first


def test_cli_promote_of_an_ungated_branch_gates_it(gated):
    candidate(gated, {"prompts/system.md": "Be brief.\n"}, branch="evolve/p")
    proc = run_cli("promote", "evolve/p", cwd=gated.workdir)
    assert proc.returncode == 0, proc.stderr
    assert "promoted main" in proc.stdout
    assert admissible(gated, gated.ref_target(MAIN))
    assert subprocess.run(["git", "fsck", "--no-dangling"], cwd=gated.workdir, capture_output=True).returncode == 0


def test_refused_promotion_keeps_the_gate_verdict_it_computed(gated):
    root = gated.workdir
    old = gated.ref_target(MAIN)
    cand = candidate(gated, {"prompts/system.md": "Be brief.\n"})
    (root / "prompts/system.md").write_text("local work\n")
    with pytest.raises(Conflict, match=r"prompts/system\.md"):
        promote(gated, cand)
    assert gated.ref_target(MAIN) == old
    assert admissible(gated, cand)  # a second `promote` after cleaning up runs nothing
    (root / "prompts/system.md").write_text(SAMPLE_STATE["prompts/system.md"])
    result = promote(gated, cand)
    assert result.new == cand and not result.gated


def test_a_verdict_against_an_older_main_is_stale_and_does_not_move_main(repo):
    old_main = repo.ref_target(MAIN)
    middle = candidate(repo, {"prompts/a.md": "a\n"})
    tip = candidate(repo, {"prompts/b.md": "b\n"}, parent=middle)
    write_gate_report(repo, {**verdict_for(repo, tip), "baseline": old_main})  # the whole branch at once
    accept(repo, middle)
    promote(repo, middle, regate=False)  # main moves to an ancestor of tip

    with pytest.raises(NotGated, match=r"gated against .* but its parent is"):
        promote(repo, tip, regate=False)
    assert repo.ref_target(MAIN) == middle != old_main


# -- a promotion killed between the ref transaction and the checkout update -------------------

KILLED_CHANGE = {"prompts/system.md": "Be precise.\n", "tools/registry.yaml": None,
                 "skills/new/SKILL.md": "---\nname: new\ndescription: d\n---\n"}


def promote_killed_at(root, repo: Repo, stage: str, files: dict | None = None) -> tuple[str, str]:
    """Start `aevolve promote` in a real process, kill it at `stage`; (old main, candidate)."""
    old = repo.ref_target(MAIN)
    cand = candidate(repo, files or KILLED_CHANGE, branch="evolve/killed")
    accept(repo, cand)
    env = {**os.environ, "AEVOLVE_TEST_PAUSE_AT": stage, "AEVOLVE_TEST_PAUSE_SECONDS": "60"}
    proc = subprocess.Popen([sys.executable, "-m", "aevolve", "promote", "evolve/killed", "--no-regate"], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().strip() == f"aevolve-test-pause {stage}"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    return old, cand


def test_a_promotion_killed_before_the_checkout_update_leaves_the_checkout_behind(repo):
    root = repo.workdir
    _, cand = promote_killed_at(root, repo, "promote-checkout")
    assert repo.ref_target(MAIN) == cand
    assert (root / "prompts/system.md").read_text() == SAMPLE_STATE["prompts/system.md"]  # the checkout did not follow
    assert status(root) != ""
    assert (repo.git_dir / "aevolve" / "promote-journal.json").exists()


def test_the_next_command_finishes_the_interrupted_checkout_update(repo):
    root = repo.workdir
    _, cand = promote_killed_at(root, repo, "promote-checkout")
    result = run_cli("log", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "finished an interrupted promotion" in result.stderr and str(root) in result.stderr
    assert status(root) == ""
    assert git(root, "rev-parse", "HEAD") == cand
    assert (root / "prompts/system.md").read_text() == "Be precise.\n"
    assert not (root / "tools/registry.yaml").exists()
    assert (root / "skills/new/SKILL.md").exists()
    assert not (repo.git_dir / "aevolve" / "promote-journal.json").exists()


def test_after_healing_the_next_promotion_carries_no_reverted_files(repo):
    root = repo.workdir
    _, first = promote_killed_at(root, repo, "promote-checkout")
    assert run_cli("status", cwd=root).returncode in (0, 1)  # heals; validity is not the point
    second = candidate(repo, {"prompts/system.md": "Be precise. Be kind.\n"})
    accept(repo, second)
    promote(repo, second, regate=False)
    assert status(root) == ""
    assert git(root, "diff", "--name-only", first, "HEAD") == "prompts/system.md"  # nothing of OLD came back
    assert not (root / "tools/registry.yaml").exists()


def test_promote_through_the_api_heals_first(repo, capsys):
    root = repo.workdir
    promote_killed_at(root, repo, "promote-checkout")
    second = candidate(repo, {"prompts/system.md": "again\n"})
    accept(repo, second)
    promote(repo, second, regate=False)
    assert "finished an interrupted promotion" in capsys.readouterr().err
    assert status(root) == "" and (root / "prompts/system.md").read_text() == "again\n"


def test_a_file_already_written_by_the_killed_update_is_taken_as_done(repo):
    root = repo.workdir
    promote_killed_at(root, repo, "promote-checkout")
    (root / "prompts/system.md").write_text("Be precise.\n")  # read-tree had written this one when killed
    result = run_cli("log", cwd=root)
    assert "finished an interrupted promotion" in result.stderr
    assert status(root) == ""


def test_local_work_in_the_way_is_kept_and_the_fix_is_named(repo):
    root = repo.workdir
    _, cand = promote_killed_at(root, repo, "promote-checkout")
    (root / "prompts/system.md").write_text("my edit, not saved anywhere\n")
    result = run_cli("log", cwd=root)
    assert result.returncode == 0
    assert "save or discard" in result.stderr and "read-tree -m -u" in result.stderr
    assert (root / "prompts/system.md").read_text() == "my edit, not saved anywhere\n"
    assert (repo.git_dir / "aevolve" / "promote-journal.json").exists()
    second = candidate(repo, {"memory/episodic.jsonl": ""})
    accept(repo, second)
    with pytest.raises(Conflict, match="save or discard"):
        promote(repo, second, regate=False)
    assert repo.ref_target(MAIN) == cand
    (root / "prompts/system.md").write_text(SAMPLE_STATE["prompts/system.md"])  # discarded: back to OLD's
    assert "finished an interrupted promotion" in run_cli("log", cwd=root).stderr
    assert status(root) == ""


def test_a_promotion_killed_before_its_transaction_committed_leaves_nothing_to_finish(repo):
    root = repo.workdir
    old, _ = promote_killed_at(root, repo, "promote-prepare")  # the process only: git aborts the transaction
    assert repo.ref_target(MAIN) == old
    result = run_cli("log", cwd=root)
    assert "nothing to finish" in result.stderr
    assert not (repo.git_dir / "aevolve" / "promote-journal.json").exists()
    assert status(root) == ""


def test_an_interrupted_update_of_a_linked_worktree_is_finished(repo, tmp_path):
    root = repo.workdir
    git(root, "switch", "-q", "-c", "work")
    linked = tmp_path / "deploy"
    git(root, "worktree", "add", "-q", str(linked), "main")
    _, cand = promote_killed_at(linked, repo, "promote-checkout")
    assert status(linked) != ""
    result = run_cli("log", cwd=root)  # any command, from any worktree
    assert f"checkout {linked} updated" in result.stderr
    assert status(linked) == "" and git(linked, "rev-parse", "HEAD") == cand
