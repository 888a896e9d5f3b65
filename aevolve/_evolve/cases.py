"""`aevolve cases propose`: failed observations that carry the right answer or guidance
become new eval cases, written into the checkout as an exam change.

The file is for a person to review and commit: evals/ is protected, so the commit
is a maintainer change that needs `gate.exam_approvals` approvals. No evolver can
take this path: an evolver commit that touches evals/ is rejected by the gate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aevolve._errors import InvalidInput, UsageError
from aevolve._git.repo import MAIN, Repo

CASE_PREFIX = "field-"


@dataclass
class CasesProposal:
    path: Path | None
    cases: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "obs-1: why"
    written: bool = False

    def to_dict(self) -> dict:
        return {"path": str(self.path) if self.path else None, "written": self.written,
                "cases": [c["id"] for c in self.cases], "skipped": self.skipped}


def case_id(obs_id: str) -> str:
    return CASE_PREFIX + re.sub(r"[^A-Za-z0-9_.-]+", "-", obs_id).strip("-.")


def case_for(obs: dict, input_key: str | None) -> tuple[dict | None, str]:
    """The case an observation teaches, or (None, why not)."""
    feedback = obs.get("feedback") or {}
    if feedback.get("success") is not False:
        return None, "it did not fail"
    expected, detail = feedback.get("expected"), feedback.get("detail")
    if isinstance(expected, str) and expected.strip():
        check = {"type": "icontains", "value": expected.strip()}
    elif expected is not None and not isinstance(expected, str):
        check = {"type": "equals", "value": expected}
    elif isinstance(detail, str) and detail.strip():  # guidance only: a judge reads the answer
        check = {"type": "llm-rubric", "value": detail.strip()}
    else:
        return None, "its feedback carries no correct answer (expected) or guidance (detail)"
    task = obs.get("task")
    case = {"id": case_id(obs["id"]), "description": f"from observation {obs['id']} ({obs.get('ts', '')})",
            "input": {input_key: task} if input_key else task, "assert": [check],
            "tags": [*(obs.get("tags") or []), "from-field"]}
    return case, ""


def propose_cases(repo: Repo | str | Path, *, observation_ids: list[str] | None = None,
                  output: str | Path | None = None, input_key: str | None = None,
                  dry_run: bool = False) -> CasesProposal:
    """Write the cases of the chosen failed observations (default: every failed one with an
    answer or guidance that main's exam does not already hold) to a new file under evals/."""
    from aevolve._ecosystem.letta import yaml_text
    from aevolve._ecosystem.promptfoo import output_path
    from aevolve._gate.cases import load_cases
    from aevolve._state.model import State
    from aevolve._state.observations import load_observations

    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    if repo.workdir is None:
        raise UsageError("a case file is written into a checkout; this repository is bare")
    known = {c.id for c in load_cases(State.from_tree(repo, MAIN))}
    chosen = load_observations(repo, ids=observation_ids) if observation_ids else \
        load_observations(repo, failed=True)
    result = CasesProposal(path=None)
    for obs in chosen:
        case, why = case_for(obs, input_key)
        if case is None:
            result.skipped.append(f"{obs['id']}: {why}")
        elif case["id"] in known:
            result.skipped.append(f"{obs['id']}: main's exam already has case {case['id']}")
        else:
            known.add(case["id"])
            result.cases.append(case)
    if not result.cases:
        if observation_ids:
            raise InvalidInput("none of the observations given teaches a new case:\n"
                               + "\n".join(f"  {s}" for s in result.skipped))
        return result
    result.path = output_path(repo.workdir, output or f"evals/field-{datetime.now(UTC):%Y%m%d}.yaml")
    if dry_run:
        return result
    header = ("# Cases from failed observations, by `aevolve cases propose`.\n"
              "# An exam change: check each expected answer (field feedback can be wrong), then commit it\n"
              "# (a maintainer change, which needs approval).\n")
    result.path.parent.mkdir(parents=True, exist_ok=True)
    result.path.write_text(header + yaml_text(result.cases), encoding="utf-8")
    result.written = True
    return result
