"""`aevolve gate` end to end on real repositories with real runner processes."""

from __future__ import annotations

import json

from aevolve._gate.run import gate
from aevolve._git.notes import read_gate_report
from aevolve._state import schemas

from conftest import admissible, git, run_cli
from gate_support import GateRepo, cases_yaml

ANSWERS = {"a": "right", "b": "right", "c": "wrong"}


def make(tmp_path, **config):
    return GateRepo(tmp_path, dict(ANSWERS), cases_yaml("a", "b", "c"), **config)


def test_improvement_is_accepted_and_noted_on_the_exact_commit(tmp_path):
    g = make(tmp_path)
    commit = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    proc = run_cli("gate", "evolve/fix-c", "--json", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["decision"] == "accept" and data["improvements"] == ["c"] and data["regressions"] == []
    assert schemas.errors("gate-report", data) == []
    assert admissible(g.repo, commit)
    assert read_gate_report(g.repo, commit)["candidate"] == commit
    assert git(g.path, "rev-parse", "main") != commit  # gating never moves main


def test_regression_is_rejected_with_exit_100_and_listed_first(tmp_path):
    g = make(tmp_path)
    commit = g.answers_branch("evolve/break-b", a="right", b="wrong", c="right")
    proc = run_cli("gate", "evolve/break-b", cwd=g.path)
    assert proc.returncode == 100, proc.stderr
    assert proc.stdout.startswith("gate: REJECT")
    assert proc.stdout.index("Regressions:") < proc.stdout.index("Cases:")
    assert "b: baseline 1/1 pass, candidate 0/1 pass" in proc.stdout
    assert read_gate_report(g.repo, commit)["decision"] == "reject"


def test_markdown_format_and_output_file(tmp_path):
    g = make(tmp_path)
    g.answers_branch("evolve/x", a="right", b="wrong", c="wrong")
    out = tmp_path / "report.json"
    proc = run_cli("gate", "evolve/x", "--format", "markdown", "--output", out, cwd=g.path)
    assert proc.returncode == 100
    assert proc.stdout.startswith("### Gate: ❌ rejected")
    assert "| `b` | **regression** | 1/1 pass | 0/1 pass |" in proc.stdout
    flips = proc.stdout.index("#### Flips")
    assert flips < proc.stdout.index("| 🔴 regression | `b` | ✅ 1/1 pass | ❌ 0/1 pass |") \
        < proc.stdout.index("| ⚪ still failing | `c` |") < proc.stdout.index("#### All cases")
    assert "<tr><td><pre><del>right</del></pre></td><td><pre><ins>wrong</ins></pre></td></tr>" in proc.stdout
    assert json.loads(out.read_text())["regressions"] == ["b"]


def test_baseline_runs_once_and_an_unchanged_candidate_runs_nothing(tmp_path):
    g = make(tmp_path)
    one = g.answers_branch("evolve/one", a="right", b="right", c="right")
    gate(g.repo, one)
    assert g.runs() == 6  # 3 cases on main + 3 on the candidate
    two = g.answers_branch("evolve/two", a="right", b="wrong", c="right")
    report = gate(g.repo, two)
    assert g.runs() == 9  # main's results were reused: only the new candidate ran
    assert report.timings == {**report.timings, "runs_started": 3, "runs_cached": 3}
    again = gate(g.repo, one)
    assert g.runs() == 9 and again.timings["runs_started"] == 0
    assert all(c["candidate"]["cached"] and c["baseline"]["cached"] for c in again.cases)
    assert again.decision == "accept"
    gate(g.repo, one, use_cache=False)
    assert g.runs() == 15


def test_an_edited_suite_on_a_new_main_runs_again(tmp_path):
    g = make(tmp_path)
    one = g.answers_branch("evolve/one", a="right", b="right", c="right")
    gate(g.repo, one)
    before = g.runs()
    # the same candidate content, gated against an edited suite: a new main with case c changed
    new_cases = cases_yaml("a", "b") + "- id: c\n  input: {q: c}\n  assert:\n    - {type: contains, value: rig}\n"
    main2 = g.branch("tmp-main", {"evals/suite.yaml": new_cases})
    cand2 = g.branch("evolve/one-rebased",
                     {"memory/facts.jsonl": g.repo.read(g.repo.tree(one), "memory/facts.jsonl").decode()},
                     base=main2)
    report = gate(g.repo, cand2, base=main2)
    assert report.decision == "accept"
    # trees changed (evals/ is part of the tree), so both sides ran again
    assert g.runs() - before == 6


def test_candidate_that_edits_its_exam_is_rejected_without_running(tmp_path):
    g = make(tmp_path)
    g.branch("evolve/cheat", {"evals/suite.yaml": cases_yaml("a", "b")})
    proc = run_cli("gate", "evolve/cheat", "--json", cwd=g.path)
    assert proc.returncode == 100
    data = json.loads(proc.stdout)
    assert data["static"] and "an evolver commit may change only the evolvable layers" in data["static"][0]
    assert "evals/suite.yaml" in data["reasons"][0]
    assert g.runs() == 0


def test_candidate_config_is_never_used_to_run_the_gate(tmp_path):
    g = make(tmp_path)
    g.branch("evolve/own-runner", {"aevolve.yaml": "gate:\n  runner: [\"true\"]\n  policy: {no_regressions: false}\n"})
    report = gate(g.repo, "evolve/own-runner")
    assert report.decision == "reject" and "aevolve.yaml" in report.static[0]
    assert report.policy["no_regressions"] is True


def test_candidate_not_descending_from_main_is_rejected(tmp_path):
    g = make(tmp_path)
    side = g.answers_branch("evolve/old", a="right", b="right", c="right")
    g.repo.update_ref("refs/heads/main", g.branch("newer", {"prompts/x.md": "x\n"}), str(g.repo.resolve("main").id))
    report = gate(g.repo, side)
    assert report.decision == "reject" and "does not descend from the baseline" in report.static[0]


def test_invalid_candidate_state_is_rejected(tmp_path):
    g = make(tmp_path)
    g.branch("evolve/broken", {"memory/facts.jsonl": '{"id": "a", "content": "right"}\n{broken\n'})
    report = gate(g.repo, "evolve/broken")
    assert report.decision == "reject"
    assert "candidate state does not validate: memory/facts.jsonl:2: broken JSON" in report.static[0]


def test_bad_case_file_on_main_gives_file_and_line(tmp_path):
    g = GateRepo(tmp_path, dict(ANSWERS),
                 "- id: a\n  input: {q: a}\n  assert:\n    - {type: equals}\n- id: b\n  input: 1\n")
    g.answers_branch("evolve/x", a="right")
    proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 3
    assert "evals/suite.yaml:5: case 2: 'assert' is required" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_runner_configured_is_a_clear_error(tmp_path):
    g = make(tmp_path)
    main = str(g.repo.resolve("main").id)
    g.repo.update_ref("refs/heads/main", g.branch("noconf", {"aevolve.yaml": "version: 1\n"}), main)
    g.answers_branch("evolve/x", a="right")
    proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 1 and "no runner configured: set gate.runner" in proc.stderr


def test_usage_errors_exit_2(tmp_path):
    g = make(tmp_path)
    assert run_cli("gate", "--shard", "3/2", cwd=g.path).returncode == 2
    assert run_cli("gate", "a", "b", cwd=g.path).returncode == 2
    assert run_cli("gate", "--collect", cwd=g.path).returncode == 2


def test_gate_then_promote_moves_main(tmp_path):
    g = make(tmp_path)
    commit = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    proc = run_cli("gate", "evolve/fix-c", "--promote", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    assert "promoted: main" in proc.stdout
    assert git(g.path, "rev-parse", "main") == commit


def test_rejected_gate_does_not_promote(tmp_path):
    g = make(tmp_path)
    main = git(g.path, "rev-parse", "main")
    g.answers_branch("evolve/break", a="wrong", b="right", c="right")
    proc = run_cli("gate", "evolve/break", "--promote", cwd=g.path)
    assert proc.returncode == 100 and git(g.path, "rev-parse", "main") == main


# -- the report keeps the evidence ----------------------------------------------------------


def test_report_keeps_outputs_and_assertion_results_only_for_cases_that_are_not_pass_pass(tmp_path):
    g = make(tmp_path)
    commit = g.answers_branch("evolve/x", a="right", b="wrong", c="wrong")
    data = gate(g.repo, commit).to_dict()
    assert schemas.errors("gate-report", data) == []
    by_id = {c["id"]: c for c in data["cases"]}
    assert "outputs" not in by_id["a"]["baseline"] and "outputs" not in by_id["a"]["candidate"]
    [before], [after] = by_id["b"]["baseline"]["outputs"], by_id["b"]["candidate"]["outputs"]
    assert before["output"] == "right" and before["passed"] is True
    assert after["output"] == "wrong" and after["passed"] is False
    assert after["asserts"] == [{"type": "equals", "passed": False,
                                 "reason": "equals: output 'wrong' does not equal 'right'"}]
    assert after["latency_ms"] > 0 and by_id["b"]["candidate"]["latency_ms"] > 0
    assert by_id["c"]["candidate"]["outputs"][0]["output"] == "wrong"  # still failing: kept too
    noted = read_gate_report(g.repo, commit)
    assert noted is not None and noted["cases"][1]["candidate"]["outputs"] == by_id["b"]["candidate"]["outputs"]


def test_report_summary_counts_flips_and_gives_tag_rates_latency_and_cost(tmp_path):
    g = GateRepo(tmp_path, {"a": "COST:0.5", "b": "right", "c": "wrong"},
                 cases_yaml("a", "b", "c", tags={"a": "billing", "b": "billing"}))
    commit = g.answers_branch("evolve/x", a="COST:0.25", b="wrong", c="right")
    summary = gate(g.repo, commit).summary
    assert summary["flips"] == {"pass_pass": 1, "pass_fail": 1, "fail_pass": 1, "fail_fail": 0, "new": 0, "errors": 0}
    assert summary["tags"] == {"billing": {"cases": 2, "baseline": 1.0, "candidate": 0.5}}
    assert summary["cost"]["baseline"] == {"median": 0.5, "p95": 0.5, "cases": 1, "total": 0.5}
    assert summary["cost"]["candidate"]["total"] == 0.25
    for side in ("baseline", "candidate"):
        latency = summary["latency_ms"][side]
        assert latency["cases"] == 3 and 0 < latency["median"] <= latency["p95"]


def test_report_output_is_cut_at_report_output_bytes(tmp_path):
    g = make(tmp_path)
    config = (g.path / "aevolve.yaml").read_text().replace("gate:\n", "gate:\n  report_output_bytes: 10\n")
    (g.path / "aevolve.yaml").write_text(config)
    git(g.path, "commit", "-qam", "keep 10 bytes of each output")
    commit = g.answers_branch("evolve/x", a="right", b="é" * 30, c="wrong")
    data = gate(g.repo, commit).to_dict()
    [run] = next(c for c in data["cases"] if c["id"] == "b")["candidate"]["outputs"]
    assert run["output"] == "é" * 5 and run["output_bytes"] == 60  # a character cut in two is dropped
    assert schemas.errors("gate-report", data) == []


def test_report_signature_payload_covers_the_kept_outputs(tmp_path):
    from aevolve._trust.verdicts import verdict_payload

    g = make(tmp_path)
    data = gate(g.repo, g.answers_branch("evolve/x", a="right", b="wrong", c="wrong")).to_dict()
    forged = json.loads(json.dumps(data))
    next(c for c in forged["cases"] if c["id"] == "b")["candidate"]["outputs"][0]["output"] = "right"
    assert verdict_payload(forged) != verdict_payload(data)
