"""propose(): snapshot -> evolver -> policy -> one commit on a new evolve/* branch."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

import aevolve
from aevolve._errors import EvolverFailed, PolicyRefused
from aevolve._git.notes import write_gate_report
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.run import commit_proposal, propose

from conftest import git, run_cli

SKILL = "---\nname: greet\ndescription: Greet the user by name.\n---\n\n# Greet\nSay hello.\n"


class Scripted:
    """An Evolver written by a test: returns a fixed proposal and records its context."""

    name = "scripted/v1"

    def __init__(self, proposal):
        self.proposal, self.seen = proposal, None

    def propose(self, ctx):
        self.seen = ctx
        return self.proposal


def make(*edits, **fields):
    base = dict(title="add greeting skill", diagnosis="Users are never greeted (obs-1).",
                change="Adds skills/greet.", expected_effect="Greets users.", evidence=["obs-1"])
    base.update(fields)
    return Proposal(edits=list(edits) or [Edit("write", "skills/greet/SKILL.md", content=SKILL)], **base)


def snapshot(root):
    return (git(root, "status", "--porcelain"), (root / ".git" / "index").read_bytes(),
            git(root, "symbolic-ref", "HEAD"), git(root, "rev-parse", "main"))


def branches(root):
    return git(root, "for-each-ref", "--format=%(refname)", "refs/heads/evolve/").split()


def test_propose_creates_one_commit_on_a_new_branch_and_leaves_the_checkout_alone(state_repo):
    (state_repo / "prompts" / "system.md").write_text("uncommitted work\n")
    git(state_repo, "add", "prompts/system.md")
    (state_repo / "scratch.txt").write_text("untracked\n")
    before = snapshot(state_repo)
    result = aevolve.propose(aevolve.Repo.open(state_repo), evolver=Scripted(make()))
    assert snapshot(state_repo) == before
    assert re.fullmatch(r"evolve/\d{8}-add-greeting-skill-[0-9a-z]{8}", result.branch)
    assert git(state_repo, "rev-parse", result.branch) == result.commit
    assert git(state_repo, "rev-parse", f"{result.commit}^") == git(state_repo, "rev-parse", "main")
    assert git(state_repo, "show", f"{result.branch}:skills/greet/SKILL.md") == SKILL.strip()
    assert git(state_repo, "diff", "--name-only", "main", result.branch) == "skills/greet/SKILL.md"


def test_the_message_has_sections_and_trailers_git_can_parse(state_repo):
    result = propose(state_repo, evolver=Scripted(make()))
    message = git(state_repo, "log", "-1", "--format=%B", result.commit)
    assert message.startswith("evolve(skills): add greeting skill\n\nDiagnosis:\nUsers are never greeted")
    assert "\nChange:\n" in message and "\nExpected effect:\n" in message
    parsed = subprocess.run(["git", "interpret-trailers", "--parse"], input=message, capture_output=True,
                            text=True, check=True).stdout
    trailers = dict(line.split(": ", 1) for line in parsed.splitlines())
    assert trailers["Aevolve-Proposal"] == result.rationale.proposal_id
    assert re.fullmatch(r"p-[0-9a-z]{8}", trailers["Aevolve-Proposal"])
    assert result.branch.endswith(trailers["Aevolve-Proposal"][2:])
    assert trailers["Aevolve-Evidence"] == "obs-1"
    assert trailers["Aevolve-Evolver"] == "scripted/v1"
    assert trailers["Aevolve-Base"] == git(state_repo, "rev-parse", "main")


def test_subject_layer_is_the_proposal_layer_or_the_single_layer_or_state(state_repo):
    both = make(Edit("write", "skills/greet/SKILL.md", content=SKILL), Edit("write", "prompts/extra.md", content="x\n"))
    assert propose(state_repo, evolver=Scripted(both)).message.startswith("evolve(state): ")
    named = make(Edit("write", "prompts/extra2.md", content="y\n"), layer="prompts")
    assert propose(state_repo, evolver=Scripted(named)).message.startswith("evolve(prompts): ")


def test_dry_run_writes_no_ref_and_no_object(state_repo):
    refs = git(state_repo, "for-each-ref")
    objects = git(state_repo, "count-objects", "-v")
    result = propose(state_repo, evolver=Scripted(make()), dry_run=True)
    assert result.dry_run and result.commit is None and "Aevolve-Proposal:" in result.message
    assert git(state_repo, "for-each-ref") == refs
    assert git(state_repo, "count-objects", "-v") == objects


def test_policy_refusal_creates_no_branch(state_repo):
    hostile = make(Edit("write", "evals/basic.yaml", content="[]\n"), Edit("write", "../x", content="x"))
    with pytest.raises(PolicyRefused) as info:
        propose(state_repo, evolver=Scripted(hostile))
    assert len(info.value.violations) == 2
    assert branches(state_repo) == []


def test_a_proposal_breaking_the_schema_is_an_evolver_failure(state_repo):
    with pytest.raises(EvolverFailed, match="/title"):
        propose(state_repo, evolver=Scripted(make(title="x\ny")))
    assert branches(state_repo) == []


def test_an_evolver_that_crashes_is_an_evolver_failure(state_repo):
    class Crashing:
        name = "crash"

        def propose(self, ctx):
            raise RuntimeError("model exploded")

    with pytest.raises(EvolverFailed, match="model exploded"):
        propose(state_repo, evolver=Crashing())


def test_append_jsonl_keeps_existing_bytes_and_adds_a_missing_newline(state_repo):
    (state_repo / "memory" / "raw.jsonl").write_bytes(b'{"id":"a",  "content":"spacing kept"}')
    git(state_repo, "add", ".")
    git(state_repo, "commit", "-qm", "raw")
    result = propose(state_repo,
                     evolver=Scripted(make(Edit("append-jsonl", "memory/raw.jsonl", records=[{"id": "b"}]))))
    data = subprocess.run(["git", "show", f"{result.commit}:memory/raw.jsonl"], cwd=state_repo,
                          capture_output=True, check=True).stdout
    assert data == b'{"id":"a",  "content":"spacing kept"}\n{"id": "b"}\n'


def test_a_proposal_that_changes_nothing_is_nothing_to_do(state_repo):
    same = make(Edit("write", "prompts/system.md", content="You are a helpful support agent.\nAnswer briefly.\n"))
    result = propose(state_repo, evolver=Scripted(same))
    assert result.nothing_to_do and "change nothing" in result.reason and branches(state_repo) == []


def test_the_same_change_twice_is_nothing_to_do(state_repo):
    first = propose(state_repo, evolver=Scripted(make()))
    second = propose(state_repo, evolver=Scripted(make()))
    assert second.nothing_to_do and first.branch in second.reason


def test_commit_proposal_is_the_lower_level_entry_for_any_evolver(state_repo):
    repo = Repo.open(state_repo)
    result = commit_proposal(repo, "main", make(), "external/dspy")
    assert result.rationale.evolver == "external/dspy" and git(state_repo, "rev-parse", result.branch) == result.commit


def test_the_evolver_sees_the_base_state_observations_and_rejected_history(state_repo, tmp_path):
    obs = {"id": "obs-1", "task": "t", "output": "o", "feedback": {"success": False}, "ts": "2025-01-01T00:00:00Z"}
    (tmp_path / "o.jsonl").write_text(json.dumps(obs) + "\n")
    aevolve.observe(state_repo, [tmp_path / "o.jsonl"])
    rejected = propose(state_repo, evolver=Scripted(make()))
    write_gate_report(Repo.open(state_repo), {"candidate": rejected.commit, "decision": "reject",
                                              "reasons": ["refund-window regressed"]})
    scripted = Scripted(make(Edit("write", "prompts/extra.md", content="x\n")))
    propose(state_repo, evolver=scripted, seed=7, focus="prompts")
    ctx = scripted.seen
    assert ctx.base == git(state_repo, "rev-parse", "main") and "prompts/system.md" in ctx.state.files
    assert [o["id"] for o in ctx.observations] == ["obs-1"]
    assert [h["branch"] for h in ctx.history] == [rejected.branch]
    assert ctx.history[0]["reasons"] == ["refund-window regressed"] and ctx.history[0]["title"] == "add greeting skill"
    assert (ctx.seed, ctx.focus) == (7, "prompts")


def test_cli_json_prints_branch_commit_proposal_rationale_message(state_repo, tmp_path):
    edits = tmp_path / "edits.yaml"
    edits.write_text("- op: write\n  path: prompts/extra.md\n  content: be kind\n")
    proc = run_cli("propose", "--evolver", "patch", "--edits", edits, "--title", "add kindness",
                   "--diagnosis", "rude", "--change", "adds prompt", "--expected-effect", "kinder", "--json",
                   cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"branch", "commit", "proposal", "rationale", "message"} <= set(doc)
    assert doc["proposal"]["edits"] == [{"op": "write", "path": "prompts/extra.md", "content": "be kind"}]
    assert git(state_repo, "rev-parse", doc["branch"]) == doc["commit"]


def test_cli_refusal_exits_4_and_names_each_rule(state_repo, tmp_path):
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps([{"op": "write", "path": "evals/basic.yaml", "content": "[]"},
                                 {"op": "write", "path": "skills/x/.git/config", "content": "x"}]))
    proc = run_cli("propose", "--edits", edits, "--title", "cheat", "--diagnosis", "d", "--change", "c",
                   "--expected-effect", "e", cwd=state_repo)
    assert proc.returncode == 4
    assert "evals/basic.yaml: protected path" in proc.stderr and "'.git' may not appear" in proc.stderr
    assert branches(state_repo) == []


def test_cli_nothing_to_propose_exits_0_with_the_reason(state_repo):
    proc = run_cli("propose", cwd=state_repo)
    assert proc.returncode == 0 and proc.stdout.startswith("nothing to propose: ")
    doc = json.loads(run_cli("propose", "--json", cwd=state_repo).stdout)
    assert doc["nothing_to_do"] is True and doc["branch"] is None


def test_cli_dry_run_prints_the_message_and_edit_summary(state_repo, tmp_path):
    edits = tmp_path / "e.yaml"
    edits.write_text("- {op: write, path: prompts/extra.md, content: hi}\n")
    proc = run_cli("propose", "--edits", edits, "--title", "say hi", "--diagnosis", "d", "--change", "c",
                   "--expected-effect", "e", "--dry-run", cwd=state_repo)
    assert proc.returncode == 0 and "dry run: would create evolve/" in proc.stdout
    assert "evolve(prompts): say hi" in proc.stdout and "add     prompts/extra.md" in proc.stdout
    assert branches(state_repo) == []


def test_patch_flags_with_another_evolver_are_a_usage_error(state_repo):
    proc = run_cli("propose", "--evolver", "rules", "--title", "x", cwd=state_repo)
    assert proc.returncode == 2 and "--title only applies to the patch evolver" in proc.stderr


def test_the_benchmark_smoke_run_prints_a_table():
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_propose.py"
    proc = subprocess.run([sys.executable, str(script), "--small", "--skills", "50", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split()[0] for line in proc.stdout.splitlines()]
    assert "operation" in rows and "git" in rows and "aevolve" in rows and "propose()" in rows
    assert "vs git" in proc.stdout and "1.00x" in proc.stdout


# -- secrets never leave the machine -----------------------------------------------------

GITHUB_LIKE = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
RUN_TOKEN = "run-token-of-this-machine-42"


def test_cli_a_token_quoted_in_the_rationale_is_committed_redacted(state_repo, tmp_path):
    from click.testing import CliRunner

    from aevolve.cli import cli

    edits = tmp_path / "edits.yaml"
    edits.write_text("- op: write\n  path: prompts/extra.md\n  content: be kind\n")
    result = CliRunner().invoke(cli, [
        "-C", str(state_repo), "propose", "--evolver", "patch", "--edits", str(edits), "--title", "add kindness",
        "--diagnosis", f"The agent printed {GITHUB_LIKE} to a user (obs-1).", "--change", "adds a prompt",
        "--expected-effect", "kinder", "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    message = git(state_repo, "log", "-1", "--format=%B", doc["commit"])
    assert "The agent printed [REDACTED GitHub token] to a user (obs-1)." in message
    assert GITHUB_LIKE not in message and GITHUB_LIKE not in result.output


def test_a_rationale_holding_a_secret_variables_value_is_refused_and_nothing_is_written(state_repo, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", RUN_TOKEN)
    objects_before = git(state_repo, "count-objects", "-v")

    with pytest.raises(EvolverFailed) as error:
        propose(state_repo, evolver=Scripted(make(expected_effect=f"Greets users; token {RUN_TOKEN} stays valid.")))

    assert error.value.exit_code == 5
    assert "$DEPLOY_TOKEN (in the rationale's Expected effect)" in str(error.value)
    assert RUN_TOKEN not in str(error.value)
    assert branches(state_repo) == [] and git(state_repo, "count-objects", "-v") == objects_before


def test_every_field_holding_the_value_is_named(state_repo, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", RUN_TOKEN)
    leaky = make(Edit("write", "prompts/extra.md", content=f"Use {RUN_TOKEN}.\n"), title=f"use {RUN_TOKEN}")

    with pytest.raises(EvolverFailed) as error:
        propose(state_repo, evolver=Scripted(leaky), dry_run=True)

    assert "$DEPLOY_TOKEN (in the rationale's title, edit 1 (prompts/extra.md))" in str(error.value)


def test_a_crashing_evolvers_message_is_reported_without_secret_values(state_repo, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", RUN_TOKEN)

    class Crashing:
        name = "crashing"

        def propose(self, ctx):
            raise RuntimeError(f"could not log in with {RUN_TOKEN}")

    with pytest.raises(EvolverFailed) as error:
        propose(state_repo, evolver=Crashing())

    assert "could not log in with [REDACTED]" in str(error.value)


# -- duplicates by tree id, and a teammate's branches ------------------------------------


def test_a_duplicate_under_the_lock_is_found_by_the_candidates_tree_id(state_repo):
    from aevolve._propose.run import _already_proposed

    first = propose(state_repo, evolver=Scripted(make()))
    tree, base = git(state_repo, "rev-parse", f"{first.branch}^{{tree}}"), git(state_repo, "rev-parse", "main")
    assert _already_proposed(Repo.open(state_repo), base, {}, tree) == first.branch  # no diff is computed


def test_the_same_tree_on_another_base_is_not_a_duplicate(state_repo):
    from aevolve._propose.run import _already_proposed

    first = propose(state_repo, evolver=Scripted(make()))
    git(state_repo, "commit", "-q", "--allow-empty", "--no-verify", "-m", "main moves on")
    tree, base = git(state_repo, "rev-parse", f"{first.branch}^{{tree}}"), git(state_repo, "rev-parse", "main")
    assert _already_proposed(Repo.open(state_repo), base, {}, tree) is None
    assert propose(state_repo, evolver=Scripted(make())).branch not in (None, first.branch)


def test_an_accepting_note_is_left_out_of_the_history_and_a_rejecting_one_kept(state_repo):
    from aevolve._propose.run import rejected_history

    repo = Repo.open(state_repo)
    accepted = propose(state_repo, evolver=Scripted(make()))
    rejected = propose(state_repo, evolver=Scripted(make(Edit("write", "prompts/extra.md", content="x\n"))))
    for result, decision in ((accepted, "accept"), (rejected, "reject")):
        write_gate_report(repo, {"candidate": result.commit, "decision": decision, "reasons": [decision],
                                 "cases": [{"output": '{"decision": "accept"}'}]})  # a quoted one is only text
    assert [h["branch"] for h in rejected_history(repo)] == [rejected.branch]


@pytest.fixture
def teammates(tmp_path):
    """(alice, bob): two clones of one bare origin, on the same main."""
    from conftest import make_state_repo

    source = make_state_repo(tmp_path / "state")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(origin))
    for name in ("alice", "bob"):
        git(tmp_path, "clone", "-q", str(origin), str(tmp_path / name))
    return tmp_path / "alice", tmp_path / "bob"


def _rejected_and_pushed(clone) -> str:
    """A proposal gated as rejected in `clone`, pushed with its note; the branch."""
    from conftest import verdict_for

    repo = Repo.open(clone)
    result = propose(repo, evolver=Scripted(make()))
    write_gate_report(repo, verdict_for(repo, result.commit, "reject", reasons=["greeting broke refunds"]))
    git(clone, "push", "-q", "origin", result.branch, "refs/notes/aevolve")
    return result.branch


def test_a_teammates_rejected_proposal_fetched_by_sync_is_not_proposed_again(teammates):
    alice, bob = teammates
    branch = _rejected_and_pushed(bob)
    assert run_cli("-C", alice, "sync").returncode == 0
    again = propose(alice, evolver=Scripted(make()))
    assert again.nothing_to_do and again.reason == f"the same change is already proposed on origin/{branch}"
    assert branches(alice) == []


def test_a_teammates_rejected_proposal_is_in_the_history_the_evolver_gets(teammates):
    alice, bob = teammates
    branch = _rejected_and_pushed(bob)
    assert run_cli("-C", alice, "sync").returncode == 0
    scripted = Scripted(make(Edit("write", "prompts/extra.md", content="x\n")))
    propose(alice, evolver=scripted)
    assert [(h["branch"], h["reasons"]) for h in scripted.seen.history] == [
        (f"origin/{branch}", ["greeting broke refunds"])]


def test_a_note_only_in_the_fetched_tracking_copy_counts_in_the_history(teammates):
    from aevolve._propose.run import rejected_history

    alice, bob = teammates
    branch = _rejected_and_pushed(bob)
    git(alice, "fetch", "-q", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
        "+refs/notes/aevolve:refs/notes/remotes/origin/aevolve")  # what a fetch copies, with no merge
    assert git(alice, "for-each-ref", "refs/notes/aevolve") == ""
    assert [h["branch"] for h in rejected_history(Repo.open(alice))] == [f"origin/{branch}"]


def test_the_rules_evolver_knows_a_lesson_whose_id_is_spelled_with_escapes(state_repo, tmp_path):
    from aevolve._propose.evolvers.rules import lesson_for

    obs = {"id": "obs-1", "task": "q", "output": "wrong", "feedback": {"success": False, "expected": "30 days"},
           "ts": "2025-01-01T00:00:00Z"}
    (tmp_path / "o.jsonl").write_text(json.dumps(obs) + "\n")
    aevolve.observe(state_repo, [tmp_path / "o.jsonl"])
    escaped = json.dumps(lesson_for(obs)).replace('"lesson-', '"\\u006cesson-')  # the same id, not the same text
    (state_repo / "memory" / "lessons.jsonl").write_text(escaped + "\n")
    git(state_repo, "add", "-A")
    git(state_repo, "commit", "-q", "--no-verify", "-m", "a lesson written by another tool")
    result = propose(state_repo, evolver="rules")
    assert result.nothing_to_do and "already lessons in memory" in result.reason


def test_a_fetched_evolve_ref_naming_no_commit_is_skipped(state_repo):
    blob = git(state_repo, "rev-parse", "main:prompts/system.md")
    git(state_repo, "update-ref", "refs/remotes/origin/evolve/odd", blob)
    assert propose(state_repo, evolver=Scripted(make())).branch is not None
