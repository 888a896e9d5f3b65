"""One exam, read from one tree: its cases, runner, policy and digest.

Cases in files matching `gate.holdout` are held out: the gate runs them on both
sides and reports them apart (counts only: reports reach evolvers as history),
and they never count among the gate cases.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from aevolve._gate.cases import Case, load_cases
from aevolve._gate.runner import RunnerConfig
from aevolve._state.model import State
from aevolve._trust.exam import holdout_files

TIMED = {"latency", "not-latency"}  # verdicts that depend on the machine's load, not only the output


@dataclass
class Exam:
    tree: str  # where the exam comes from: python checks load from this tree
    cases: list[Case]
    runner: RunnerConfig
    policy: dict
    cfg: dict
    digest: str
    state: State  # the tree the exam is read from (python checks compile from its blobs)
    holdout: list[Case] = field(default_factory=list)  # cases of files matching gate.holdout

    @classmethod
    def of(cls, state: State) -> Exam:
        from aevolve._trust.exam import exam_digest

        cfg = state.config()
        cases, holdout = split_holdout(load_cases(state), holdout_files(state))
        policy = dict(cfg["gate"].get("policy") or {})
        policy["significance"] = float(policy.get("significance") or 0.05)
        files = {p: f.oid for p, f in state.files.items()}
        digest = exam_digest(files, lambda p: state.read(p) if p in state.files else None)
        return cls(str(state.tree_id), cases, RunnerConfig.from_config(cfg), policy, cfg, digest, state, holdout)

    def held_out(self) -> Exam:
        """The held-out cases as an exam of their own (same runner, policy and tree)."""
        return dataclasses.replace(self, cases=list(self.holdout), holdout=[])

    @property
    def holdout_no_regressions(self) -> bool:
        return self.policy.get("holdout_no_regressions", True) is not False

    @property
    def allow_empty(self) -> bool:
        return self.cfg["gate"].get("allow_empty") is True

    @property
    def max_errors(self) -> int:
        value = self.policy.get("max_errors", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def is_timed(case: Case) -> bool:
    """A case whose verdict depends on time: never cached, re-measured before it regresses."""
    return any(isinstance(a, dict) and a.get("type") in TIMED for a in case.asserts)


def split_holdout(cases: list[Case], files: set[str]) -> tuple[list[Case], list[Case]]:
    """(gate cases, held-out cases) by the file each case comes from."""
    if not files:
        return cases, []
    held = [c for c in cases if case_file(c) in files]
    return [c for c in cases if case_file(c) not in files], held


def case_file(case: Case) -> str:
    return case.file
