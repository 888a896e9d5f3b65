"""Which shard runs which case: balanced by recorded durations, longest first.

Every shard of one gate must compute the same split, on its own machine. The
durations therefore come from what every clone shares after `aevolve sync`,
the runs notes of the baseline's tree (`shared_runs.durations`), never from a
clone's own SQLite cache. Each case costs its mean recorded run time times its
repeats (cases never run cost the mean of the others, or 1 when none ran); the
cases are dealt longest first to the least loaded shard (greedy LPT), ties in a
stable order. The plan's digest goes into each shard report, and `--collect`
refuses shards that planned differently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ShardPlan:
    count: int
    assigned: dict[str, int]  # case id -> shard (1..count)
    digest: str  # over the assignment: equal digests, equal splits

    def shard(self, case_id: str) -> int:
        """A case outside the plan (an old exam's, during a change of the exam) goes by its hash."""
        from aevolve._gate.cases import shard_of

        return self.assigned.get(case_id) or shard_of(case_id, self.count)

    def select(self, cases: list, index: int) -> list:
        return [c for c in cases if self.shard(c.id) == index]


def plan(cases: list, count: int, per_run_ms: dict[str, float]) -> ShardPlan:
    """Deal `cases` to `count` shards by cost (`per_run_ms`: case hash -> mean ms per run)."""
    known = [per_run_ms[c.hash] for c in cases if c.hash in per_run_ms]
    default = sum(known) / len(known) if known else 1.0

    def cost(case) -> float:
        return per_run_ms.get(case.hash, default) * max(1, case.repeat)

    order = sorted(cases, key=lambda c: (-cost(c), _stable(c.id)))
    loads = [0.0] * count
    assigned = {}
    for case in order:
        target = min(range(count), key=lambda i: (loads[i], i))
        loads[target] += cost(case)
        assigned[case.id] = target + 1
    text = "\n".join(f"{cid}\t{n}" for cid, n in sorted(assigned.items()))
    return ShardPlan(count, assigned, "sha256:" + hashlib.sha256(text.encode()).hexdigest())


def _stable(case_id: str) -> bytes:
    return hashlib.sha256(case_id.encode()).digest()


def plan_for(repo, exam, count: int, tree: str) -> ShardPlan:
    """The plan of `exam` (its cases, its runner) from the durations recorded on `tree` (the baseline's)."""
    from aevolve._gate.shared_runs import durations

    return plan(exam.cases, count, durations(repo, tree, exam.runner.hash))
