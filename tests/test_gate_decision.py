"""The decision rule: per-case verdicts, the Fisher exact test, and the policy."""

from __future__ import annotations

import pytest

from aevolve._gate.decision import decide, fisher_greater, fisher_less, judge_case, min_p_value


def side(passes, runs, errors=0):
    return {"runs": runs, "passes": passes, "errors": errors, "failures": []}


def case(cid, base, cand, repeat=1, threshold=1.0, tags=()):
    return judge_case({"id": cid, "baseline": base, "candidate": cand, "repeat": repeat,
                       "threshold": threshold, "tags": list(tags)}, 0.05)


POLICY = {"no_regressions": True, "min_improvement": 0.0, "significance": 0.05, "tags": {}}


def test_fisher_worked_example_from_the_docs():
    # baseline 10/10, candidate 5/10: P(X <= 5) = C(15,5)*C(5,5)/C(20,10)
    assert fisher_less(10, 10, 5, 10) == pytest.approx(3003 / 184756)
    assert fisher_less(10, 10, 5, 10) < 0.05


def test_fisher_one_flaky_run_is_not_significant():
    assert fisher_less(5, 5, 4, 5) == pytest.approx(0.5)
    assert fisher_greater(0, 5, 1, 5) == pytest.approx(0.5)


def test_fisher_tails_sum_past_one_by_the_observed_point():
    less, greater = fisher_less(3, 8, 6, 8), fisher_greater(3, 8, 6, 8)
    assert less + greater > 1.0 and less <= 1.0 and greater <= 1.0


def test_min_p_value_tells_when_repeats_are_too_few():
    assert min_p_value(2) == pytest.approx(1 / 6)
    assert min_p_value(4) < 0.05


def test_single_run_regression_and_improvement():
    assert case("a", side(1, 1), side(0, 1))["verdict"] == "regression"
    assert case("a", side(0, 1), side(1, 1))["verdict"] == "improvement"
    assert case("a", side(1, 1), side(1, 1))["verdict"] == "pass"
    assert case("a", side(0, 1), side(0, 1))["verdict"] == "fail"


def test_candidate_error_where_baseline_passed_counts_as_regression():
    entry = case("a", side(1, 1), side(0, 1, errors=1))
    assert entry["verdict"] == "error" and entry["regressed"] is True


def test_error_on_both_sides_is_no_regression():
    entry = case("a", side(0, 1, errors=1), side(0, 1, errors=1))
    assert entry["verdict"] == "error" and entry["regressed"] is False


def test_repeats_one_flaky_failure_is_not_a_regression():
    entry = case("a", side(5, 5), side(4, 5), repeat=5, threshold=0.5)
    assert entry["verdict"] == "pass" and not entry["regressed"] and entry["p_value"] == pytest.approx(0.5)


def test_repeats_significant_drop_is_a_regression():
    entry = case("a", side(5, 5), side(0, 5), repeat=5, threshold=0.5)
    assert entry["verdict"] == "regression" and entry["p_value"] < 0.05


def test_no_regressions_policy_rejects_with_the_case_named():
    decision, reasons, summary = decide([case("a", side(1, 1), side(0, 1)), case("b", side(1, 1), side(1, 1))],
                                        POLICY, [])
    assert decision == "reject"
    assert "a" in reasons[0] and summary["regressions"] == 1


def test_regressions_allowed_when_policy_says_so():
    decision, _, _ = decide([case("a", side(1, 1), side(0, 1))], {**POLICY, "no_regressions": False}, [])
    assert decision == "accept"


def test_min_improvement_requires_the_gain():
    cases = [case("a", side(0, 1), side(1, 1)), case("b", side(1, 1), side(1, 1))]
    assert decide(cases, {**POLICY, "min_improvement": 0.5}, [])[0] == "accept"
    assert decide(cases, {**POLICY, "min_improvement": 0.6}, [])[0] == "reject"


def test_min_improvement_is_not_met_by_one_lucky_run():
    lucky = [case("a", side(0, 5), side(1, 5), repeat=5, threshold=0.5)]
    decision, reasons, _ = decide(lucky, {**POLICY, "min_improvement": 0.1}, [])
    assert decision == "reject" and "significantly" in reasons[0]


def test_tag_rule_min_pass_rate():
    cases = [case("s1", side(0, 1), side(0, 1), tags=["safety"]), case("x", side(1, 1), side(1, 1))]
    decision, reasons, _ = decide(cases, {**POLICY, "tags": {"safety": {"min_pass_rate": 1.0}}}, [])
    assert decision == "reject" and "safety" in reasons[0]


def test_tag_rule_no_regressions_when_global_rule_is_off():
    cases = [case("s1", side(1, 1), side(0, 1), tags=["safety"]), case("x", side(1, 1), side(0, 1))]
    policy = {**POLICY, "no_regressions": False, "tags": {"safety": {"no_regressions": True}}}
    decision, reasons, _ = decide(cases, policy, [])
    assert decision == "reject" and "s1" in reasons[0] and "x" not in reasons[0]


def test_static_problems_reject():
    decision, reasons, _ = decide([], POLICY, ["protected path(s) differ: evals/a.yaml"])
    assert decision == "reject" and reasons[0].startswith("static check failed")


def test_flip_counts_errors_and_new_cases_apart_from_the_four_outcomes():
    from aevolve._gate.decision import evidence_summary

    cases = [case("pp", side(1, 1), side(1, 1)), case("pf", side(1, 1), side(0, 1)),
             case("fp", side(0, 1), side(1, 1)), case("ff", side(0, 1), side(0, 1)),
             case("err", side(1, 1), side(0, 1, errors=1)), case("new", None, side(1, 1))]
    flips = evidence_summary([judge_case(c, 0.05) for c in cases])["flips"]
    assert flips == {"pass_pass": 1, "pass_fail": 1, "fail_pass": 1, "fail_fail": 1, "new": 1, "errors": 1}
