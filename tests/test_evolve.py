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


def _demo_with_a_fix_no_case_checks(tmp_path) -> Repo:
    """The demo plus one failure whose lesson the gate's cases never ask about."""
    fresh = tmp_path / "idle"
    run_demo(fresh, echo=lambda line: None)
    repo = Repo.open(fresh)
    _observe(repo, tmp_path, [{"id": "obs-4001", "task": "Which colour is the logo?", "output": "?",
                               "feedback": {"success": False, "expected": "The logo is blue."},
                               "ts": "2026-11-17T10:00:00Z"}])
    return repo


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
    repo = _demo_with_a_fix_no_case_checks(tmp_path)
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
    assert set(_evolve_branches(field)) <= set(branches)  # nothing proposed again (the winner is pruned)
    assert [str(c.id) for c in field.commits(MAIN, hide=before)] == [field.ref_target(MAIN)]  # promoted once
    (record,) = load_records(field)
    assert record["status"] == "done" and record["compute"]["evolver_calls"] == 2


def test_a_loop_killed_after_a_branch_was_made_adopts_that_branch(field):
    root = field.workdir
    old = set(_evolve_branches(field))
    _kill_at(root, "ref", "--cycles", "1", "--candidates", "2")  # propose made the first branch, unrecorded
    (made,) = set(_evolve_branches(field)) - old
    result = evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    assert result.cycles[0].resumed
    assert record["compute"]["evolver_calls"] == 1  # only the second plan called the evolver
    assert [c.get("reused") for c in record["candidates"]] == [True, None]
    assert record["candidates"][0]["branch"] == made.removeprefix("refs/heads/")
    proposed = {f"refs/heads/{c['branch']}" for c in record["candidates"]}
    assert len(proposed) == 2 and set(_evolve_branches(field)) - old <= proposed  # no third branch


def test_the_command_prints_progress_on_stderr_and_json_on_stdout(field, cli):
    proc = cli("evolve", "--cycles", "1", "--candidates", "2", "--json", cwd=field.workdir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["stopped_by"] == "cycles" and len(data["cycles"]) == 1
    assert "cycle 1: 2 candidate(s)" in proc.stderr and "gate evolve/" in proc.stderr


def test_the_command_refuses_a_pass_rate_outside_zero_to_one(field, cli):
    proc = cli("evolve", "--until", "1.5", cwd=field.workdir)
    assert proc.returncode == 2


# -- budgets, remotes, pruning, history (issue 15, part 2) ---------------------------------------


def _charge(repo: Repo, cost: float) -> None:
    """Make the demo's runner report `cost` per run (an exam change, committed as the fixture's are)."""
    root = repo.workdir
    path = Path(root) / "agent" / "run_case.py"
    text = path.read_text()
    old = 'print(json.dumps({"output": answer(question, state)}))'
    assert old in text
    path.write_text(text.replace(old, f'print(json.dumps({{"output": answer(question, state), "cost": {cost}}}))'))
    git(root, "commit", "-q", "-am", "runner reports its cost")


def test_max_cost_stops_the_loop_and_says_which_budget(field):
    _charge(field, 0.5)
    result = evolve(field, cycles=5, candidates=1, max_cost=1.0)
    assert result.stopped_by == "max-cost" and len(result.cycles) == 1
    assert "--max-cost 1" in result.reason and "reported by the runner" in result.reason
    assert result.compute["runner_cost"] == pytest.approx(8 * 0.5 * 2)  # 8 cases, baseline and candidate


def test_the_baseline_cost_counts_once_per_cycle(field):
    _charge(field, 0.25)
    evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    assert record["compute"]["runner_cost"] == pytest.approx(8 * 0.25 * 3)
    assert record["compute"]["cost"] == pytest.approx(record["compute"]["runner_cost"])


def test_the_command_refuses_a_max_cost_of_zero(field, cli):
    proc = cli("evolve", "--max-cost", "0", cwd=field.workdir)
    assert proc.returncode == 2


def _origin(repo: Repo, tmp_path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--mirror", str(repo.workdir), str(bare))  # refs/aevolve/* too
    git(repo.workdir, "remote", "add", "origin", str(bare))
    git(repo.workdir, "fetch", "-q", "origin")
    return bare


def test_push_publishes_the_promotion_and_the_cycle_records(field, tmp_path):
    bare = _origin(field, tmp_path)
    result = evolve(field, cycles=1, candidates=2, push="origin")
    assert result.cycles[0].promoted
    assert git(bare, "rev-parse", "refs/heads/main").strip() == field.ref_target(MAIN)
    assert git(bare, "rev-parse", CYCLES_REF).strip() == field.ref_target(CYCLES_REF)
    assert read_gate_report(Repo.open(bare), field.ref_target(MAIN))["decision"] == "accept"


def test_push_syncs_observations_from_the_remote_before_each_cycle(field, tmp_path):
    bare = _origin(field, tmp_path)
    teammate = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(bare), str(teammate))
    mate = Repo.open(teammate)
    git(teammate, "fetch", "-q", "origin", "refs/aevolve/observations:refs/aevolve/observations")
    _observe(mate, tmp_path, [{"id": "obs-5001", "task": "Do you sell gift wrap?", "output": "I don't know.",
                                "feedback": {"success": False, "expected": "Gift wrap is free on every order."},
                                "ts": "2026-11-18T10:00:00Z"}], "mate.jsonl")
    git(teammate, "push", "-q", "origin", "refs/aevolve/observations:refs/aevolve/observations")
    evolve(field, cycles=1, candidates=3, push="origin")
    (record,) = load_records(field)
    assert ["obs-5001"] in [g["observations"] for g in record["groups"]]


def test_push_to_an_unknown_remote_is_a_usage_error(field):
    from aevolve._errors import UsageError

    with pytest.raises(UsageError):
        evolve(field, cycles=1, push="nowhere")


def test_promoted_and_rejected_candidate_branches_are_pruned_and_their_notes_kept(field):
    hand_made = set(_evolve_branches(field))
    evolve(field, cycles=1, candidates=2)
    (record,) = load_records(field)
    winner = next(c for c in record["candidates"] if c["outcome"] == "promoted")
    loser = next(c for c in record["candidates"] if c["outcome"] == "lost")
    left = set(_evolve_branches(field))
    assert f"refs/heads/{winner['branch']}" not in left and record["pruned"] == [winner["branch"]]
    assert f"refs/heads/{loser['branch']}" in left  # accepted, not promoted: kept, as `aevolve prune` keeps it
    assert hand_made <= left  # branches the loop did not make are left alone
    assert read_gate_report(field, winner["commit"])["decision"] == "accept"


def test_no_gain_and_rejected_candidates_are_shown_to_the_next_cycles_evolvers(tmp_path):
    from aevolve._evolve.loop import NO_GAIN_REASON, evolver_history

    repo = _demo_with_a_fix_no_case_checks(tmp_path)
    evolve(repo, cycles=1, candidates=1)
    (record,) = load_records(repo)
    (cand,) = record["candidates"]
    assert cand["outcome"] == "no-gain"
    shown = evolver_history(repo, load_records(repo))
    entry = next(h for h in shown if h["commit"] == cand["commit"])
    assert entry["decision"] == "no-gain" and entry["reasons"][0] == NO_GAIN_REASON
    assert any(h["decision"] == "reject" for h in shown)  # the demo's rejected week-2 proposal too


# -- merge and ablation ------------------------------------------------------------------------

LESSON_EVOLVER = textwrap.dedent("""\
    import json, os, sys
    observations = [json.loads(line) for line in open(os.environ["AEVOLVE_OBSERVATIONS"]) if line.strip()]
    edits = []
    for obs in observations:
        lesson = {"id": "lesson-" + obs["id"],
                  "content": "Task: " + obs["task"] + " | Correct answer: " + obs["feedback"]["expected"]}
        edits.append({"op": "append-jsonl", "path": "memory/" + obs["id"] + ".jsonl", "records": [lesson]})
        rule = {"id": "rule-" + obs["id"], "content": "Always reply in French."}
        if sys.argv[1:] == ["with-rule"]:  # a rule no case exercises rides along, in a file of its own
            edits.append({"op": "append-jsonl", "path": "memory/rule-" + obs["id"] + ".jsonl", "records": [rule]})
        if sys.argv[1:] == ["rule-in-file"]:  # ... or as one more record of the lesson's file
            edits[-1]["records"].append(rule)
    proposal = {"title": "learn " + ", ".join(o["id"] for o in observations), "diagnosis": "the agent did not know",
                "change": "one lesson file per observation", "expected_effect": "the failures are fixed",
                "evidence": [o["id"] for o in observations], "edits": edits}
    with open(os.environ["AEVOLVE_OUTPUT"], "w") as out:
        json.dump(proposal, out)
    """)


def _lesson_options(tmp_path, *args: str) -> dict:
    script = tmp_path / "lessons.py"
    script.write_text(LESSON_EVOLVER)
    return {"command": {"command": [sys.executable, str(script), *args]}}


def _memory_files(repo: Repo) -> set[str]:
    return {f.path for f in repo.list_files(repo.tree(MAIN)) if f.path.startswith("memory/")}


def test_two_accepted_candidates_fixing_different_cases_in_different_files_are_merged(field, tmp_path):
    result = evolve(field, cycles=1, candidates=2, evolvers=["command"], evolver_options=_lesson_options(tmp_path))
    (record,) = load_records(field)
    merged = [c for c in record["candidates"] if c.get("merge_of")]
    assert len(merged) == 1 and merged[0]["outcome"] == "promoted"
    assert sorted(merged[0]["improvements"]) == ["gift-cards", "ship-to-canada"]
    assert {"memory/obs-3001.jsonl", "memory/obs-3002.jsonl"} <= _memory_files(field)
    assert result.cycles[0].promoted and "beating both" in record["choice"]["why"]


def test_candidates_touching_the_same_file_are_not_merged(field):
    evolve(field, cycles=1, candidates=2)  # the rules evolver: both append to memory/lessons.jsonl
    (record,) = load_records(field)
    assert not any(c.get("merge_of") for c in record["candidates"])


def test_a_part_of_the_winner_that_fixes_nothing_is_left_out_of_main(field, tmp_path):
    evolve(field, cycles=1, candidates=1, evolvers=["command"], evolver_options=_lesson_options(tmp_path, "with-rule"))
    (record,) = load_records(field)
    bundle = record["candidates"][0]
    promoted = next(c for c in record["candidates"] if c["outcome"] == "promoted")
    assert promoted.get("ablation_of") == 0
    assert promoted["without"] == ["memory/rule-obs-3001.jsonl record rule-obs-3001"]
    assert promoted["improvements"] == bundle["improvements"] and promoted["size"] < bundle["size"]
    files = _memory_files(field)
    assert "memory/obs-3001.jsonl" in files and "memory/rule-obs-3001.jsonl" not in files
    assert "fixed nothing" in record["choice"]["why"]


def test_a_winner_of_one_part_is_not_ablated(field):
    evolve(field, cycles=1, candidates=1)
    (record,) = load_records(field)
    assert len(record["candidates"]) == 1


def test_a_record_that_fixes_nothing_is_left_out_of_a_memory_file(field, tmp_path):
    evolve(field, cycles=1, candidates=1, evolvers=["command"],
           evolver_options=_lesson_options(tmp_path, "rule-in-file"))
    (record,) = load_records(field)
    promoted = next(c for c in record["candidates"] if c["outcome"] == "promoted")
    assert promoted["without"] == ["memory/obs-3001.jsonl record rule-obs-3001"]
    memory = (field.read(field.tree(MAIN), "memory/obs-3001.jsonl") or b"").decode()
    assert "lesson-obs-3001" in memory and "rule-obs-3001" not in memory
