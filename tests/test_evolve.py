"""`aevolve evolve`: the loop on the demo repository (issue 15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aevolve._demo import run_demo, sample
from aevolve._evolve import evolve
from aevolve._evolve.records import CYCLES_REF, load_records
from aevolve._git.notes import read_gate_report
from aevolve._git.repo import MAIN, Repo
from aevolve._state.observations import observe

from conftest import git, isolated_git_env, write

FIELD_CASES = """\
- id: gift-cards
  input: {question: "Do you accept gift cards online?"}
  assert:
    - {type: icontains, value: "gift cards"}
  tags: [payments]
- id: ship-to-canada
  input: {question: "Do you ship to Canada?"}
  assert:
    - {type: contains, value: "Canada"}
  tags: [shipping]
"""

FIELD_OBSERVATIONS = [
    {"id": "obs-3001", "task": "Can I pay online with a gift card?", "output": "I don't know.",
     "feedback": {"success": False, "expected": "Yes, gift cards are accepted online and in stores."},
     "tags": ["payments"], "ts": "2026-11-16T10:00:00Z"},
    {"id": "obs-3002", "task": "Can you ship my order to Canada?", "output": "I don't know.",
     "feedback": {"success": False, "expected": "We ship to Canada and the US; delivery takes 7-10 business days."},
     "tags": ["shipping"], "ts": "2026-11-16T11:00:00Z"},
]


def _observe(repo: Repo, tmp_path, records: list[dict], name: str = "field.jsonl") -> None:
    source = tmp_path / name
    source.write_text(sample.jsonl(records))
    observe(repo, [source])


@pytest.fixture(scope="module")
def field_template(tmp_path_factory) -> Path:
    """The demo after its story (week 2's wrong lesson rejected), plus two failing cases
    from the field and the two observations that teach them; built once, copied per test."""
    with isolated_git_env(tmp_path_factory):
        root = tmp_path_factory.mktemp("field") / "demo"
        run_demo(root, echo=lambda line: None)
        write(root, {"evals/field.yaml": FIELD_CASES})
        git(root, "add", "evals/field.yaml")
        git(root, "commit", "-q", "-m", "exam: two cases from the field")
        _observe(Repo.open(root), root.parent, FIELD_OBSERVATIONS)
    return root


@pytest.fixture
def field(field_template, tmp_path) -> Repo:
    root = tmp_path / "demo"
    shutil.copytree(field_template, root, symlinks=True)
    return Repo.open(root)


def _lessons_on_main(repo: Repo) -> str:
    return (repo.read(repo.tree(MAIN), "memory/lessons.jsonl") or b"").decode()


def _evolve_branches(repo: Repo) -> dict[str, str]:
    return repo.refs("refs/heads/evolve/")


def test_a_short_loop_promotes_the_two_good_lessons_and_not_the_wrong_one(field):
    result = evolve(field, cycles=2, candidates=2)
    lessons = _lessons_on_main(field)
    assert '"obs-3001"' in lessons and '"obs-3002"' in lessons
    assert '"obs-2001"' not in lessons and "90 days" not in lessons
    assert len(result.promoted) == 2 and result.main_after == field.ref_target(MAIN)


def test_every_promoted_winner_regressed_nothing_and_fixed_something(field):
    result = evolve(field, cycles=2, candidates=2)
    for cycle in result.cycles:
        report = read_gate_report(field, cycle.main)
        assert report["decision"] == "accept"
        assert report["regressions"] == [] and report["improvements"]


def test_evidence_rejected_before_is_never_proposed_again(field):
    evolve(field, cycles=3, candidates=3)
    tried = [c["observations"] for r in load_records(field) for c in r["candidates"]]
    assert tried and all("obs-2001" not in ids for ids in tried)


def test_each_candidate_carries_one_failure_group(field):
    evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    assert sorted(c["observations"] for c in record["candidates"]) == [["obs-3001"], ["obs-3002"]]


def test_the_cycle_record_keeps_candidates_verdicts_choice_and_compute(field):
    evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    assert record["status"] == "done" and field.ref_target(CYCLES_REF)
    assert [c["decision"] for c in record["candidates"]] == ["accept", "accept"]
    assert {c["outcome"] for c in record["candidates"]} == {"promoted", "lost"}
    assert record["choice"]["promoted"] is True and "fix" in record["choice"]["why"]
    assert record["compute"]["evolver_calls"] == 2 and record["compute"]["runner_starts"] > 0
    assert record["main_after"] == field.ref_target(MAIN)


def test_the_baseline_runs_once_for_all_candidates_of_a_cycle(field):
    evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    cases = 8  # 6 demo cases + 2 field cases, one run each
    assert record["compute"]["runner_starts"] == cases * 3  # baseline once, each candidate once


def test_a_loser_with_a_gain_is_proposed_again_on_the_new_main(field):
    evolve(field, cycles=2, candidates=2)
    first, second = load_records(field)
    lost = [c for c in first["candidates"] if c["outcome"] == "lost"]
    assert [c["observations"] for c in second["candidates"]] == [lost[0]["observations"]]
    assert second["base"] == first["main_after"]


def test_the_loop_stops_when_nothing_is_left_to_try(field):
    result = evolve(field, cycles=5, candidates=2)
    assert result.stopped_by == "nothing-to-do" and len(result.cycles) == 2


def test_max_runs_stops_the_loop_before_the_next_cycle(field):
    result = evolve(field, cycles=5, candidates=1, max_runs=1)
    assert result.stopped_by == "max-runs" and len(result.cycles) == 1
    assert "--max-runs 1" in result.reason


def test_until_stops_the_loop_once_main_reaches_the_pass_rate(field):
    result = evolve(field, cycles=5, candidates=2, until=0.8)
    assert result.stopped_by == "until" and len(result.cycles) == 1
    assert result.cycles[0].pass_rate == pytest.approx(0.875)


def test_patience_stops_the_loop_after_cycles_without_gain(field, tmp_path):
    # two failures whose lessons no case checks: accepted, but nothing gained
    idle = [{"id": f"obs-40{n}", "task": f"Which colour is the {thing} logo?", "output": "I don't know.",
             "feedback": {"success": False, "expected": f"The {thing} logo is blue."}, "ts": "2026-11-17T10:00:00Z"}
            for n, thing in ((1, "winter"), (2, "summer"))]
    fresh = tmp_path / "idle"
    run_demo(fresh, echo=lambda line: None)
    repo = Repo.open(fresh)
    _observe(repo, tmp_path, idle, "idle.jsonl")
    before = repo.ref_target(MAIN)
    result = evolve(repo, cycles=5, candidates=1, patience=1)
    assert result.stopped_by == "patience" and len(result.cycles) == 1
    assert repo.ref_target(MAIN) == before
    assert result.cycles[0].candidates[0]["outcome"] == "no-gain"


def test_allow_no_gain_promotes_an_accepted_candidate_that_fixes_nothing(tmp_path):
    fresh = tmp_path / "idle"
    run_demo(fresh, echo=lambda line: None)
    repo = Repo.open(fresh)
    _observe(repo, tmp_path, [{"id": "obs-4001", "task": "Which colour is the logo?", "output": "?",
                               "feedback": {"success": False, "expected": "The logo is blue."},
                               "ts": "2026-11-17T10:00:00Z"}])
    result = evolve(repo, cycles=1, candidates=1, allow_no_gain=True)
    assert result.cycles[0].promoted


FIXED_EVOLVER = textwrap.dedent("""\
    import json, os
    proposal = {"title": "remember the logo colour", "diagnosis": "asked often", "change": "one record",
                "expected_effect": "nothing breaks", "evidence": [],
                "edits": [{"op": "append-jsonl", "path": "memory/extra.jsonl",
                           "records": [{"id": "logo", "content": "The logo is blue."}]}]}
    with open(os.environ["AEVOLVE_OUTPUT"], "w") as out:
        json.dump(proposal, out)
    """)


def test_identical_candidates_are_proposed_and_gated_once(field, tmp_path):
    script = tmp_path / "fixed.py"
    script.write_text(FIXED_EVOLVER)
    options = {"command": {"command": [sys.executable, str(script)]}}
    evolve(field, cycles=1, candidates=2, evolvers=["command"], evolver_options=options, allow_no_gain=True)
    (record,) = load_records(field)
    first, second = record["candidates"]
    assert first["outcome"] in ("promoted", "no-gain") and second["outcome"] == "duplicate"
    assert second["branch"] == first["branch"] and "decision" not in second


def _pause_env(stage: str) -> dict:
    return {**os.environ, "AEVOLVE_TEST_PAUSE_AT": stage, "AEVOLVE_TEST_PAUSE_SECONDS": "60"}


def _kill_at(root, stage: str, *args: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "aevolve", "evolve", *args], cwd=root, env=_pause_env(stage),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # progress lines come first
            lines.append(line)
            if line.strip() == f"aevolve-test-pause {stage}":
                break
        assert lines and lines[-1].strip() == f"aevolve-test-pause {stage}", "".join(lines)
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_a_loop_killed_before_promoting_resumes_without_proposing_or_promoting_twice(field):
    root = field.workdir
    before = field.ref_target(MAIN)
    _kill_at(root, "evolve-cycle", "--cycles", "1", "--candidates", "2")
    branches = _evolve_branches(field)
    assert field.ref_target(MAIN) == before and load_records(field)[0]["status"] == "gated"

    result = evolve(field, cycles=1, candidates=2)
    assert result.cycles[0].resumed and result.cycles[0].promoted
    assert _evolve_branches(field).keys() == branches.keys()  # nothing proposed again
    assert [str(c.id) for c in field.commits(MAIN, hide=before)] == [field.ref_target(MAIN)]  # promoted once
    (record,) = load_records(field)
    assert record["status"] == "done" and record["compute"]["evolver_calls"] == 2


def test_a_loop_killed_after_a_branch_was_made_adopts_that_branch(field):
    root = field.workdir
    _kill_at(root, "ref", "--cycles", "1", "--candidates", "2")  # propose made the first branch, unrecorded
    made = _evolve_branches(field)
    result = evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    assert result.cycles[0].resumed
    assert record["compute"]["evolver_calls"] == 1  # only the second plan called the evolver
    assert [c.get("reused") for c in record["candidates"]] == [True, None]
    assert set(made) <= set(_evolve_branches(field)) and len(_evolve_branches(field)) == len(made) + 1


def test_the_command_prints_progress_on_stderr_and_json_on_stdout(field, cli):
    proc = cli("evolve", "--cycles", "1", "--candidates", "2", "--json", cwd=field.workdir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["stopped_by"] == "cycles" and len(data["cycles"]) == 1
    assert "cycle 1: 2 candidate(s)" in proc.stderr and "gate evolve/" in proc.stderr


def test_the_command_refuses_a_pass_rate_outside_zero_to_one(field, cli):
    proc = cli("evolve", "--until", "1.5", cwd=field.workdir)
    assert proc.returncode == 2
