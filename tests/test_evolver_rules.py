"""The rules evolver: lessons from corrected failures, skills from shared signatures."""

from __future__ import annotations

import json

from aevolve._git.repo import Repo
from aevolve._propose.run import propose
from aevolve._state.model import State
from aevolve._state.observations import observe
from aevolve._state.validate import validate_state

from conftest import git, run_cli


def failure(i, tags=("billing",), expected="30 days", detail=None, ts="2025-01-01T00:00:00Z", success=False):
    fb = {"success": success}
    if expected is not None:
        fb["expected"] = expected
    if detail is not None:
        fb["detail"] = detail
    return {"id": f"obs-{i}", "task": f"question {i}", "output": "wrong", "feedback": fb, "tags": list(tags), "ts": ts}


def ingest(root, tmp_path, records):
    source = tmp_path / "o.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    observe(root, [source])


def lessons(root, rev):
    text = git(root, "show", f"{rev}:memory/lessons.jsonl")
    return [json.loads(line) for line in text.splitlines()]


def test_failed_observations_with_answers_become_lessons_with_stable_ids(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(1, tags=()), failure(2, tags=(), expected=None, detail="Cite the policy."),
                                  failure(3, tags=(), expected=None), failure(4, tags=(), success=True)])
    result = propose(state_repo)
    records = lessons(state_repo, result.branch)
    assert [r["source"]["observation"] for r in records] == ["obs-1", "obs-2"]
    assert all(r["id"].startswith("lesson-") for r in records)
    assert "Correct answer: 30 days" in records[0]["content"] and "Guidance: Cite the policy." in records[1]["content"]
    again = propose(state_repo, dry_run=True, evolver="rules")
    assert again.nothing_to_do  # the same change is already on an open branch
    assert result.message.startswith("evolve(memory): learn 2 lessons from failed tasks")
    assert "3 of 4 observed tasks failed; 2 of them carry the correct answer" in result.message
    assert "Aevolve-Evidence: obs-1, obs-2" in result.message


def test_three_failures_sharing_a_tag_draft_a_valid_skill(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(i, detail="Always quote the 30-day window.") for i in range(1, 4)]
           + [failure(9, tags=("other",))])
    result = propose(state_repo)
    skill = git(state_repo, "show", f"{result.branch}:skills/billing-guidance/SKILL.md")
    assert skill.startswith("---\nname: billing-guidance\ndescription:")
    assert "3 of 4 failed tasks were tagged `billing`" in skill and "Always quote the 30-day window." in skill
    assert "question 1 → expected 30 days (obs-1)" in skill
    assert "3 of 4 failed tasks share the tag `billing`: obs-1, obs-2, obs-3." in result.message
    report = validate_state(State.from_tree(Repo.open(state_repo), result.branch))
    assert report.ok and not [w for w in report.warnings if "billing" in w.path]


def test_two_failures_are_not_enough_for_a_skill(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(1), failure(2)])
    result = propose(state_repo)
    assert [s.split()[1] for s in result.summary] == ["memory/lessons.jsonl"]


def test_a_shared_error_class_is_a_failure_signature(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(i, tags=(), expected=None,
                                          detail=f"KeyError: 'user' in step {i}; check keys first")
                                  for i in range(1, 4)])
    result = propose(state_repo, focus="skills")
    assert [s.split()[1] for s in result.summary] == ["skills/key-error-guidance/SKILL.md"]
    assert "fail with `KeyError`" in result.message


def test_after_promotion_the_same_evidence_proposes_nothing_and_says_why(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(i, detail="Quote the window.") for i in range(1, 4)])
    first = propose(state_repo)
    git(state_repo, "update-ref", "refs/heads/main", first.commit)  # as if gated and promoted
    proc = run_cli("propose", cwd=state_repo)
    assert proc.returncode == 0
    assert proc.stdout.startswith("nothing to propose: 3 of 3 observation(s) failed")
    assert "already lessons in memory" in proc.stdout


def test_focus_limits_the_layers_it_writes(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(i, detail="Quote the window.") for i in range(1, 4)])
    memory_only = propose(state_repo, focus="memory", dry_run=True)
    assert [s.split()[1] for s in memory_only.summary] == ["memory/lessons.jsonl"]
    prompts = propose(state_repo, focus="prompts", dry_run=True)
    assert prompts.nothing_to_do and "focus 'prompts'" in prompts.reason


def test_the_same_evidence_gives_the_same_edits(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(i, tags=("a", "b"), detail="x") for i in range(1, 4)])
    one = propose(state_repo, dry_run=True, seed=1)
    two = propose(state_repo, dry_run=True, seed=1)
    assert one.proposal.to_dict() == two.proposal.to_dict()


def test_no_failures_means_nothing_to_propose(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(1, success=True)])
    result = propose(state_repo)
    assert result.nothing_to_do and result.reason == "none of the 1 observation(s) failed"


def test_selected_observations_only(state_repo, tmp_path):
    ingest(state_repo, tmp_path, [failure(1), failure(2)])
    result = propose(state_repo, observation_ids=["obs-2"])
    assert [r["source"]["observation"] for r in lessons(state_repo, result.branch)] == ["obs-2"]
