"""`aevolve log` and `aevolve rollback`, on real repositories with gate notes."""

from __future__ import annotations

import json

from aevolve._git.notes import write_gate_report
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.run import commit_proposal
from aevolve._review.history import log, rollback
from aevolve._state.model import State

from conftest import git


def propose(repo: Repo, title: str, edits: list[Edit], evidence=("obs-1", "obs-2")) -> tuple[str, str]:
    proposal = Proposal(title=title, diagnosis="d", change="c", expected_effect="e",
                        edits=edits, evidence=list(evidence))
    result = commit_proposal(repo, "main", proposal, "rules")
    return result.branch, result.commit


def gate_note(repo: Repo, commit: str, decision: str, base_rate: float, cand_rate: float, reasons=()):
    write_gate_report(repo, {
        "version": 1, "candidate": commit, "baseline": repo.ref_target("refs/heads/main"), "decision": decision,
        "reasons": list(reasons) or [f"gate said {decision}"], "cases": [],
        "summary": {"baseline_pass_rate": base_rate, "candidate_pass_rate": cand_rate}})


def promote(root, branch: str) -> None:
    """Fast-forward main the way git users do (the promote command is tested elsewhere)."""
    git(root, "merge", "-q", "--ff-only", branch)


def history(state_repo):
    """main: adopt -> prompt (gated, promoted) -> memory (gated, promoted); one rejected, one ungated."""
    repo = Repo.open(state_repo)
    b1, c1 = propose(repo, "shorter answers", [Edit("write", "prompts/system.md", content="Be brief.\n")])
    gate_note(repo, c1, "accept", 0.5, 0.75)
    promote(state_repo, b1)
    b2, c2 = propose(repo, "remember the refund window",
                     [Edit("append-jsonl", "memory/episodic.jsonl", records=[{"id": "m-2", "content": "30 days."}])],
                     evidence=("obs-3",))
    gate_note(repo, c2, "accept", 0.75, 1.0)
    promote(state_repo, b2)
    b3, c3 = propose(repo, "drop the refund skill", [Edit("delete", "skills/refund-policy/SKILL.md")])
    gate_note(repo, c3, "reject", 1.0, 0.5,
              reasons=["1 case(s) pass on the baseline but fail on the candidate: refund-window"])
    b4, c4 = propose(repo, "rename search tool",
                     [Edit("write", "tools/registry.yaml", content="tools:\n  - name: find\n")])
    return repo, {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "b3": b3, "b4": b4}


def test_log_lists_main_newest_first_with_evolver_evidence_and_score(state_repo):
    repo, c = history(state_repo)
    entries = log(repo)
    assert [e.commit for e in entries[:2]] == [c["c2"], c["c1"]]
    newest = entries[0]
    assert (newest.status, newest.evolver, newest.evidence, newest.aevolve) == ("main", "rules", ["obs-3"], True)
    assert newest.subject == "evolve(memory): remember the refund window"
    assert newest.score == "1.000 (+0.250)"
    assert entries[1].score == "0.750 (+0.250)" and len(entries[1].evidence) == 2


def test_log_shows_commits_not_made_by_aevolve_plainly(state_repo):
    repo, _ = history(state_repo)
    oldest = log(repo)[-1]
    assert ((oldest.aevolve, oldest.evolver, oldest.gate, oldest.subject)
            == (False, None, None, "aevolve: adopt agent state"))


def test_log_without_all_leaves_out_branches_that_never_reached_main(state_repo):
    repo, c = history(state_repo)
    commits = {e.commit for e in log(repo)}
    assert c["c3"] not in commits and c["c4"] not in commits
    assert {e.status for e in log(repo)} == {"main"}


def test_log_all_adds_rejected_proposals_with_reasons_and_ungated_ones(state_repo):
    repo, c = history(state_repo)
    by_commit = {e.commit: e for e in log(repo, all=True)}
    rejected, ungated = by_commit[c["c3"]], by_commit[c["c4"]]
    assert (rejected.status, rejected.branch) == ("rejected", c["b3"])
    assert rejected.gate["reasons"] == ["1 case(s) pass on the baseline but fail on the candidate: refund-window"]
    assert (ungated.status, ungated.gate) == ("ungated", None)
    assert sum(1 for e in by_commit.values() if e.branch) == 2  # promoted branches are not repeated


def test_log_cli_text_json_and_limit(state_repo, cli):
    _, c = history(state_repo)
    text = cli("log", "--all", cwd=state_repo)
    assert text.returncode == 0, text.stderr
    assert f"x {c['c3'][:12]}" in text.stdout and "- 1 case(s) pass on the baseline" in text.stdout
    assert f"? {c['c4'][:12]}" in text.stdout and "[not aevolve] aevolve: adopt agent state" in text.stdout
    data = json.loads(cli("log", "--json", "-n", "2", cwd=state_repo).stdout)
    assert [d["commit"] for d in data] == [c["c2"], c["c1"]]
    assert data[0]["evidence_count"] == 1 and data[0]["gate"]["candidate_pass_rate"] == 1.0


def test_rollback_restores_layers_from_ref_keeps_protected_paths_and_touches_nothing_else(state_repo, cli):
    repo = Repo.open(state_repo)
    old = git(state_repo, "rev-parse", "main")
    b1, _ = propose(repo, "new prompt and skill", [
        Edit("write", "prompts/system.md", content="Be brief.\n"),
        Edit("write", "skills/extra/SKILL.md", content="---\nname: extra\ndescription: Extra.\n---\nExtra.\n"),
        Edit("append-jsonl", "memory/episodic.jsonl", records=[{"id": "m-2", "content": "new"}])])
    promote(state_repo, b1)
    # the suite grows on main by hand (protected: only people change it)
    (state_repo / "evals/more.yaml").write_text("- id: extra\n  input: {}\n  assert: [{type: contains, value: x}]\n")
    git(state_repo, "add", "-A")
    git(state_repo, "commit", "-q", "-m", "more evals")
    main_before = git(state_repo, "rev-parse", "main")
    status_before = git(state_repo, "status", "--porcelain")
    proc = cli("rollback", old, "--reason", "The new prompt made answers too terse.", "--json", cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert git(state_repo, "rev-parse", "main") == main_before  # history untouched
    assert git(state_repo, "status", "--porcelain") == status_before
    assert (state_repo / "prompts/system.md").read_text() == "Be brief.\n"  # worktree untouched
    rolled, before, current = (State.from_tree(repo, r) for r in (result["commit"], old, main_before))
    for layer in ("prompts/", "skills/", "tools/", "memory/"):
        assert {p: f.oid for p, f in rolled.files.items() if p.startswith(layer)} == \
               {p: f.oid for p, f in before.files.items() if p.startswith(layer)}
    for path in ("evals/more.yaml", "evals/basic.yaml", "aevolve.yaml", "manifest.yaml"):
        assert rolled.files[path].oid == current.files[path].oid
    assert git(state_repo, "rev-parse", result["commit"] + "^") == main_before
    message = git(state_repo, "log", "-1", "--format=%B", result["commit"])
    assert f"Restores the state of {old} {old[:12]}" in message
    assert "The new prompt made answers too terse." in message
    assert "- restore prompts/system.md" in message and "- remove skills/extra/SKILL.md" in message
    assert "Aevolve-Evolver: rollback" in message


def test_rollback_branch_is_a_proposal_the_log_shows_as_ungated(state_repo):
    repo = Repo.open(state_repo)
    old = git(state_repo, "rev-parse", "main")
    b1, _ = propose(repo, "x", [Edit("write", "prompts/system.md", content="Be brief.\n")])
    promote(state_repo, b1)
    result = rollback(repo, old, evidence=["obs-9"])
    assert result.branch.startswith("evolve/") and result.rationale.evidence == ["obs-9"]
    [entry] = [e for e in log(repo, all=True) if e.branch == result.branch]
    assert (entry.status, entry.evolver) == ("ungated", "rollback")


def test_rollback_with_nothing_to_restore_says_so_and_exits_zero(state_repo, cli):
    refs_before = git(state_repo, "for-each-ref")
    proc = cli("rollback", "main", cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nothing to restore:")
    assert git(state_repo, "for-each-ref") == refs_before


def test_log_reads_gate_notes_from_a_flat_notes_tree_too(state_repo):
    repo, c = history(state_repo)
    # rewrite the notes tree flat, the layout older aevolve wrote
    notes = repo.ref_target("refs/notes/aevolve")
    files = {f.path.replace("/", ""): repo.blob(f.oid) for f in repo.list_files(repo.tree(notes))}
    flat = repo.commit(repo.build_tree(None, files), [notes], "flat\n")
    repo.update_ref("refs/notes/aevolve", flat, notes)
    entries = {e.commit: e for e in log(repo, all=True)}
    assert entries[c["c2"]].score == "1.000 (+0.250)"
    assert entries[c["c3"]].status == "rejected" and entries[c["c4"]].status == "ungated"
