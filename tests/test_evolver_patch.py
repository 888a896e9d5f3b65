"""The patch evolver: edit files and real `git diff` output, with a rationale."""

from __future__ import annotations

import json
import subprocess

import pytest

from aevolve._errors import EvolverFailed, UsageError
from aevolve._propose.run import propose

from conftest import git, run_cli

RATIONALE = ["--title", "tighten refunds", "--diagnosis", "obs-1 was wrong", "--change", "edits",
             "--expected-effect", "fewer refund errors", "--evidence", "obs-1,obs-2"]


def diff_from_clone(state_repo, tmp_path, change):
    """Make a change in a real clone, commit it, and return (git diff text, resulting tree id)."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(state_repo), str(clone))
    change(clone)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "change")
    text = subprocess.run(["git", "diff", "HEAD~1", "HEAD"], cwd=clone,
                          capture_output=True, text=True, check=True).stdout
    return text, git(clone, "rev-parse", "HEAD^{tree}")


def test_edit_file_write_delete_append(state_repo, tmp_path):
    edits = tmp_path / "edits.yaml"
    edits.write_text(
        "- op: write\n  path: prompts/system.md\n  content: |\n    Be brief.\n"
        "- op: delete\n  path: tools/registry.yaml\n"
        "- op: append-jsonl\n  path: memory/episodic.jsonl\n  records:\n    - {id: m-2, content: gift cards}\n"
    )
    proc = run_cli("propose", "--evolver", "patch", "--edits", edits, *RATIONALE, "--json", cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    branch = json.loads(proc.stdout)["branch"]
    assert git(state_repo, "show", f"{branch}:prompts/system.md") == "Be brief."
    assert git(state_repo, "ls-tree", "-r", "--name-only", branch, "tools") == ""
    assert (git(state_repo, "show", f"{branch}:memory/episodic.jsonl").splitlines()[-1]
            == '{"id": "m-2", "content": "gift cards"}')
    assert "Aevolve-Evidence: obs-1, obs-2" in git(state_repo, "log", "-1", "--format=%B", branch)
    assert "Aevolve-Evolver: patch" in git(state_repo, "log", "-1", "--format=%B", branch)


def test_a_full_proposal_document_carries_its_own_rationale(state_repo, tmp_path):
    doc = tmp_path / "proposal.json"
    doc.write_text(json.dumps({"title": "add note", "diagnosis": "d", "change": "c", "expected_effect": "e",
                               "evidence": ["obs-9"],
                               "edits": [{"op": "write", "path": "prompts/note.md", "content": "n\n"}]}))
    result = propose(state_repo, evolver="patch", evolver_options={"edits": str(doc)})
    assert result.rationale.evidence == ["obs-9"] and result.rationale.title == "add note"


def test_rationale_file_and_flags_flags_win(state_repo, tmp_path):
    (tmp_path / "e.yaml").write_text("- {op: write, path: prompts/x.md, content: x}\n")
    (tmp_path / "r.yaml").write_text("title: from file\ndiagnosis: d\nchange: c\nexpected-effect: e\n")
    result = propose(state_repo, evolver="patch", evolver_options={
        "edits": str(tmp_path / "e.yaml"), "rationale": str(tmp_path / "r.yaml"), "title": "from flag"})
    assert result.rationale.title == "from flag" and result.rationale.expected_effect == "e"


def test_missing_rationale_is_a_usage_error(state_repo, tmp_path):
    (tmp_path / "e.yaml").write_text("- {op: write, path: prompts/x.md, content: x}\n")
    proc = run_cli("propose", "--edits", tmp_path / "e.yaml", "--title", "only a title", cwd=state_repo)
    assert proc.returncode == 2
    assert "missing --diagnosis, --change, --expected-effect" in proc.stderr


def test_a_malformed_edit_file_is_invalid_input(state_repo, tmp_path):
    (tmp_path / "e.yaml").write_text("- {op: rename, path: prompts/x.md}\n")
    proc = run_cli("propose", "--edits", tmp_path / "e.yaml", *RATIONALE, cwd=state_repo)
    assert proc.returncode == 3 and "/edits/0/op" in proc.stderr


def test_a_git_diff_applies_to_exactly_the_tree_git_made(state_repo, tmp_path):
    def change(root):
        (root / "prompts" / "system.md").write_text("You are a careful support agent.\nAnswer briefly.\nCite policy.\n")
        (root / "tools" / "registry.yaml").unlink()
        (root / "skills" / "tone").mkdir()
        (root / "skills" / "tone" / "SKILL.md").write_text(
            "---\nname: tone\ndescription: Be polite.\n---\n\nBe polite.\n")
        (root / "memory" / "episodic.jsonl").write_text(
            '{"id": "m-1", "content": "Shoes can be returned within 30 days."}\n{"id": "m-2"}')

    text, tree = diff_from_clone(state_repo, tmp_path, change)
    (tmp_path / "change.diff").write_text(text)
    result = propose(state_repo, evolver="patch", evolver_options={
        "diff": str(tmp_path / "change.diff"), "title": "polish",
        "diagnosis": "d", "change": "c", "expected_effect": "e"})
    assert git(state_repo, "rev-parse", f"{result.commit}^{{tree}}") == tree
    assert "\\ No newline at end of file" in text


def test_a_diff_still_applies_when_lines_moved(state_repo, tmp_path):
    # the changed line has context on both sides (git pins a hunk that touches either end of the file)
    body = "You are a helpful support agent.\nBe kind.\nBe exact.\nBe calm.\nAnswer briefly.\n" \
           "Cite the policy.\nOffer a next step.\nThank them.\nSign off.\n"
    (state_repo / "prompts" / "system.md").write_text(body)
    git(state_repo, "commit", "-qam", "longer prompt")
    text, _ = diff_from_clone(state_repo, tmp_path, lambda root: (root / "prompts" / "system.md").write_text(
        body.replace("Answer briefly.", "Answer in one sentence.")))
    (state_repo / "prompts" / "system.md").write_text("# Role\n\n" + body)  # the hunk's lines moved down
    git(state_repo, "commit", "-qam", "add heading")
    (tmp_path / "d.diff").write_text(text)
    result = propose(state_repo, evolver="patch", evolver_options={
        "diff": str(tmp_path / "d.diff"), "title": "shorter", "diagnosis": "d", "change": "c", "expected_effect": "e"})
    assert git(state_repo, "show", f"{result.branch}:prompts/system.md") == \
        ("# Role\n\n" + body.replace("Answer briefly.", "Answer in one sentence.")).rstrip("\n")


def test_a_hunk_that_does_not_apply_names_file_and_hunk(state_repo, tmp_path):
    text, _ = diff_from_clone(state_repo, tmp_path, lambda root: (root / "prompts" / "system.md").write_text("Hi.\n"))
    (state_repo / "prompts" / "system.md").write_text("Completely different.\n")
    git(state_repo, "commit", "-qam", "diverge")
    (tmp_path / "d.diff").write_text(text)
    proc = run_cli("propose", "--diff", tmp_path / "d.diff", *RATIONALE, cwd=state_repo)
    assert proc.returncode == 5
    assert "prompts/system.md: hunk 1 (@@ -1,2 +1 @@) does not apply" in proc.stderr
    assert git(state_repo, "for-each-ref", "refs/heads/evolve/") == ""


def test_a_diff_into_a_protected_path_is_refused_by_policy(state_repo, tmp_path):
    text, _ = diff_from_clone(state_repo, tmp_path, lambda root: (root / "evals" / "basic.yaml").write_text("[]\n"))
    (tmp_path / "d.diff").write_text(text)
    proc = run_cli("propose", "--diff", tmp_path / "d.diff", *RATIONALE, cwd=state_repo)
    assert proc.returncode == 4 and "evals/basic.yaml: protected path" in proc.stderr


def test_edits_and_diff_together_are_a_usage_error():
    from aevolve._propose.evolvers.patch import PatchEvolver

    with pytest.raises(UsageError):
        PatchEvolver(edits="a.yaml", diff="b.diff")


def test_a_diff_creating_an_existing_file_fails(state_repo, tmp_path):
    text = "--- /dev/null\n+++ b/prompts/system.md\n@@ -0,0 +1 @@\n+new\n"
    (tmp_path / "d.diff").write_text(text)
    with pytest.raises(EvolverFailed, match="already exists"):
        propose(state_repo, evolver="patch", evolver_options={
            "diff": str(tmp_path / "d.diff"), "title": "x x", "diagnosis": "d", "change": "c", "expected_effect": "e"})
