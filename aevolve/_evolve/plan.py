"""Diagnosis and planning: which failures are still open, how they group, what to propose.

A *failure group* is the failed observations that share a symptom: the same
correct answer or guidance in their feedback, else the same tags, else the
same task. Each candidate of a cycle focuses on one group, so evidence that
caused a regression cannot drag good evidence down with it. A *combination*
(evolver, observation ids) that was rejected, changed nothing or gained
nothing is never proposed again; one that only lost to a better candidate is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aevolve._git.repo import MAIN, Repo

BAD_OUTCOMES = {"rejected", "nothing", "no-gain", "failed"}  # "lost" and "error" may be tried again
TEMPERATURES = (None, 0.7, 1.0, 0.4)  # LLM evolvers: spread the candidates of one group


@dataclass
class Group:
    key: str  # the symptom, e.g. "expected: Standard shipping takes 3-5 business days."
    observations: list[str]  # ids, oldest first
    tainted: bool = False  # one of them was in a rejected candidate before

    @property
    def label(self) -> str:
        return self.key if len(self.key) <= 80 else self.key[:79] + "…"


@dataclass
class Plan:
    evolver: str
    observations: list[str]
    group: str
    seed: int = 0
    temperature: float | None = None

    def to_dict(self) -> dict:
        return {"evolver": self.evolver, "observations": self.observations, "group": self.group,
                "seed": self.seed, "temperature": self.temperature}

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(str(data["evolver"]), [str(i) for i in data["observations"]], str(data.get("group", "")),
                   int(data.get("seed") or 0), data.get("temperature"))

    @property
    def combination(self) -> tuple[str, tuple[str, ...]]:
        return combination(self.evolver, self.observations)


@dataclass
class History:
    """What earlier cycles and hand-made proposals tell the planner."""

    cited_on_main: set[str] = field(default_factory=set)  # evidence of commits main holds: resolved
    outcomes: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)  # combination -> last outcome
    rejected_ids: set[str] = field(default_factory=set)  # observations in a rejected candidate
    failures: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)  # combination -> bad outcomes


def combination(evolver: str, ids) -> tuple[str, tuple[str, ...]]:
    # "openai/gpt-4.1-mini" (the trailer) and "openai" (the option) are one evolver
    return evolver.split("/", 1)[0], tuple(sorted(set(ids)))


def symptom(obs: dict) -> str:
    """What a failed observation shows: its feedback's answer or guidance, else its tags, else its task."""
    feedback = obs.get("feedback") or {}
    for key in ("expected", "detail"):
        value = feedback.get(key)
        if value is not None and value != "":
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
            return f"{key}: {' '.join(text.split()).lower()}"
    if obs.get("tags"):
        return "tags: " + ",".join(sorted(map(str, obs["tags"])))
    return "task: " + " ".join(str(obs.get("task", "")).split()).lower()


def history(repo: Repo, records: list[dict]) -> History:
    """Resolved observations (cited by main's evolver commits) and the outcome of every combination tried."""
    from aevolve._git.notes import read_gate_report
    from aevolve._propose.rationale import parse
    from aevolve._propose.run import BRANCH_PREFIX

    found = History()
    main = repo.ref_target(MAIN)
    if main:
        for commit in repo.commits(main):
            rationale = parse(commit.message)
            if rationale:
                found.cited_on_main.update(rationale.evidence)
    for target in repo.refs(BRANCH_PREFIX).values():  # hand-made proposals rejected by the gate count too
        report = read_gate_report(repo, target)
        if report is None or report.get("decision") != "reject":
            continue
        rationale = parse(repo.message(target))
        if rationale and rationale.evidence:
            combo = combination(rationale.evolver, rationale.evidence)
            found.outcomes[combo] = "rejected"
            found.failures[combo] = found.failures.get(combo, 0) + 1
            found.rejected_ids.update(rationale.evidence)
    for record in records:
        for cand in record.get("candidates") or []:
            outcome = cand.get("outcome")
            if not outcome or not isinstance(cand.get("observations"), list):
                continue
            combo = combination(str(cand.get("evolver", "")), cand["observations"])
            found.outcomes[combo] = outcome
            if outcome in BAD_OUTCOMES:
                found.failures[combo] = found.failures.get(combo, 0) + 1
            if outcome == "rejected":
                found.rejected_ids.update(map(str, cand["observations"]))
    return found


def open_failures(observations: list[dict], past: History) -> list[dict]:
    """Failed observations no commit on main cites yet."""
    return [o for o in observations
            if (o.get("feedback") or {}).get("success") is False and o["id"] not in past.cited_on_main]


def group_failures(failures: list[dict], past: History) -> list[Group]:
    """Failure groups, clean ones first, then bigger, then older."""
    groups: dict[str, Group] = {}
    for obs in failures:
        group = groups.setdefault(symptom(obs), Group(symptom(obs), []))
        group.observations.append(obs["id"])
        group.tainted = group.tainted or obs["id"] in past.rejected_ids
    order = list(groups.values())
    return sorted(order, key=lambda g: (g.tainted, -len(g.observations)))  # stable: oldest first on ties


DETERMINISTIC = {"rules", "patch"}  # the same evidence gives the same change: one try is enough
STOCHASTIC_TRIES = 3  # a sampling evolver may try a combination this often before it counts as failed


def plan_cycle(groups: list[Group], evolvers: list[str], k: int, cycle: int, past: History) -> list[Plan]:
    """Up to `k` plans, spread over groups and evolvers, none a combination that failed before.

    When there are fewer groups than slots, sampling evolvers (not `rules`) fill the rest with
    more tries at the same groups under other seeds and temperatures."""
    plans: list[Plan] = []
    open_ = [(group, evolvers[(j + round_) % len(evolvers)])
             for round_ in range(len(evolvers)) for j, group in enumerate(groups)]
    open_ = [(g, e) for g, e in open_ if _may_try(combination(e, g.observations), past)]
    open_ = list({combination(e, g.observations): (g, e) for g, e in open_}.values())
    extra = [(g, e) for g, e in open_ if e not in DETERMINISTIC]
    pool = open_ + extra * max(0, k)  # repeats only for sampling evolvers
    for group, evolver in pool[:k]:
        slot = len(plans)
        plans.append(Plan(evolver, list(group.observations), group.label, seed=cycle * 1000 + slot,
                          temperature=None if evolver in DETERMINISTIC else TEMPERATURES[slot % len(TEMPERATURES)]))
    return plans


def _may_try(combo: tuple[str, tuple[str, ...]], past: History) -> bool:
    if combo[0] in DETERMINISTIC:
        return past.outcomes.get(combo) not in BAD_OUTCOMES
    return past.failures.get(combo, 0) < STOCHASTIC_TRIES
