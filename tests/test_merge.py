"""Record-by-record JSONL merges and the three-way tree merge behind rebasing."""

from __future__ import annotations

import json

import pytest

from aevolve._git.repo import Repo
from aevolve._state.merge import MergeConflict, add_trailer, merge_jsonl, rebase_onto

from conftest import git, make_state_repo


def rec(id_, **fields) -> str:
    return json.dumps({"id": id_, **fields})


def lines(*records) -> str:
    return "".join(r + "\n" for r in records)


def ids(text: str) -> list:
    return [json.loads(line).get("id", json.loads(line).get("content")) for line in text.splitlines() if line.strip()]


# -- merge_jsonl ------------------------------------------------------------------

def test_appends_on_both_sides_keep_ours_order_then_theirs_new_records():
    base = lines(rec("a"), rec("b"))
    ours = lines(rec("a"), rec("b"), rec("o1"), rec("o2"))
    theirs = lines(rec("a"), rec("b"), rec("t1"))
    merged = merge_jsonl(base, ours, theirs, "memory/m.jsonl")
    assert merged.clean
    assert ids(merged.text) == ["a", "b", "o1", "o2", "t1"]


def test_one_sided_edit_from_theirs_is_applied_in_place():
    base = lines(rec("a", v=1), rec("b", v=1))
    ours = lines(rec("a", v=1), rec("b", v=1), rec("c"))
    theirs = lines(rec("a", v=2), rec("b", v=1))
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert [json.loads(line) for line in merged.text.splitlines()] == [
        {"id": "a", "v": 2}, {"id": "b", "v": 1}, {"id": "c"}]


def test_one_sided_edit_from_ours_is_kept():
    base = lines(rec("a", v=1), rec("b"))
    ours = lines(rec("a", v=3), rec("b"))
    theirs = lines(rec("a", v=1), rec("b"), rec("t"))
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean and json.loads(merged.text.splitlines()[0]) == {"id": "a", "v": 3}
    assert ids(merged.text) == ["a", "b", "t"]


def test_one_sided_deletions_are_applied_from_either_side():
    base = lines(rec("a"), rec("b"), rec("c"))
    ours = lines(rec("a"), rec("c"), rec("o"))  # deleted b
    theirs = lines(rec("b"), rec("c"), rec("t"))  # deleted a
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert ids(merged.text) == ["c", "o", "t"]


def test_same_edit_on_both_sides_is_not_a_conflict():
    base = lines(rec("a", v=1))
    both = lines(rec("a", v=2), rec("x"))
    theirs = lines(json.dumps({"v": 2, "id": "a"}), rec("y"))  # same record, other key order
    merged = merge_jsonl(base, both, theirs)
    assert merged.clean
    assert ids(merged.text) == ["a", "x", "y"]


def test_different_edits_of_the_same_id_conflict_with_markers():
    base = lines(rec("a", v=1), rec("b"))
    ours = lines(rec("a", v=2), rec("b"))
    theirs = lines(rec("a", v=3), rec("b"))
    merged = merge_jsonl(base, ours, theirs, "memory/m.jsonl")
    assert not merged.clean
    assert merged.conflicts == ["memory/m.jsonl: record 'a' edited on both sides differently"]
    assert merged.text.splitlines()[:5] == ["<<<<<<< ours", rec("a", v=2), "=======", rec("a", v=3), ">>>>>>> theirs"]
    assert merged.text.splitlines()[5] == rec("b")


def test_edit_on_one_side_and_delete_on_the_other_conflicts():
    base = lines(rec("a", v=1), rec("b"))
    ours = lines(rec("b"))
    theirs = lines(rec("a", v=2), rec("b"))
    merged = merge_jsonl(base, ours, theirs, "m.jsonl")
    assert merged.conflicts == ["m.jsonl: record 'a' deleted on one side and edited on the other"]
    reverse = merge_jsonl(base, theirs, ours, "m.jsonl")
    assert reverse.conflicts == ["m.jsonl: record 'a' edited on one side and deleted on the other"]


def test_same_new_id_added_with_different_content_conflicts():
    base = lines(rec("a"))
    merged = merge_jsonl(base, lines(rec("a"), rec("n", v=1)), lines(rec("a"), rec("n", v=2)))
    assert len(merged.conflicts) == 1 and "'n' added on both sides" in merged.conflicts[0]


def test_records_without_ids_are_matched_by_content():
    base = lines('{"content": "x"}', '{"content": "y"}')
    ours = lines('{"content": "x"}', '{"content": "y"}', '{"content": "o"}')
    theirs = lines('{"content": "y"}', '{"content": "t"}')  # deleted x
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert ids(merged.text) == ["y", "o", "t"]


def test_blank_lines_and_missing_final_newline_are_handled():
    base = rec("a") + "\n\n"
    ours = rec("a") + "\n\n" + rec("o")  # no trailing newline
    theirs = "\n" + rec("a") + "\n   \n" + rec("t")
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert merged.text == lines(rec("a"), rec("o"), rec("t"))


def test_empty_base_merges_two_new_files():
    merged = merge_jsonl("", lines(rec("o")), lines(rec("t")))
    assert merged.clean and ids(merged.text) == ["o", "t"]


def test_blank_only_files_merge_to_the_other_side():
    assert merge_jsonl("\n", "\n", lines(rec("t"))).text == lines(rec("t"))
    assert merge_jsonl("", "\n\n", "\n\n").text == "\n\n"


def test_unchanged_side_returns_the_other_side_byte_for_byte():
    base = lines(rec("a"))
    ours = '{"id":"a"}\n\n{"id": "b"}'  # odd formatting stays untouched
    assert merge_jsonl(base, ours, base).text == ours
    assert merge_jsonl(base, base, ours).text == ours


def test_formatting_only_difference_is_not_an_edit():
    base = lines('{"id": "a", "v": 1}')
    ours = lines('{"v":1,"id":"a"}', rec("o"))
    theirs = lines('{"id": "a",  "v": 1}', rec("t"))
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert merged.text.splitlines() == ['{"v":1,"id":"a"}', rec("o"), rec("t")]


def test_duplicate_ids_are_matched_by_occurrence():
    base = lines(rec("a", n=1), rec("a", n=2))
    ours = lines(rec("a", n=1), rec("a", n=2), rec("o"))
    theirs = lines(rec("a", n=1), rec("a", n=20))
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert [json.loads(line) for line in merged.text.splitlines()] == [
        {"id": "a", "n": 1}, {"id": "a", "n": 20}, {"id": "o"}]


def test_lines_that_are_not_records_merge_as_opaque_lines():
    base = lines(rec("a"), "not json")
    ours = lines(rec("a"), "not json", rec("o"))
    theirs = lines(rec("a"), rec("t"))  # dropped the broken line
    merged = merge_jsonl(base, ours, theirs)
    assert merged.clean
    assert merged.text == lines(rec("a"), rec("o"), rec("t"))


def test_unicode_records_survive():
    base = lines(rec("a", text="é"))
    merged = merge_jsonl(base, lines(rec("a", text="é"), json.dumps({"id": "o", "t": "日本"}, ensure_ascii=False)),
                         lines(rec("a", text="é"), rec("t")))
    assert "日本" in merged.text and merged.clean


# -- trailers ---------------------------------------------------------------------

def test_trailer_joins_an_existing_trailer_block():
    msg = "evolve(memory): x\n\nDiagnosis:\nd\n\nAevolve-Proposal: p-1\nAevolve-Base: abc\n"
    assert add_trailer(msg, "Aevolve-Rebased-From", "f00") == (
        "evolve(memory): x\n\nDiagnosis:\nd\n\nAevolve-Proposal: p-1\nAevolve-Base: abc\nAevolve-Rebased-From: f00\n")


def test_trailer_starts_a_block_when_there_is_none():
    assert add_trailer("subject only\n", "K", "v") == "subject only\n\nK: v\n"
    assert add_trailer("subject\n\nbody text.\n", "K", "v") == "subject\n\nbody text.\n\nK: v\n"


# -- rebase_onto ------------------------------------------------------------------

def commit_files(repo: Repo, parent: str, files: dict, message: str = "change\n") -> str:
    contents = {p: (None if c is None else c.encode()) for p, c in files.items()}
    tree = repo.build_tree(repo.resolve(parent).tree, contents)
    return str(repo.commit(tree, [parent], message))


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo.open(make_state_repo(tmp_path / "state"))


def file_at(repo: Repo, commit: str, path: str) -> str | None:
    data = repo.read(repo.resolve(commit).tree, path)
    return None if data is None else data.decode()


def test_rebase_merges_memory_appended_on_both_sides(repo):
    base = repo.ref_target("refs/heads/main")
    memory = file_at(repo, base, "memory/episodic.jsonl")
    cand = commit_files(repo, base, {"memory/episodic.jsonl": memory + rec("cand") + "\n"},
                        "evolve(memory): add cand\n\nAevolve-Proposal: p-1\n")
    moved = commit_files(repo, base, {"memory/episodic.jsonl": memory + rec("main") + "\n",
                                      "prompts/system.md": "new\n"})
    new = rebase_onto(repo, cand, base, moved)
    commit = repo.resolve(new)
    assert [str(p) for p in commit.parent_ids] == [moved]
    assert ids(file_at(repo, new, "memory/episodic.jsonl")) == ["m-1", "main", "cand"]
    assert file_at(repo, new, "prompts/system.md") == "new\n"
    assert commit.message == f"evolve(memory): add cand\n\nAevolve-Proposal: p-1\nAevolve-Rebased-From: {cand}\n"
    assert commit.author.name == repo.resolve(cand).author.name
    assert git(repo.workdir, "fsck", "--strict", "--no-dangling") == ""


def test_rebase_takes_one_sided_file_changes_from_both_sides(repo):
    base = repo.ref_target("refs/heads/main")
    cand = commit_files(repo, base, {"skills/new/SKILL.md": "---\nname: new\ndescription: d\n---\nbody\n",
                                     "tools/registry.yaml": None})
    moved = commit_files(repo, base, {"prompts/system.md": "moved\n"})
    new = rebase_onto(repo, cand, base, moved)
    assert file_at(repo, new, "skills/new/SKILL.md").startswith("---\nname: new")
    assert file_at(repo, new, "tools/registry.yaml") is None
    assert file_at(repo, new, "prompts/system.md") == "moved\n"


def test_rebase_same_id_edited_on_both_sides_is_a_conflict_naming_the_file(repo):
    base = repo.ref_target("refs/heads/main")
    cand = commit_files(repo, base, {"memory/episodic.jsonl": rec("m-1", content="candidate says") + "\n"})
    moved = commit_files(repo, base, {"memory/episodic.jsonl": rec("m-1", content="main says") + "\n"})
    with pytest.raises(MergeConflict) as err:
        rebase_onto(repo, cand, base, moved)
    assert err.value.files == ["memory/episodic.jsonl"]
    assert err.value.exit_code == 6
    assert "record 'm-1' edited on both sides differently" in str(err.value)


def test_rebase_text_file_changed_on_both_sides_is_a_conflict(repo):
    base = repo.ref_target("refs/heads/main")
    cand = commit_files(repo, base, {"prompts/system.md": "candidate\n", "skills/x/SKILL.md": "x"})
    moved = commit_files(repo, base, {"prompts/system.md": "main\n"})
    with pytest.raises(MergeConflict) as err:
        rebase_onto(repo, cand, base, moved)
    assert err.value.files == ["prompts/system.md"]


def test_rebase_delete_against_edit_is_a_conflict(repo):
    base = repo.ref_target("refs/heads/main")
    cand = commit_files(repo, base, {"prompts/system.md": None})
    moved = commit_files(repo, base, {"prompts/system.md": "edited\n"})
    with pytest.raises(MergeConflict, match="deleted on one side"):
        rebase_onto(repo, cand, base, moved)


def test_rebase_file_against_folder_is_a_conflict(repo):
    base = repo.ref_target("refs/heads/main")
    cand = commit_files(repo, base, {"notes": "a file\n"})
    moved = commit_files(repo, base, {"notes/a.md": "in a folder\n"})
    with pytest.raises(MergeConflict) as err:
        rebase_onto(repo, cand, base, moved)
    assert err.value.files == ["notes"]


def test_rebase_keeps_the_executable_bit(repo):
    base = repo.ref_target("refs/heads/main")
    tree = repo.build_tree(repo.resolve(base).tree, {"tools/run.sh": b"#!/bin/sh\n"}, {"tools/run.sh": 0o100755})
    cand = str(repo.commit(tree, [base], "add tool\n"))
    moved = commit_files(repo, base, {"prompts/system.md": "moved\n"})
    new = rebase_onto(repo, cand, base, moved)
    assert repo.resolve(new).tree["tools/run.sh"].filemode == 0o100755
