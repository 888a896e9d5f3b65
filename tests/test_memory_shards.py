"""Memory shard families: appends go to the family's tail, a new shard past memory.shard_bytes."""

from __future__ import annotations

import json

import pytest

from aevolve._errors import InvalidInput
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.policy import evaluate
from aevolve._propose.run import propose
from aevolve._state import memory_shards as ms
from aevolve._state.model import State

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli

CONFIG = "version: 1\nmemory:\n  shard_bytes: {limit}\n"


def record(i: int, pad: int = 0) -> dict:
    return {"id": f"r-{i}", "content": "x" * pad}


def line(i: int, pad: int = 0) -> str:
    return json.dumps(record(i, pad), separators=(",", ":")) + "\n"


def repo_with(tmp_path, limit, memory: dict[str, str]):
    files = {k: v for k, v in SAMPLE_STATE.items() if not k.startswith("memory/")}
    files.update(memory)
    files["aevolve.yaml"] = CONFIG.format(limit=limit)
    return make_state_repo(tmp_path / "state", files)


def state_of(root) -> State:
    return State.from_tree(Repo.open(root), "main")


def applied(root, *edits):
    state = state_of(root)
    return evaluate(state, Proposal(title="t", diagnosis="d", change="c", expected_effect="e", edits=list(edits)))


def append(path, *records):
    return Edit("append-jsonl", path, records=list(records))


# -- pure functions -----------------------------------------------------------------


def test_a_shard_name_splits_into_its_base_and_number():
    assert ms.split("memory/x.0003.jsonl") == ("memory/x.jsonl", 3)
    assert ms.split("memory/a/b.c.12345.jsonl") == ("memory/a/b.c.jsonl", 12345)
    assert ms.split("memory/x.jsonl") == ("memory/x.jsonl", 0)


@pytest.mark.parametrize("path", ["memory/x.1.jsonl", "memory/x.00001.jsonl", "memory/x.0000.jsonl",
                                  "memory/.0001.jsonl"])
def test_names_that_are_not_canonical_shards_are_families_of_their_own(path):
    assert ms.split(path) == (path, 0)


def test_shard_names_have_four_digits_and_more_past_9999():
    assert ms.shard_name("memory/x.jsonl", 1) == "memory/x.0001.jsonl"
    assert ms.shard_name("memory/x.jsonl", 10000) == "memory/x.10000.jsonl"
    assert ms.shard_name("memory/x.jsonl", 0) == "memory/x.jsonl"


def test_a_family_reads_base_first_then_shards_in_numeric_order():
    paths = ["memory/x.0010.jsonl", "memory/x.0002.jsonl", "memory/x.jsonl", "memory/y.jsonl", "skills/a/SKILL.md"]
    assert ms.families(paths) == {"memory/x.jsonl": ["memory/x.jsonl", "memory/x.0002.jsonl", "memory/x.0010.jsonl"],
                                  "memory/y.jsonl": ["memory/y.jsonl"]}


def test_records_fill_the_tail_then_start_new_shards():
    runs = ms.place("memory/x.jsonl", 0, 80, [10, 10, 10, 50], limit=100)
    assert runs == [ms.Run("memory/x.jsonl", 2), ms.Run("memory/x.0001.jsonl", 2)]


def test_a_record_bigger_than_the_limit_goes_alone_into_a_new_shard_and_is_never_split():
    runs = ms.place("memory/x.jsonl", 1, 10, [500, 5], limit=100)
    assert runs == [ms.Run("memory/x.0002.jsonl", 1), ms.Run("memory/x.0003.jsonl", 1)]


def test_limit_zero_never_shards():
    assert ms.place("memory/x.jsonl", 0, 10**9, [10**6] * 3, limit=0) == [ms.Run("memory/x.jsonl", 3)]


@pytest.mark.parametrize("value", [-1, "8MB", 1.5, True, None])
def test_a_bad_shard_bytes_is_invalid_input_naming_the_setting(value):
    with pytest.raises(InvalidInput, match=r"memory\.shard_bytes must be a whole number") as caught:
        ms.shard_limit({"memory": {"shard_bytes": value}})
    assert caught.value.exit_code == 3


# -- the policy: where appends really go ----------------------------------------------


def test_an_append_past_the_limit_starts_the_first_shard_and_leaves_the_base_untouched(tmp_path):
    root = repo_with(tmp_path, 200, {"memory/x.jsonl": line(1, 150)})
    result = applied(root, append("memory/x.jsonl", record(2, 100)))
    assert result.ok, result.violations
    assert list(result.changes) == ["memory/x.0001.jsonl"]
    assert result.changes["memory/x.0001.jsonl"] == line(2, 100).encode().replace(b",", b", ").replace(b":", b": ")
    assert result.redirects == {"memory/x.jsonl": ["memory/x.0001.jsonl"]}
    assert result.appended_records == {"memory/x.0001.jsonl": 1}


def test_an_append_that_fits_goes_to_the_base_with_no_redirect(tmp_path):
    root = repo_with(tmp_path, 10_000, {"memory/x.jsonl": line(1)})
    result = applied(root, append("memory/x.jsonl", record(2)))
    assert list(result.changes) == ["memory/x.jsonl"] and result.redirects == {}


def test_shard_bytes_zero_never_shards(tmp_path):
    root = repo_with(tmp_path, 0, {"memory/x.jsonl": line(1, 150)})
    result = applied(root, append("memory/x.jsonl", record(2, 150)))
    assert list(result.changes) == ["memory/x.jsonl"] and result.redirects == {}


def test_one_proposal_spanning_the_limit_fills_the_tail_then_the_next_shard(tmp_path):
    root = repo_with(tmp_path, 150, {"memory/x.jsonl": line(1, 40)})  # ~70 bytes a record: two a file
    result = applied(root, append("memory/x.jsonl", *[record(i, 40) for i in range(2, 6)]))
    assert result.ok, result.violations
    assert sorted(result.changes) == ["memory/x.0001.jsonl", "memory/x.0002.jsonl", "memory/x.jsonl"]
    ids = [json.loads(raw)["id"] for p in ("memory/x.jsonl", "memory/x.0001.jsonl", "memory/x.0002.jsonl")
           for raw in result.changes[p].splitlines()]
    assert ids == ["r-1", "r-2", "r-3", "r-4", "r-5"]  # the family reads in order
    assert all(len(result.changes[p]) <= 150 for p in result.changes)


def test_a_gap_in_numbering_continues_after_the_highest_shard(tmp_path):
    root = repo_with(tmp_path, 100, {"memory/x.jsonl": line(1, 80), "memory/x.0001.jsonl": line(2, 80),
                                     "memory/x.0003.jsonl": line(3, 80)})
    result = applied(root, append("memory/x.jsonl", record(4, 50)))
    assert list(result.changes) == ["memory/x.0004.jsonl"]


def test_a_family_whose_base_is_missing_appends_to_its_last_shard(tmp_path):
    root = repo_with(tmp_path, 1000, {"memory/x.0002.jsonl": line(1)})
    result = applied(root, append("memory/x.jsonl", record(2)))
    assert result.ok, result.violations
    assert list(result.changes) == ["memory/x.0002.jsonl"] and "memory/x.jsonl" not in result.changes


def test_an_append_to_an_older_shard_goes_to_the_tail(tmp_path):
    root = repo_with(tmp_path, 1000, {"memory/x.jsonl": line(1), "memory/x.0001.jsonl": line(2)})
    result = applied(root, append("memory/x.jsonl", record(3)), append("memory/x.0001.jsonl", record(4)))
    assert list(result.changes) == ["memory/x.0001.jsonl"]
    assert [json.loads(r)["id"] for r in result.changes["memory/x.0001.jsonl"].splitlines()] == ["r-2", "r-3", "r-4"]


def test_a_shard_name_written_directly_is_allowed_like_any_memory_path(tmp_path):
    root = repo_with(tmp_path, 1000, {"memory/x.jsonl": line(1)})
    result = applied(root, Edit("write", "memory/x.0007.jsonl", content=line(9)))
    assert result.ok, result.violations
    assert list(result.changes) == ["memory/x.0007.jsonl"] and result.redirects == {}


def test_a_record_bigger_than_shard_bytes_goes_alone_into_a_new_shard(tmp_path):
    root = repo_with(tmp_path, 100, {"memory/x.jsonl": line(1)})
    result = applied(root, append("memory/x.jsonl", record(2, 300), record(3)))
    assert result.ok, result.violations
    assert [json.loads(r)["id"] for r in result.changes["memory/x.0001.jsonl"].splitlines()] == ["r-2"]
    assert [json.loads(r)["id"] for r in result.changes["memory/x.0002.jsonl"].splitlines()] == ["r-3"]
    assert "memory/x.jsonl" not in result.changes


def test_a_text_append_to_a_full_memory_file_goes_to_a_new_shard(tmp_path):
    root = repo_with(tmp_path, 200, {"memory/x.jsonl": line(1, 150)})
    result = applied(root, Edit("append", "memory/x.jsonl", content=line(2, 100)))
    assert result.ok, result.violations
    assert result.changes == {"memory/x.0001.jsonl": line(2, 100).encode()}


def test_a_shard_of_a_protected_memory_file_is_protected_too(tmp_path):
    root = repo_with(tmp_path, 200, {"memory/x.jsonl": line(1, 150)})
    (root / "aevolve.yaml").write_text(CONFIG.format(limit=200) + "protection:\n  protected: [memory/x.jsonl]\n")
    git(root, "commit", "-qam", "protect x")
    direct = applied(root, Edit("write", "memory/x.0001.jsonl", content=line(2)))
    assert any("a shard of memory/x.jsonl, a protected path" in v for v in direct.violations)
    assert any("protected path" in v for v in applied(root, append("memory/x.jsonl", record(2, 100))).violations)


def test_a_symlinked_tail_shard_is_refused_not_written_through(tmp_path):
    root = repo_with(tmp_path, 1000, {"memory/x.jsonl": line(1)})
    (root / "memory" / "x.0001.jsonl").symlink_to("../prompts/system.md")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "link")
    result = applied(root, append("memory/x.jsonl", record(2)))
    assert any("memory/x.0001.jsonl is a symbolic link" in v for v in result.violations)


def test_the_shard_size_is_capped_by_max_file_bytes(tmp_path):
    root = repo_with(tmp_path, 10**9, {"memory/x.jsonl": line(1, 150)})
    (root / "aevolve.yaml").write_text(CONFIG.format(limit=10**9) + "protection:\n  max_file_bytes: 200\n")
    git(root, "commit", "-qam", "small files")
    result = applied(root, append("memory/x.jsonl", record(2, 100)))
    assert result.ok, result.violations
    assert list(result.changes) == ["memory/x.0001.jsonl"]


def test_a_negative_shard_bytes_refuses_a_memory_append_with_exit_3_naming_the_line(tmp_path):
    root = repo_with(tmp_path, -5, {"memory/x.jsonl": line(1)})
    edits = tmp_path / "e.yaml"
    edits.write_text("- {op: append-jsonl, path: memory/x.jsonl, records: [{id: r-2, content: y}]}\n")
    proc = run_cli("propose", "--evolver", "patch", "--edits", edits, "--title", "add a record", "--diagnosis", "d",
                   "--change", "c", "--expected-effect", "e", cwd=root)
    assert proc.returncode == 3, proc.stderr
    assert "aevolve.yaml:3: memory.shard_bytes must be a whole number" in proc.stderr


# -- end to end: the commit, the rationale, reading a family ---------------------------


def append_past_the_limit(tmp_path) -> tuple:
    """A patch proposal appending r-2 to a full memory/x.jsonl: (the repo, the --json result)."""
    root = repo_with(tmp_path, 200, {"memory/x.jsonl": line(1, 150)})
    edits = tmp_path / "e.yaml"
    edits.write_text("- {op: append-jsonl, path: memory/x.jsonl, records: [{id: r-2, content: y}]}\n")
    proc = run_cli("propose", "--evolver", "patch", "--edits", edits, "--title", "add a record", "--diagnosis", "d",
                   "--change", "Adds r-2.", "--expected-effect", "e", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root, json.loads(proc.stdout)


def test_a_proposed_append_commits_only_the_new_shard(tmp_path):
    root, data = append_past_the_limit(tmp_path)
    branch = data["branch"]
    assert git(root, "diff", "--name-only", "main", branch) == "memory/x.0001.jsonl"
    assert json.loads(git(root, "show", f"{branch}:memory/x.0001.jsonl"))["id"] == "r-2"
    assert State.from_tree(Repo.open(root), branch).memory("memory/x.jsonl") == [record(1, 150),
                                                                                 {"id": "r-2", "content": "y"}]


def test_a_redirected_append_is_summarised_and_explained_in_the_rationale(tmp_path):
    root, data = append_past_the_limit(tmp_path)
    assert "append  memory/x.0001.jsonl (+1 record)" in data["summary"]
    message = git(root, "log", "-1", "--format=%B", data["branch"])
    assert "Adds r-2." in message
    assert "memory/x.jsonl -> memory/x.0001.jsonl" in message


def test_the_rules_evolver_names_the_shard_it_really_appends_to(tmp_path):
    from aevolve._state.observations import observe

    root = repo_with(tmp_path, 300, {"memory/lessons.jsonl": line(1, 280)})
    source = tmp_path / "o.jsonl"
    source.write_text(json.dumps({"id": "obs-1", "task": "q", "output": "wrong", "ts": "2025-01-01T00:00:00Z",
                                  "feedback": {"success": False, "expected": "30 days"}}) + "\n")
    observe(root, [source])
    result = propose(root, evolver="rules")
    assert result.branch, result.reason
    assert git(root, "diff", "--name-only", "main", result.branch) == "memory/lessons.0001.jsonl"
    assert "Appends 1 lesson to memory/lessons.0001.jsonl" in result.message


def test_memory_files_list_each_family_in_reading_order(tmp_path):
    root = repo_with(tmp_path, 1000, {"memory/x.jsonl": line(1), "memory/x.0002.jsonl": line(3),
                                      "memory/x.0001.jsonl": line(2), "memory/a.jsonl": line(0)})
    state = state_of(root)
    assert state.memory_files() == ["memory/a.jsonl", "memory/x.jsonl", "memory/x.0001.jsonl", "memory/x.0002.jsonl"]
    assert [r["id"] for r in state.memory("memory/x.0001.jsonl")] == ["r-1", "r-2", "r-3"]


def test_the_rules_evolver_knows_a_lesson_already_in_a_shard(tmp_path):
    from aevolve._propose.evolvers.rules import lesson_for
    from aevolve._state.observations import observe

    obs = {"id": "obs-1", "task": "q", "output": "wrong", "ts": "2025-01-01T00:00:00Z",
           "feedback": {"success": False, "expected": "30 days"}}
    known = json.dumps(lesson_for(obs)) + "\n"
    root = repo_with(tmp_path, 300, {"memory/lessons.jsonl": line(1, 280), "memory/lessons.0001.jsonl": known})
    source = tmp_path / "o.jsonl"
    source.write_text(json.dumps(obs) + "\n")
    observe(root, [source])
    assert propose(root, evolver="rules", dry_run=True).nothing_to_do


def test_an_appended_id_already_in_the_file_is_still_refused_without_a_full_parse(tmp_path):
    root = repo_with(tmp_path, 0, {"memory/x.jsonl": line(1) + line(2)})
    result = applied(root, append("memory/x.jsonl", record(1)))
    assert any("memory/x.jsonl:3: duplicate id 'r-1' (first on line 1)" in v for v in result.violations)


def test_an_appended_record_that_breaks_the_schema_is_refused_with_its_line(tmp_path):
    root = repo_with(tmp_path, 0, {"memory/x.jsonl": line(1) + line(2)})
    result = applied(root, append("memory/x.jsonl", {"id": 5, "content": "x"}))
    assert any(v.startswith("the result would not validate: memory/x.jsonl:3:") for v in result.violations)
