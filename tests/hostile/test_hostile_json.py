"""Hostile JSON: a line nested 100,000 deep, NaN and Infinity, a BOM, through every
command that reads JSON Lines. Nesting deeper than 200 levels and NaN/Infinity are
broken JSON with their line; a BOM starting a file is ignored.

Before: RecursionError tracebacks in validate, status, diff, gate, merge-jsonl and
observe; NaN accepted as valid; a BOM refused in observations only.
"""

from __future__ import annotations

import json

import pytest

from aevolve._git.repo import OBSERVATIONS_REF
from aevolve._json import MAX_DEPTH, loads
from aevolve._state.jsonl import lines, problem
from aevolve._state.observations import load_observations

from conftest import git, run_cli
from gate_support import GateRepo, cases_yaml, facts

DEEP = '{"id": "deep", "content": ' + "[" * 100_000 + "]" * 100_000 + "}"
RECORD = '{"id": "m-1", "content": "Shoes can be returned within 30 days."}'


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr, proc.stderr


def observation(i: int = 1, **extra) -> dict:
    return {"id": f"obs-{i}", "task": "t", "output": "o", "feedback": {"success": True},
            "ts": "2025-01-01T00:00:00Z", **extra}


# -- the reader -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ('{"a": NaN}', "NaN is not JSON"),
    ('{"a": Infinity}', "Infinity is not JSON"),
    ('{"a": [1, -Infinity]}', "-Infinity is not JSON"),
    ("[" * 201 + "]" * 201, f"nested deeper than {MAX_DEPTH} levels"),
    ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
])
def test_a_line_that_is_not_json_for_us_is_broken_with_its_column(text, words):
    [line] = list(lines(text))
    assert words in problem(line)
    assert "(column " in problem(line)


def test_nan_inside_a_string_is_ordinary_text():
    assert loads('{"a": "NaN", "b": "Infinity"}') == {"a": "NaN", "b": "Infinity"}


def test_nesting_of_exactly_the_bound_is_accepted():
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert isinstance(loads(deepest), list)


def test_many_shallow_brackets_are_not_deep():
    wide = json.dumps({"id": "w", "items": [[i] for i in range(1000)]})
    assert loads(wide)["items"][999] == [999]


def test_lines_end_at_newline_only_so_u2028_stays_inside_a_record():
    text = json.dumps({"id": "a", "content": "x\u2028y\x0cz"}, ensure_ascii=False) + "\n"
    [line] = list(lines(text))
    assert line.record == {"id": "a", "content": "x\u2028y\x0cz"}


# -- the six commands with a line nested 100,000 deep ------------------------------------


def test_validate_names_the_deep_memory_line(state_repo):
    (state_repo / "memory" / "episodic.jsonl").write_text(RECORD + "\n" + DEEP + "\n")
    proc = run_cli("validate", cwd=state_repo)
    no_traceback(proc)
    assert proc.returncode == 1
    assert f"memory/episodic.jsonl:2: broken JSON: nested deeper than {MAX_DEPTH} levels" in proc.stdout


def test_status_counts_the_deep_memory_line_as_invalid(state_repo):
    (state_repo / "memory" / "episodic.jsonl").write_text(DEEP + "\n")
    proc = run_cli("status", cwd=state_repo)
    no_traceback(proc)
    assert proc.returncode == 0 and "invalid (1 errors)" in proc.stdout


def test_diff_shows_the_deep_memory_line_as_invalid_with_its_line(state_repo):
    (state_repo / "memory" / "episodic.jsonl").write_text(RECORD + "\n" + DEEP + "\n")
    proc = run_cli("diff", cwd=state_repo)
    no_traceback(proc)
    assert proc.returncode == 0
    assert f"new line 2: broken JSON: nested deeper than {MAX_DEPTH} levels" in proc.stdout


def test_gate_rejects_a_candidate_with_a_deep_memory_line(tmp_path):
    g = GateRepo(tmp_path, {"a": "right"}, cases_yaml("a"))
    g.branch("evolve/deep", {"memory/facts.jsonl": facts(a="right") + DEEP + "\n"})
    proc = run_cli("gate", "evolve/deep", cwd=g.path)
    no_traceback(proc)
    assert proc.returncode == 100
    assert f"memory/facts.jsonl:2: broken JSON: nested deeper than {MAX_DEPTH} levels" in proc.stdout


def test_merge_jsonl_keeps_a_deep_line_as_opaque_text(tmp_path):
    base, ours, theirs = (tmp_path / n for n in ("base", "ours", "theirs"))
    base.write_text(RECORD + "\n")
    ours.write_text(RECORD + '\n{"id": "m-2"}\n')
    theirs.write_text(RECORD + "\n" + DEEP + "\n")
    proc = run_cli("merge-jsonl", base, ours, theirs, "memory/episodic.jsonl", cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 0
    assert ours.read_text() == RECORD + '\n{"id": "m-2"}\n' + DEEP + "\n"


def test_observe_names_the_deep_line_and_ingests_nothing(state_repo, tmp_path):
    source = tmp_path / "o.jsonl"
    source.write_text(json.dumps(observation()) + "\n" + DEEP + "\n")
    proc = run_cli("observe", source, cwd=state_repo)
    no_traceback(proc)
    assert proc.returncode == 3
    assert f"{source}:2: broken JSON: nested deeper than {MAX_DEPTH} levels" in proc.stderr
    assert git(state_repo, "for-each-ref", OBSERVATIONS_REF) == ""


# -- NaN, Infinity and the BOM: one decision everywhere ----------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_observe_refuses_nan_and_infinity_with_the_line(state_repo, tmp_path, constant):
    source = tmp_path / "o.jsonl"
    good = json.dumps(observation(1))
    source.write_text(good + "\n" + good.replace('"o"', constant).replace("obs-1", "obs-2") + "\n")
    proc = run_cli("observe", source, cwd=state_repo)
    assert proc.returncode == 3
    assert f"{source}:2: broken JSON: {constant} is not JSON" in proc.stderr
    assert load_observations(state_repo) == []


def test_observe_accepts_a_bom_starting_a_file(state_repo, tmp_path):
    source = tmp_path / "o.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps(observation()).encode() + b"\n")
    proc = run_cli("observe", source, cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    assert [o["id"] for o in load_observations(state_repo)] == ["obs-1"]


def test_observe_accepts_a_bom_on_stdin(state_repo):
    proc = run_cli("observe", "-", cwd=state_repo, input="\ufeff" + json.dumps(observation()) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert len(load_observations(state_repo)) == 1


def test_a_bom_inside_a_file_is_not_ignored(state_repo, tmp_path):
    source = tmp_path / "o.jsonl"
    source.write_text(json.dumps(observation(1)) + "\n\ufeff" + json.dumps(observation(2)) + "\n")
    proc = run_cli("observe", source, cwd=state_repo)
    assert proc.returncode == 3 and f"{source}:2: broken JSON" in proc.stderr

