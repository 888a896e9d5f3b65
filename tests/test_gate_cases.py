"""Case files: parsed from the baseline, checked with file:line errors, sharded stably."""

from __future__ import annotations

import pytest

from aevolve._errors import InvalidInput
from aevolve._gate.cases import Case, load_cases, parse_case_file, select_shard, shard_of
from aevolve._git.repo import Repo
from aevolve._state.model import State

from conftest import git, make_state_repo, run_cli, write

GOOD = """\
- id: refund-window
  input: {question: "Can I return shoes after 40 days?"}
  assert:
    - {type: contains, value: "30 days"}
  tags: [billing]
- id: greeting
  input: hi
  assert:
    - {type: icontains, value: hello}
  repeat: 3
"""


def test_cases_parse_with_defaults_and_overrides():
    cases = parse_case_file(GOOD, "evals/a.yaml", repeats=1)
    assert [c.id for c in cases] == ["refund-window", "greeting"]
    assert cases[0].tags == ["billing"] and cases[0].repeat == 1 and cases[0].threshold == 1.0
    assert cases[1].repeat == 3 and cases[1].threshold == 0.5
    assert cases[1].line == 6 and cases[1].where == "evals/a.yaml:6"


def test_gate_repeats_apply_unless_the_case_overrides():
    cases = parse_case_file(GOOD, "evals/a.yaml", repeats=5)
    assert [c.repeat for c in cases] == [5, 3]


def test_case_hash_changes_with_its_content_only():
    a = parse_case_file(GOOD, "evals/a.yaml")[0]
    b = parse_case_file(GOOD.replace("30 days", "31 days"), "evals/a.yaml")[0]
    moved = parse_case_file("\n\n" + GOOD, "evals/b.yaml")[0]
    assert a.hash != b.hash and a.hash == moved.hash


def test_missing_assert_names_file_and_line():
    text = "- id: ok\n  input: 1\n  assert: [{type: equals, value: 1}]\n- id: broken\n  input: 2\n"
    with pytest.raises(InvalidInput, match=r"evals/a.yaml:4: case 2: 'assert' is required"):
        parse_case_file(text, "evals/a.yaml")


def test_unknown_assertion_type_names_its_line():
    text = "- id: x\n  input: 1\n  assert:\n    - {type: equals, value: 1}\n    - {type: contians, value: a}\n"
    with pytest.raises(InvalidInput, match=r"evals/a.yaml:5: .*contians"):
        parse_case_file(text, "evals/a.yaml")


def test_malformed_yaml_names_its_line(tmp_path):
    root = make_state_repo(tmp_path / "s", {"evals/bad.yaml": "- id: x\n  input: [1, 2\n  assert: []\n"})
    with pytest.raises(InvalidInput, match=r"evals/bad.yaml:\d+: malformed YAML"):
        load_cases(State.from_tree(Repo.open(root), "main"))


def test_duplicate_ids_across_files_are_refused(tmp_path):
    one = "- id: same\n  input: 1\n  assert: [{type: equals, value: 1}]\n"
    root = make_state_repo(tmp_path / "s", {"evals/a.yaml": one, "evals/sub/b.yaml": one})
    with pytest.raises(InvalidInput, match=r"evals/sub/b.yaml:1: duplicate case id 'same' \(first at evals/a.yaml:1\)"):
        load_cases(State.from_tree(Repo.open(root), "main"))


def test_a_file_with_a_cases_key_is_accepted():
    text = "cases:\n  - id: x\n    input: 1\n    assert: [{type: equals, value: 1}]\n"
    assert [c.id for c in parse_case_file(text, "evals/a.yaml")] == ["x"]


def test_shards_partition_the_cases_stably():
    cases = [Case(id=f"case-{i}", input=i, asserts=[{"type": "equals", "value": i}]) for i in range(40)]
    slices = [select_shard(cases, (k, 3)) for k in (1, 2, 3)]
    ids = [c.id for s in slices for c in s]
    assert sorted(ids) == sorted(c.id for c in cases) and len(ids) == len(set(ids))
    assert all(slices)  # 40 cases spread over 3 shards: none empty
    assert shard_of("case-7", 3) == shard_of("case-7", 3)
    assert select_shard(list(reversed(cases)), (2, 3)) == list(reversed(slices[1]))


@pytest.mark.parametrize("assertion, message", [
    ('{type: contains, value: ""}', "contains: needs a non-empty `value`"),
    ('{type: not-starts-with, value: ""}', "not-starts-with: needs a non-empty `value`"),
    ("{type: icontains}", "icontains: needs a non-empty `value`"),
    ("{type: contains-any, value: []}", "contains-any: needs `value`: a non-empty list"),
    ('{type: contains-all, value: [a, ""]}', "contains-all: each item of `value` must be non-empty"),
    ("{type: is-json, value: 'not a schema'}", "is-json: its schema must be a mapping"),
    ("{type: contains-json, schema: {type: 12}}", "contains-json: invalid JSON schema"),
    ("{type: word-count, value: {min: 3, max: 1}}", r"word-count: min \(3\) is above max \(1\)"),
    ("{type: levenshtein, value: 3}", "levenshtein: needs `value`: the text"),
    ("{type: regex, value: '('}", "regex: invalid regular expression"),
])
def test_an_assertion_no_output_can_be_judged_by_is_refused_with_its_line(assertion, message):
    text = "- id: ok\n  input: 1\n  assert: [{type: equals, value: 1}]\n" \
           f"- id: bad\n  input: 1\n  assert:\n    - {{type: equals, value: 1}}\n    - {assertion}\n"
    with pytest.raises(InvalidInput, match=rf"^evals/a.yaml:8: case 2: {message}.*\(at /1/assert/1\)"):
        parse_case_file(text, "evals/a.yaml")


def test_the_new_assertion_types_are_read():
    text = ("- id: x\n  input: 1\n  assert:\n    - {type: icontains-all, value: [a, b]}\n"
            "    - {type: not-is-refusal}\n    - {type: word-count, value: {max: 50}}\n"
            "    - {type: is-json, value: '{\"type\": \"object\"}'}\n")
    [case] = parse_case_file(text, "evals/a.yaml")
    assert [a["type"] for a in case.asserts] == ["icontains-all", "not-is-refusal", "word-count", "is-json"]


def test_a_case_file_with_an_empty_contains_stops_the_gate_with_exit_3(tmp_path):
    bad = "- id: x\n  input: 1\n  assert: [{type: contains, value: ''}]\n"
    root = make_state_repo(tmp_path / "s", {"evals/a.yaml": bad})
    git(root, "checkout", "-q", "-b", "evolve/x")
    write(root, {"memory/notes.md": "a change\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a change")
    result = run_cli("gate", "evolve/x", "--base", "main", cwd=root)
    assert result.returncode == 3, result.stderr
    assert "evals/a.yaml:3: case 1: contains: needs a non-empty `value`" in result.stderr
