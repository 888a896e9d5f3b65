"""Held-out cases (gate.holdout): run on both sides, reported apart as counts, blocking on regression."""

from __future__ import annotations

import pytest

from aevolve._gate.run import gate
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.run import commit_proposal

from conftest import SAMPLE_STATE, git, make_state_repo, write

AGENT = """\
import json, os, pathlib, sys
state = pathlib.Path(os.environ["AEVOLVE_STATE_DIR"])
facts = {}
for line in (state / "memory" / "facts.jsonl").read_text().splitlines():
    if line.strip():
        record = json.loads(line)
        facts[record["id"]] = record["content"]
case = json.loads(sys.stdin.read() or "{}")
print(json.dumps({"output": facts.get(case.get("fact"), "unknown")}))
"""

CONFIG = """\
gate:
  runner: ["{python}", "agent.py"]
  holdout: "evals/holdout/**"
  timeout: 20
"""

GATE_CASES = """\
- id: colour
  input: {fact: colour}
  assert: [{type: equals, value: blue}]
"""

HELD_CASES = """\
- id: size
  input: {fact: size}
  assert: [{type: equals, value: large}]
- id: shape
  input: {fact: shape}
  assert: [{type: equals, value: round}]
"""


@pytest.fixture
def held(tmp_path) -> Repo:
    import sys

    state = {k: v for k, v in SAMPLE_STATE.items() if not k.startswith("evals/")}
    root = make_state_repo(tmp_path / "repo", {
        **state,
        "aevolve.yaml": CONFIG.replace("{python}", sys.executable),
        "agent.py": AGENT,
        "memory/facts.jsonl": '{"id": "colour", "content": "red"}\n{"id": "size", "content": "large"}\n',
        "evals/gate.yaml": GATE_CASES,
        "evals/holdout/held.yaml": HELD_CASES,
    })
    return Repo.open(root)


def _candidate(repo: Repo, facts: str) -> str:
    proposal = Proposal(title="fix facts", diagnosis="d", change="c", expected_effect="e",
                        edits=[Edit("write", "memory/facts.jsonl", content=facts)], evidence=["obs-1"])
    result = commit_proposal(repo, "main", proposal, "test")
    assert result.commit
    return result.commit


def test_held_out_cases_are_reported_apart_from_the_gate_cases(held):
    report = gate(held, _candidate(held, '{"id": "colour", "content": "blue"}\n{"id": "size", "content": "large"}\n'
                                         '{"id": "shape", "content": "round"}\n')).to_dict()
    assert [c["id"] for c in report["cases"]] == ["colour"]
    hold = report["summary"]["holdout"]
    assert hold["cases"] == 2 and hold["baseline_pass_rate"] == 0.5 and hold["candidate_pass_rate"] == 1.0
    assert report["decision"] == "accept"


def test_a_held_out_regression_blocks_promotion(held):
    report = gate(held, _candidate(held, '{"id": "colour", "content": "blue"}\n')).to_dict()
    assert report["decision"] == "reject" and report["improvements"] == ["colour"]
    assert report["summary"]["holdout"]["regressions"] == 1
    assert any("held-out case(s) pass on the baseline but fail" in r for r in report["reasons"])


def test_the_report_never_names_a_held_out_case(held):
    report = gate(held, _candidate(held, '{"id": "colour", "content": "blue"}\n')).to_dict()
    text = repr(report)
    assert "size" not in text.replace("max_output_bytes", "") and "shape" not in text


def test_holdout_no_regressions_false_only_reports_the_regression(held):
    root = held.workdir
    config = (root / "aevolve.yaml").read_text() + "  policy:\n    holdout_no_regressions: false\n"
    assert config.endswith("  timeout: 20\n  policy:\n    holdout_no_regressions: false\n")
    write(root, {"aevolve.yaml": config})
    git(root, "commit", "-qam", "policy: held-out regressions do not block")
    report = gate(held, _candidate(held, '{"id": "colour", "content": "blue"}\n')).to_dict()
    assert report["decision"] == "accept"
    assert report["summary"]["holdout"]["regressions"] == 1
    assert any(r.startswith("held-out cases: 2") for r in report["reasons"])


def test_without_gate_holdout_every_case_is_a_gate_case(held):
    root = held.workdir
    write(root, {"aevolve.yaml": (root / "aevolve.yaml").read_text().replace('  holdout: "evals/holdout/**"\n', "")})
    git(root, "commit", "-qam", "no held-out cases")
    report = gate(held, _candidate(held, '{"id": "colour", "content": "blue"}\n')).to_dict()
    assert sorted(c["id"] for c in report["cases"]) == ["colour", "shape", "size"]
    assert "holdout" not in report["summary"]


FIX_ALL = """\
import json, os
facts = [{"id": "colour", "content": "blue"}, {"id": "size", "content": "large"}, {"id": "shape", "content": "round"}]
text = "".join(json.dumps(f) + "\\n" for f in facts)
print(json.dumps({"title": "fix the facts", "diagnosis": "wrong colour", "change": "rewrite facts",
                  "expected_effect": "colour passes", "evidence": ["obs-1"],
                  "edits": [{"op": "write", "path": "memory/facts.jsonl", "content": text}]}))
"""


def test_the_loop_reports_gate_and_held_out_gain_side_by_side(held, tmp_path):
    import json
    import sys

    from aevolve._evolve import evolve
    from aevolve._state.observations import observe

    script = tmp_path / "fix_all.py"
    script.write_text(FIX_ALL)
    source = tmp_path / "obs.jsonl"
    obs = {"id": "obs-1", "task": {"fact": "colour"}, "output": "red",
           "feedback": {"success": False, "expected": "blue"}, "ts": "2026-11-20T10:00:00Z"}
    source.write_text(json.dumps(obs) + "\n")
    observe(held, [source])
    result = evolve(held, cycles=1, candidates=1, evolvers=["command"],
                    evolver_options={"command": {"command": [sys.executable, str(script)]}})
    (cycle,) = result.cycles
    assert cycle.promoted and cycle.pass_rate == 1.0 and cycle.gain == 1.0
    assert cycle.holdout_pass_rate == 1.0 and cycle.holdout_gain == 0.5
    assert cycle.candidates[0]["holdout"]["cases"] == 2


def test_a_command_evolver_never_sees_the_held_out_cases(held, tmp_path):
    import json
    import sys

    from aevolve._propose.run import propose

    script = tmp_path / "evolver.py"
    script.write_text(
        "import json, os, pathlib\n"
        "state = pathlib.Path(os.environ['AEVOLVE_STATE_DIR'])\n"
        "seen = sorted(str(p.relative_to(state)) for p in state.rglob('*.yaml') if 'evals' in p.parts)\n"
        "print(json.dumps({'title': 'list', 'diagnosis': 'd', 'change': 'c', 'expected_effect': 'e',\n"
        "  'edits': [{'op': 'write', 'path': 'prompts/seen.md', 'content': '\\n'.join(seen) + '\\n'}]}))\n")
    result = propose(held, evolver="command", evolver_options={"command": json.dumps([sys.executable, str(script)])})
    assert git(held.workdir, "show", f"{result.branch}:prompts/seen.md") == "evals/gate.yaml"
