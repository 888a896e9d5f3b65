"""Hostile proposals: too many edits are refused unread, the work per edit does not grow
with the proposal, and a submodule in the base is never written over, into or deleted."""

from __future__ import annotations

import json
import time

import pytest

from aevolve._errors import PolicyRefused
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.policy import check, evaluate
from aevolve._propose.run import commit_proposal
from aevolve._state.model import State

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli

RATIONALE = ["--title", "many edits", "--diagnosis", "d", "--change", "c", "--expected-effect", "e"]


def proposal(edits) -> Proposal:
    return Proposal(title="hostile", diagnosis="d", change="c", expected_effect="e", edits=edits)


def refs(root) -> str:
    return git(root, "for-each-ref", "--format=%(refname) %(objectname)")


def capped(tmp_path, limit: int):
    files = dict(SAMPLE_STATE, **{"aevolve.yaml": f"protection:\n  max_edits: {limit}\n"})
    return make_state_repo(tmp_path / "capped", files)


def writes(count: int) -> list[Edit]:
    return [Edit("write", f"prompts/p{i}.md", content=f"{i}\n") for i in range(count)]


# -- the edit count -------------------------------------------------------------------------------


class Unreadable:
    """An edit that fails the test when anything looks at it."""

    def __getattr__(self, name):
        raise AssertionError(f"the policy read edit.{name} of a proposal over the cap")


def test_a_proposal_over_the_cap_is_refused_without_reading_an_edit(state_repo):
    state = State.from_tree(Repo.open(state_repo), "main")
    result = evaluate(state, proposal([Unreadable()] * 100_000))
    assert result.violations == ["the proposal has 100000 edits, over the limit of 1000 (protection.max_edits); "
                                 "split it into smaller proposals or raise the limit in aevolve.yaml"]
    assert result.changes == {}


def test_a_100k_edit_proposal_is_refused_quickly_and_writes_nothing(state_repo):
    before, objects = refs(state_repo), git(state_repo, "count-objects")
    started = time.monotonic()
    with pytest.raises(PolicyRefused) as refused:
        commit_proposal(state_repo, "main", proposal(writes(100_000)), "test")
    assert time.monotonic() - started < 30  # a hang bound, not a benchmark
    assert refused.value.exit_code == 4 and "protection.max_edits" in str(refused.value)
    assert refs(state_repo) == before and git(state_repo, "count-objects") == objects


def test_propose_with_100k_edits_exits_4_quickly(state_repo, tmp_path):
    doc = tmp_path / "edits.json"
    doc.write_text(json.dumps([e.to_dict() for e in writes(100_000)]))
    before = refs(state_repo)
    started = time.monotonic()
    proc = run_cli("propose", "--evolver", "patch", "--edits", doc, *RATIONALE, cwd=state_repo)
    assert time.monotonic() - started < 30  # a hang bound, not a benchmark
    assert proc.returncode == 4 and "over the limit of 1000 (protection.max_edits)" in proc.stderr
    assert refs(state_repo) == before


def test_edits_up_to_the_cap_pass_and_one_more_is_refused(tmp_path):
    root = capped(tmp_path, 20)
    state = State.from_tree(Repo.open(root), "main")
    assert check(state, proposal(writes(20))) == []
    assert check(state, proposal(writes(21))) == [
        "the proposal has 21 edits, over the limit of 20 (protection.max_edits); "
        "split it into smaller proposals or raise the limit in aevolve.yaml"]


def test_the_default_cap_admits_1000_edits(state_repo):
    state = State.from_tree(Repo.open(state_repo), "main")
    assert check(state, proposal(writes(1000))) == []
    assert "over the limit of 1000" in check(state, proposal(writes(1001)))[0]


def test_propose_over_the_configured_cap_exits_4_and_writes_nothing(tmp_path):
    root = capped(tmp_path, 5)
    doc = tmp_path / "edits.json"
    doc.write_text(json.dumps([e.to_dict() for e in writes(6)]))
    before = refs(root)
    proc = run_cli("propose", "--evolver", "patch", "--edits", doc, *RATIONALE, cwd=root)
    assert proc.returncode == 4, proc.stderr
    assert "the proposal has 6 edits, over the limit of 5 (protection.max_edits)" in proc.stderr
    assert refs(root) == before


def test_propose_at_the_configured_cap_commits(tmp_path):
    root = capped(tmp_path, 5)
    doc = tmp_path / "edits.json"
    doc.write_text(json.dumps([e.to_dict() for e in writes(5)]))
    proc = run_cli("propose", "--evolver", "patch", "--edits", doc, *RATIONALE, "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    branch = json.loads(proc.stdout)["branch"]
    assert git(root, "ls-tree", "--name-only", branch, "prompts/").count("\n") == 5  # system.md and p0..p4


# -- many edits: the result is right, whatever the number ------------------------------------------


def test_many_appends_to_one_file_keep_every_record_in_order(tmp_path):
    root = make_state_repo(tmp_path / "s", dict(SAMPLE_STATE, **{"memory/episodic.jsonl": '{"id": "m-0"}'}))
    state = State.from_tree(Repo.open(root), "main")
    edits = [Edit("append-jsonl", "memory/episodic.jsonl", records=[{"id": f"m-{i}"}]) for i in range(1, 501)]
    result = evaluate(state, proposal(edits))
    assert result.violations == []
    lines = result.changes["memory/episodic.jsonl"].decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"m-{i}" for i in range(501)]
    assert isinstance(result.changes["memory/episodic.jsonl"], bytes)
    assert result.added["memory/episodic.jsonl"].count("\n") == 500


def test_many_new_skills_are_each_validated(state_repo):
    state = State.from_tree(Repo.open(state_repo), "main")
    good = [Edit("write", f"skills/s{i}/SKILL.md", content=f"---\nname: s{i}\ndescription: d\n---\n\nBody.\n")
            for i in range(300)]
    bad = Edit("write", "skills/wrong/SKILL.md", content="---\nname: other\ndescription: d\n---\n\nBody.\n")
    found = check(state, proposal([*good, bad]))
    assert len(found) == 1 and "name 'other' must equal its folder name 'wrong'" in found[0]


# -- submodules -----------------------------------------------------------------------------------


def with_submodule(tmp_path, path: str = "skills/vendored"):
    """A state whose main has a gitlink (a submodule entry) at `path`."""
    root = make_state_repo(tmp_path / "s")
    target = git(root, "rev-parse", "main")  # any commit id will do: its objects need not exist here
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{target},{path}")
    git(root, "commit", "-qm", "add a submodule")
    return root


@pytest.mark.parametrize("edit, submodule", [
    (Edit("write", "skills/vendored/SKILL.md", content="x"), "skills/vendored"),
    (Edit("write", "skills/vendored", content="x"), "skills/vendored"),
    (Edit("delete", "skills/vendored"), "skills/vendored"),
])
def test_the_policy_refuses_writing_over_into_or_deleting_a_submodule(tmp_path, edit, submodule):
    root = with_submodule(tmp_path)
    state = State.from_tree(Repo.open(root), "main")
    assert state.gitlinks == {submodule}
    found = check(state, proposal([edit]))
    assert len(found) == 1 and f"{submodule} is a submodule (a gitlink) in the base" in found[0], found


def test_the_policy_refuses_a_file_where_a_folder_holds_a_submodule(tmp_path):
    root = with_submodule(tmp_path, "skills/pack/vendored")
    state = State.from_tree(Repo.open(root), "main")
    assert state.gitlinks == {"skills/pack/vendored"}
    found = check(state, proposal([Edit("write", "skills/pack", content="x")]))
    assert found == ["skills/pack: is a folder; edits name files"]


def test_a_gitlink_entry_among_the_files_counts_as_a_submodule(tmp_path):
    from aevolve._git.repo import TreeFile
    from aevolve._state.names import GITLINK, gitlinks

    files = {"skills/x": TreeFile("skills/x", "0" * 40, GITLINK),
             "prompts/a.md": TreeFile("prompts/a.md", "1" * 40, 0o100644)}
    assert gitlinks(State(files, lambda f: b"", "test")) == {"skills/x"}


def test_propose_into_a_submodule_exits_4_and_leaves_it_in_place(tmp_path):
    root = with_submodule(tmp_path)
    doc = tmp_path / "edits.json"
    doc.write_text(json.dumps([{"op": "write", "path": "skills/vendored/SKILL.md", "content": "x\n"}]))
    before = refs(root)
    proc = run_cli("propose", "--evolver", "patch", "--edits", doc, *RATIONALE, cwd=root)
    assert proc.returncode == 4, proc.stderr
    assert "skills/vendored is a submodule" in proc.stderr
    assert refs(root) == before


def test_validate_reports_a_submodule_inside_an_evolvable_layer(tmp_path):
    root = with_submodule(tmp_path)
    proc = run_cli("validate", "main", "--json", cwd=root)
    assert proc.returncode == 1
    errors = json.loads(proc.stdout)["errors"]
    assert any(e["path"] == "skills/vendored" and "submodule" in e["message"] for e in errors), errors


def test_validate_accepts_a_submodule_outside_the_evolvable_layers(tmp_path):
    root = with_submodule(tmp_path, "vendor/lib")
    proc = run_cli("validate", "main", "--json", cwd=root)
    assert proc.returncode == 0, proc.stdout


def test_validate_of_the_index_reports_a_staged_submodule(tmp_path):
    root = make_state_repo(tmp_path / "s")
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{git(root, 'rev-parse', 'main')},skills/vendored")
    proc = run_cli("validate", "--staged", cwd=root)
    assert proc.returncode == 1 and "skills/vendored: a submodule (gitlink)" in proc.stdout


def test_a_proposal_writing_next_to_a_submodule_is_fine(tmp_path):
    root = with_submodule(tmp_path)
    state = State.from_tree(Repo.open(root), "main")
    assert state.gitlinks == {"skills/vendored"}
    assert check(state, proposal([Edit("write", "prompts/extra.md", content="x\n")])) == []
