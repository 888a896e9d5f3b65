"""The exam and the agent's code change through approval, never through an evolver,
and a signed verdict can be checked by someone who does not trust the pusher."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_signing import BOTH, allowed_signers, make_key, public

from aevolve._gate.run import gate
from aevolve._git.notes import read_gate_report
from aevolve._git.repo import MAIN
from aevolve._promote.promote import promote
from aevolve._trust.approvals import approve
from aevolve.cli import cli

from conftest import admissible, git
from gate_support import GateRepo, cases_yaml

# `late-fee` expected "right"; the fee changed, so the team now expects "$12".
NEW_EXAM = (
    "- id: late-fee\n  input: {q: late-fee}\n  assert:\n    - {type: equals, value: '$12'}\n"
    "- id: refund\n  input: {q: refund}\n  assert:\n    - {type: equals, value: right}\n"
    "- id: shipping\n  input: {q: shipping}\n  assert:\n    - {type: equals, value: right}\n"
)


@pytest.fixture
def g(tmp_path) -> GateRepo:
    return GateRepo(tmp_path, {"late-fee": "right", "refund": "right", "warranty": "right"},
                    cases_yaml("late-fee", "refund", "warranty"))


def use_key(g: GateRepo, key) -> None:
    git(g.path, "config", "aevolve.signingKey", str(key))
    git(g.path, "config", "user.email", f"{key.name}@example.com")


def run(g: GateRepo, *args: str):
    return CliRunner().invoke(cli, ["-C", str(g.path), *args], catch_exceptions=False, standalone_mode=False)


def test_an_exam_change_without_approval_is_rejected_and_shows_what_the_new_exam_judges(g):
    change = g.branch("exam/late-fee-12", {"evals/suite.yaml": NEW_EXAM}, evolver=False)
    report = gate(g.repo, change)
    assert report.decision == "reject" and report.change == "maintainer"
    assert any("0 of 1 required approval(s)" in r for r in report.reasons)
    assert any(f"aevolve approve {change[:12]}" in r for r in report.reasons)
    diff = report.exam_change
    assert diff["changed"] == [{"id": "late-fee", "old": True, "new": False, "edited": True}]
    assert diff["added"] == [{"id": "shipping", "passes": False}]
    assert diff["removed"] == [{"id": "warranty", "passed": True}]
    assert diff["unchanged"] == 1  # refund: nothing else moved
    text = report.render_text()
    assert "~ late-fee: passes under the old exam, fails under the new (case edited)" in text
    assert report.exam_digest.startswith("sha256:")


def test_an_approved_exam_change_is_accepted_and_promoted(g, tmp_path):
    use_key(g, make_key(tmp_path / "keys", "maintainer"))
    change = g.branch("exam/late-fee-12", {"evals/suite.yaml": NEW_EXAM}, evolver=False)
    approve(g.repo, change, "the fee is $12 since November")
    report = gate(g.repo, change)
    assert report.decision == "accept", report.reasons
    assert [a["signer"].split()[0] for a in report.approvals] == ["maintainer@example.com"]
    assert any("any valid signature counted" in r for r in report.reasons)  # no allowed signers list here
    result = promote(g.repo, change, regate=False)
    assert result.new == change and admissible(g.repo, change)


def test_two_required_approvals_are_not_met_by_one(g, tmp_path):
    main = str(g.repo.resolve("main").id)
    stricter = g.branch("policy", {"aevolve.yaml": g.repo.read(g.repo.resolve("main").tree, "aevolve.yaml").decode()
                                   + "  exam_approvals: 2\n"}, evolver=False)
    g.repo.update_ref(MAIN, stricter, main)  # the maintainers' own decision, made outside the gate
    use_key(g, make_key(tmp_path / "keys", "alice"))
    change = g.branch("exam/x", {"evals/suite.yaml": NEW_EXAM}, evolver=False)
    approve(g.repo, change)
    report = gate(g.repo, change)
    assert report.decision == "reject" and any("1 of 2 required approval(s)" in r for r in report.reasons)


def test_an_approval_by_a_key_not_in_the_allowed_signers_does_not_count(g, tmp_path):
    keys = tmp_path / "keys"
    trusted, stranger = make_key(keys, "trusted"), make_key(keys, "stranger")
    listed = allowed_signers(tmp_path / "allowed", f"trusted@example.com {BOTH} {public(trusted)}")
    git(g.path, "config", "aevolve.allowedSigners", str(listed))
    use_key(g, stranger)
    change = g.branch("exam/x", {"evals/suite.yaml": NEW_EXAM}, evolver=False)
    approve(g.repo, change)
    report = gate(g.repo, change)
    assert report.decision == "reject"
    assert any("approval not counted" in r for r in report.reasons)


def test_a_maintainer_change_of_the_agent_code_needs_approval_but_runs_the_exam(g):
    change = g.branch("agent-fix", {"agent/helper.py": "X = 1\n"}, evolver=False)
    report = gate(g.repo, change)
    assert report.change == "maintainer" and report.exam_change is None
    assert report.decision == "reject" and len(report.cases) == 3 and report.regressions == []


def test_an_evolver_commit_can_never_change_the_exam_even_with_approval(g, tmp_path):
    use_key(g, make_key(tmp_path / "keys", "maintainer"))
    cheat = g.branch("evolve/cheat", {"evals/suite.yaml": NEW_EXAM})
    approve(g.repo, cheat)
    report = gate(g.repo, cheat)
    assert report.decision == "reject" and "evolvable layers" in report.static[0]
    assert report.timings["runs_started"] == 0


def test_a_person_editing_the_evolvable_layers_needs_no_approval(g):
    change = g.branch("hand-edit", {"prompts/system.md": "Be brief.\n"}, evolver=False)
    report = gate(g.repo, change)
    assert report.change == "manual" and report.decision == "accept" and report.approvals is None


# -- aevolve verify ----------------------------------------------------------------------


def test_verify_names_the_signer_of_a_valid_signed_verdict(g, tmp_path):
    key = make_key(tmp_path / "keys", "ci")
    use_key(g, key)
    cand = g.answers_branch("evolve/better", **{"late-fee": "right", "refund": "right", "warranty": "right"},
                            extra="x")
    gate(g.repo, cand)
    result = run(g, "verify", cand)
    assert result.return_value == 0
    assert f"{cand[:12]}: valid verdict, signed by ci@example.com (SHA256:" in result.output


def test_verify_refuses_an_unsigned_verdict_unless_allowed(g):
    cand = g.answers_branch("evolve/better", **{"late-fee": "right", "refund": "right", "warranty": "right"},
                            extra="x")
    gate(g.repo, cand)
    assert run(g, "verify", cand).return_value == 1
    assert "not signed" in run(g, "verify", cand).output
    assert run(g, "verify", cand, "--allow-unsigned").return_value == 0


def test_verify_refuses_a_signed_verdict_flipped_after_signing(g, tmp_path):
    use_key(g, make_key(tmp_path / "keys", "ci"))
    cand = g.answers_branch("evolve/worse", **{"late-fee": "wrong", "refund": "right", "warranty": "right"})
    assert gate(g.repo, cand).decision == "reject"
    forged = {**read_gate_report(g.repo, cand), "decision": "accept"}
    g.repo.write_note(cand, json.dumps(forged).encode())
    result = run(g, "verify", cand, "--json")
    assert result.return_value == 1
    problems = json.loads(result.output)["problems"]
    assert any("signature does not hold" in p for p in problems)


def test_verify_by_a_key_not_in_the_allowed_signers_fails(g, tmp_path):
    keys = tmp_path / "keys"
    ci, laptop = make_key(keys, "ci"), make_key(keys, "laptop")
    git(g.path, "config", "aevolve.allowedSigners",
        str(allowed_signers(tmp_path / "allowed", f"ci@example.com {BOTH} {public(ci)}")))
    use_key(g, laptop)
    cand = g.answers_branch("evolve/better", **{"late-fee": "right", "refund": "right", "warranty": "right"},
                            extra="x")
    gate(g.repo, cand)
    result = run(g, "verify", cand)
    assert result.return_value == 1 and "signature does not hold" in result.output


def test_an_unsigned_verdict_is_signed_when_gated_again_where_a_key_is_configured(g, tmp_path):
    cand = g.answers_branch("evolve/better", **{"late-fee": "right", "refund": "right", "warranty": "right"},
                            extra="x")
    gate(g.repo, cand)  # a laptop without a key
    assert "signature" not in read_gate_report(g.repo, cand)
    use_key(g, make_key(tmp_path / "keys", "ci"))
    gate(g.repo, cand)  # CI re-gates: same verdict, now signed by a key it trusts
    assert read_gate_report(g.repo, cand)["signature"]["signer"] == "ci@example.com"
    notes = g.repo.ref_target("refs/notes/aevolve")
    gate(g.repo, cand)  # and once signed, an unchanged verdict is not rewritten
    assert g.repo.ref_target("refs/notes/aevolve") == notes
