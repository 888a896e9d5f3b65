"""Deciding: per-case verdicts (with a Fisher exact test for repeated runs) and the policy.

A *regression* is a case that passes on the baseline and fails on the candidate.
With one run per case that is read directly. With `repeat` > 1 the two pass
counts are compared by a one-sided Fisher exact test: the case regressed only
when the candidate's pass rate is significantly lower at `policy.significance`
(an improvement, symmetrically, only when significantly higher), so one flaky
run neither blocks nor admits a change. Runner errors count as failed runs.
"""

from __future__ import annotations

import math
from math import comb


def fisher_less(base_pass: int, base_runs: int, cand_pass: int, cand_runs: int) -> float:
    """P(candidate passes <= observed) under H0 "same pass rate", margins fixed (hypergeometric)."""
    total, passes = base_runs + cand_runs, base_pass + cand_pass
    denom = comb(total, cand_runs)
    lo = max(0, passes - base_runs)
    return sum(comb(passes, x) * comb(total - passes, cand_runs - x) for x in range(lo, cand_pass + 1)) / denom


def fisher_greater(base_pass: int, base_runs: int, cand_pass: int, cand_runs: int) -> float:
    """P(candidate passes >= observed) under the same null: the test for an improvement."""
    total, passes = base_runs + cand_runs, base_pass + cand_pass
    denom = comb(total, cand_runs)
    hi = min(passes, cand_runs)
    return sum(comb(passes, x) * comb(total - passes, cand_runs - x) for x in range(cand_pass, hi + 1)) / denom


def min_p_value(runs: int) -> float:
    """The smallest p-value `runs` repeats per side can reach (all pass vs none)."""
    return 1 / comb(2 * runs, runs)


def side_passing(side: dict | None, threshold: float) -> bool:
    if not side or side.get("runs", 0) <= 0:
        return False
    return bool(side["passes"] / side["runs"] >= threshold - 1e-12)


def judge_case(entry: dict, significance: float) -> dict:
    """Set entry["verdict"] (and "p_value" with repeats) from its two sides; returns entry."""
    base, cand = entry.get("baseline"), entry["candidate"]
    threshold = entry.get("threshold", 1.0)
    cand_ok = side_passing(cand, threshold)
    entry.pop("p_value", None)
    if not base or base.get("runs", 0) == 0:
        verdict = "new-pass" if cand_ok else "new-fail"
    elif max(base["runs"], cand["runs"]) <= 1:
        base_ok = side_passing(base, threshold)
        verdict = ("pass" if cand_ok else "regression") if base_ok else ("improvement" if cand_ok else "fail")
    else:
        down = fisher_less(base["passes"], base["runs"], cand["passes"], cand["runs"])
        up = fisher_greater(base["passes"], base["runs"], cand["passes"], cand["runs"])
        if down <= significance:
            verdict, entry["p_value"] = "regression", round(down, 6)
        elif up <= significance:
            verdict, entry["p_value"] = "improvement", round(up, 6)
        else:
            verdict, entry["p_value"] = ("pass" if cand_ok else "fail"), round(min(down, up), 6)
    entry["regressed"] = verdict == "regression"
    if cand.get("errors") and verdict in ("regression", "fail", "new-fail"):
        verdict = "error"  # still counted as a regression when `regressed`
    entry["verdict"] = verdict
    return entry


def _rate(side: dict | None) -> float | None:
    if not side or not side.get("runs"):
        return None
    return side["passes"] / side["runs"]


def aggregate(cases: list[dict], side: str) -> float | None:
    """Mean per-case pass rate of one side (cases weigh the same whatever their repeats)."""
    rates = [r for r in (_rate(c.get(side)) for c in cases) if r is not None]
    return sum(rates) / len(rates) if rates else None


def decide(cases: list[dict], policy: dict, static: list[str]) -> tuple[str, list[str], dict]:
    """(decision, reasons, summary) for a complete suite."""
    reasons: list[str] = []
    reject = False
    if static:
        reject = True
        reasons += [f"static check failed: {s}" for s in static]
    regressions = [c for c in cases if c.get("regressed")]
    improvements = [c for c in cases if c.get("verdict") == "improvement"]
    base_rate, cand_rate = aggregate(cases, "baseline"), aggregate(cases, "candidate")
    gain = (cand_rate - base_rate) if base_rate is not None and cand_rate is not None else 0.0
    if policy.get("no_regressions", True) and regressions:
        reject = True
        by_error = sum(1 for c in regressions if c.get("verdict") == "error")
        ids = ", ".join(c["id"] for c in regressions[:10]) + (" ..." if len(regressions) > 10 else "")
        extra = f" ({by_error} by runner errors)" if by_error else ""
        reasons.append(f"{len(regressions)} case(s) pass on the baseline but fail on the candidate{extra}: {ids}")
    min_gain = float(policy.get("min_improvement") or 0.0)
    if min_gain > 0 and gain + 1e-12 < min_gain:
        reject = True
        reasons.append(f"pass rate gain {gain:+.3f} is below the required min_improvement {min_gain:+.3f}")
    elif min_gain > 0 and not improvements:
        # a gain no single case shows significantly is noise, not an improvement
        reject = True
        reasons.append(f"pass rate gain {gain:+.3f} but no case improved significantly; min_improvement needs one")
    for tag, rule in sorted((policy.get("tags") or {}).items()):
        tagged = [c for c in cases if tag in (c.get("tags") or [])]
        if not tagged or not isinstance(rule, dict):
            continue
        if rule.get("no_regressions") and not policy.get("no_regressions", True):
            bad = [c["id"] for c in tagged if c.get("regressed")]
            if bad:
                reject = True
                reasons.append(f"tag {tag!r}: {len(bad)} regression(s): {', '.join(bad[:10])}")
        if rule.get("min_pass_rate") is not None:
            rate = aggregate(tagged, "candidate") or 0.0
            if rate + 1e-12 < float(rule["min_pass_rate"]):
                reject = True
                reasons.append(f"tag {tag!r}: candidate pass rate {rate:.3f} "
                               f"is below min_pass_rate {float(rule['min_pass_rate']):.3f}")
    summary = {
        "cases": len(cases),
        "regressions": len(regressions),
        "improvements": len(improvements),
        "baseline_pass_rate": None if base_rate is None else round(base_rate, 6),
        "candidate_pass_rate": None if cand_rate is None else round(cand_rate, 6),
        "gain": round(gain, 6),
        "candidate_errors": sum(c["candidate"].get("errors", 0) for c in cases),
        "baseline_errors": sum((c.get("baseline") or {}).get("errors", 0) for c in cases),
        **evidence_summary(cases),
    }
    if not reject:
        if not cases:
            reasons.append("no regression cases matched gate.cases on the baseline: nothing could regress")
        else:
            reasons.append(
                f"no regressions among {len(cases)} case(s); pass rate "
                f"{_fmt(base_rate)} -> {_fmt(cand_rate)} ({gain:+.3f}); {len(improvements)} improvement(s)"
            )
    return ("reject" if reject else "accept"), reasons, summary


SIDES = ("baseline", "candidate")
FLIPS = ("pass_pass", "pass_fail", "fail_pass", "fail_fail", "new", "errors")


def flip(case: dict) -> str:
    """Which of FLIPS a case is: baseline pass/fail -> candidate pass/fail as the gate judges
    each side; "errors" when a run errored on either side, "new" without a baseline."""
    base, cand = case.get("baseline"), case.get("candidate")
    if case.get("verdict") == "error" or any((s or {}).get("errors") for s in (base, cand)):
        return "errors"
    if not base or not base.get("runs"):
        return "new"
    threshold = case.get("threshold", 1.0)
    before = "pass" if side_passing(base, threshold) else "fail"
    return f"{before}_{'pass' if side_passing(cand, threshold) else 'fail'}"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list (the same as aevolve report's)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _spread(values: list[float], digits: int) -> dict | None:
    if not values:
        return None
    return {"median": round(percentile(values, 0.5), digits), "p95": round(percentile(values, 0.95), digits),
            "cases": len(values)}


def _numbers(cases: list[dict], side: str, key: str) -> list[float]:
    out = []
    for c in cases:
        value = (c.get(side) or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append(float(value))
    return out


def tag_rates(cases: list[dict]) -> dict:
    """tag -> {"cases", "baseline", "candidate"}: the mean per-case pass rate of each side."""
    out = {}
    for tag in sorted({t for c in cases for t in (c.get("tags") or []) if isinstance(t, str)}):
        tagged = [c for c in cases if tag in (c.get("tags") or [])]
        rates = {side: aggregate(tagged, side) for side in SIDES}
        out[tag] = {"cases": len(tagged), **{k: None if v is None else round(v, 6) for k, v in rates.items()}}
    return out


def evidence_summary(cases: list[dict]) -> dict:
    """The figures a reviewer compares: flip counts, per-tag pass rates, and the median and
    p95 of per-case latency and cost on each side (None where no case recorded one)."""
    flips = dict.fromkeys(FLIPS, 0)
    for c in cases:
        flips[flip(c)] += 1
    cost = {}
    for side in SIDES:
        values = _numbers(cases, side, "cost")
        spread = _spread(values, 6)
        cost[side] = None if spread is None else {**spread, "total": round(sum(values), 6)}
    return {"flips": flips, "tags": tag_rates(cases),
            "latency_ms": {side: _spread(_numbers(cases, side, "latency_ms"), 1) for side in SIDES},
            "cost": cost}


def _fmt(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.3f}"


def holdout_summary(cases: list[dict]) -> dict:
    """The held-out cases as counts and rates only (no ids: reports reach evolvers)."""
    base_rate, cand_rate = aggregate(cases, "baseline"), aggregate(cases, "candidate")
    return {
        "cases": len(cases),
        "regressions": sum(1 for c in cases if c.get("regressed")),
        "improvements": sum(1 for c in cases if c.get("verdict") == "improvement"),
        "baseline_pass_rate": None if base_rate is None else round(base_rate, 6),
        "candidate_pass_rate": None if cand_rate is None else round(cand_rate, 6),
        "gain": round(cand_rate - base_rate, 6) if base_rate is not None and cand_rate is not None else 0.0,
        "candidate_errors": sum(c["candidate"].get("errors", 0) for c in cases),
    }


def apply_holdout(decision: str, reasons: list[str], holdout: dict, no_regressions: bool) -> tuple[str, list[str]]:
    """A held-out regression rejects an otherwise accepted change when
    gate.policy.holdout_no_regressions is on (the default); the rates are always reported."""
    line = (f"held-out cases: {holdout['cases']}, pass rate {_fmt(holdout['baseline_pass_rate'])} -> "
            f"{_fmt(holdout['candidate_pass_rate'])} ({holdout['gain']:+.3f}), {holdout['regressions']} regression(s)")
    if holdout["regressions"] and no_regressions and decision == "accept":
        return "reject", [f"{holdout['regressions']} held-out case(s) pass on the baseline but fail on the candidate "
                          "(gate.policy.holdout_no_regressions); which ones is not shown, so that no evolver "
                          "learns the held-out cases: run them yourself to see", line]
    return decision, [*reasons, line]
