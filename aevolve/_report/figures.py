"""The figures one gate report gives: per-case results, flips, per-tag rates, latency, cost.

A note is anyone's input (a pushed note, an older aevolve's report), so every
field is read defensively: a missing or mistyped value counts as absent, never
as an error, and only finite numbers get through (json.dumps would write NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aevolve._gate.decision import side_passing
from aevolve._propose.rationale import plain_text

SIDES = ("baseline", "candidate")


def number(value: object) -> float | None:
    """A finite int or float (not a bool), else None."""
    if type(value) is float:  # the exact types first: the hot path over thousands of notes
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def count(value: object) -> int:
    n = number(value)
    return int(n) if n is not None and n >= 0 else 0


def text(value: object, limit: int = 4000) -> str:
    """A string from data, without control characters, cut at `limit` characters."""
    if not isinstance(value, str):
        return ""
    out = value if value.isascii() and value.isprintable() else plain_text(value)  # the common case, fast
    return out if len(out) <= limit else out[:limit] + "…"


@dataclass
class Side:
    runs: int = 0
    passes: int = 0
    latency_ms: float | None = None  # mean per run, when the report has it
    cost: float | None = None  # mean per run, when the runner reported one

    @property
    def rate(self) -> float | None:
        return self.passes / self.runs if self.runs else None


@dataclass
class CaseResult:
    id: str
    tags: list[str] = field(default_factory=list)
    threshold: float = 1.0
    baseline: Side | None = None
    candidate: Side | None = None

    def passing(self, side: str) -> bool | None:
        """Does the case pass on `side`, as the gate judges it (None: not run)?"""
        s: Side | None = getattr(self, side)
        if s is None or not s.runs:
            return None
        return side_passing({"runs": s.runs, "passes": min(s.passes, s.runs)}, self.threshold)


def _side(raw: object) -> Side | None:
    if not isinstance(raw, dict):
        return None
    runs = count(raw.get("runs"))
    return Side(runs=runs, passes=min(count(raw.get("passes")), runs),
                latency_ms=number(raw.get("latency_ms")), cost=number(raw.get("cost")))


def cases(report: dict) -> list[CaseResult]:
    """The per-case results of a report, first occurrence of an id wins."""
    raw = report.get("cases")
    out: list[CaseResult] = []
    seen: set[str] = set()
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or item["id"] in seen:
            continue
        seen.add(item["id"])
        tags = item.get("tags")
        threshold = number(item.get("threshold"))
        out.append(CaseResult(
            id=text(item["id"], 200), tags=sorted({text(t, 100) for t in tags if isinstance(t, str)})
            if isinstance(tags, list) else [], threshold=1.0 if threshold is None else threshold,
            baseline=_side(item.get("baseline")), candidate=_side(item.get("candidate"))))
    return out


def pass_rate(report: dict, results: list[CaseResult], side: str) -> float | None:
    """The report's own summary figure, else the mean per-case rate (as `decision.aggregate`)."""
    summary = report.get("summary")
    given = number(summary.get(f"{side}_pass_rate")) if isinstance(summary, dict) else None
    if given is not None:
        return given
    rates = [r for r in (_rate_of(c, side) for c in results) if r is not None]
    return sum(rates) / len(rates) if rates else None


def _rate_of(case: CaseResult, side: str) -> float | None:
    s: Side | None = getattr(case, side)
    return s.rate if s is not None else None


def outcomes(results: list[CaseResult], side: str) -> dict[str, bool | None]:
    """case id -> passes on `side` (None: not run there)."""
    return {c.id: c.passing(side) for c in results}


def flips(results: list[CaseResult]) -> tuple[list[str], list[str]]:
    """(fixed: F→P, broke: P→F) case ids, each sorted."""
    fixed, broke = [], []
    for c in results:
        before, after = c.passing("baseline"), c.passing("candidate")
        if before is False and after is True:
            fixed.append(c.id)
        elif before is True and after is False:
            broke.append(c.id)
    return sorted(fixed), sorted(broke)


def tag_rates(results: list[CaseResult], side: str) -> dict[str, float]:
    """tag -> mean per-case pass rate of the tagged cases run on `side`."""
    by_tag: dict[str, list[float]] = {}
    for c in results:
        rate = _rate_of(c, side)
        if rate is not None:
            for tag in c.tags:
                by_tag.setdefault(tag, []).append(rate)
    return {tag: round(sum(r) / len(r), 6) for tag, r in sorted(by_tag.items())}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency(results: list[CaseResult], side: str) -> dict | None:
    """Median and p95 of the per-case mean latencies, or None when none is recorded."""
    values = [s.latency_ms for s in (getattr(c, side) for c in results) if s is not None and s.latency_ms is not None]
    if not values:
        return None
    return {"median_ms": round(percentile(values, 0.5), 1), "p95_ms": round(percentile(values, 0.95), 1),
            "cases": len(values)}


def cost(results: list[CaseResult], side: str) -> dict | None:
    """The cost of one run of every case (sum of per-case means) and the median, or None."""
    values = [s.cost for s in (getattr(c, side) for c in results) if s is not None and s.cost is not None]
    if not values:
        return None
    return {"total": round(sum(values), 6), "median": round(percentile(values, 0.5), 6), "cases": len(values)}


def reasons(report: dict, limit: int = 10) -> list[str]:
    raw = report.get("reasons")
    return [text(r, 1000) for r in raw[:limit] if isinstance(r, str)] if isinstance(raw, list) else []


def gain(report: dict, before: float | None, after: float | None) -> float | None:
    """The report's `summary.gain`, else after - before."""
    summary = report.get("summary")
    given = number(summary.get("gain")) if isinstance(summary, dict) else None
    if given is not None:
        return given
    return after - before if after is not None and before is not None else None
