"""`aevolve demo`: the whole loop, offline, in seconds, on a sample agent.

observe → propose (rules) → gate → promote, then a second proposal built from
a wrong piece of feedback that the gate rejects because it breaks a passing
case. Everything runs through the public Python API, as a user's script would.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._demo import sample

AGENT_SOURCE = Path(__file__).with_name("agent.py")


@dataclass
class DemoResult:
    path: Path
    initial_main: str
    accepted_branch: str
    accepted_report: dict
    promoted_main: str
    rejected_branch: str
    rejected_report: dict
    final_main: str
    story: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "story"}


def _config() -> str:
    from aevolve._config import TEMPLATE

    runner = f'runner: ["{sys.executable}", "agent/run_case.py"]'
    text = TEMPLATE.replace("runner: null                 ", runner, 1)
    return text.replace("  timeout: 60                   # seconds per case run",
                        "  timeout: 20                   # seconds per case run", 1)


def build_sample(path: Path) -> None:
    """Write the sample agent's state, eval suite and code into `path`."""
    files = {
        "aevolve.yaml": _config(),
        "manifest.yaml": sample.MANIFEST,
        "prompts/system.md": sample.SYSTEM_PROMPT,
        "skills/answer-from-memory/SKILL.md": sample.SKILL,
        "memory/faq.jsonl": sample.jsonl(sample.FAQ),
        "evals/support.yaml": sample.CASES,
        "agent/run_case.py": AGENT_SOURCE.read_text(),
    }
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _target(path: str | Path | None) -> Path:
    from aevolve._errors import UsageError

    if path is None:
        return Path(tempfile.mkdtemp(prefix="aevolve-demo-"))
    target = Path(path).resolve()
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} is not empty; give a new or empty folder for the demo")
    target.mkdir(parents=True, exist_ok=True)
    return target


def _observe(repo, records: list[dict], name: str) -> int:
    from aevolve._state.observations import observe

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / name
        source.write_text(sample.jsonl(records))
        return observe(repo, [source]).added


def _case_table(report: dict) -> list[str]:
    def outcome(side):
        if not side:
            return "-"
        if side.get("errors"):
            return "ERROR"
        return "pass" if side.get("passes", 0) == side.get("runs", 0) and side.get("runs") else "FAIL"

    lines = [f"     {'case':<22} {'main':<6} {'candidate':<10}"]
    for case in report.get("cases", []):
        verdict = case.get("verdict", "")
        note = {"regression": "REGRESSION", "improvement": "improvement"}.get(verdict, "")
        row = f"     {case['id']:<22} {outcome(case.get('baseline')):<6} {outcome(case.get('candidate')):<10} {note}"
        lines.append(row.rstrip())
    return lines


def _rate(report: dict, side: str) -> str:
    cases = report.get("cases", [])
    passed = sum(1 for c in cases if (c.get(side) or {}).get("runs") and c[side].get("passes") == c[side].get("runs"))
    return f"{passed}/{len(cases)}"


def run_demo(path: str | Path | None = None, echo: Callable[[str], None] = print) -> DemoResult:
    """Build the sample repository at `path` (default: a new temp folder) and run the loop."""
    from aevolve._git.repo import MAIN, Repo
    from aevolve._state.init import init_repo

    story: list[str] = []

    def say(line: str = "") -> None:
        story.append(line)
        echo(line)

    root = _target(path)
    build_sample(root)
    init_repo(root)
    repo = Repo.open(root)
    initial = repo.resolve_branch(MAIN)
    say(f"aevolve demo: the whole loop, offline, in {root}")
    say()
    say("1. A state repository for the sample agent 'acme-support-agent'")
    say("   prompts/system.md, skills/answer-from-memory, memory/faq.jsonl (3 facts),")
    say("   evals/support.yaml (6 regression cases), agent/run_case.py (answers from memory)")
    say(f"   main is {initial[:12]}")
    accepted, report, promoted_main = _accepted_change(repo, say)
    rejected, rejected_report = _rejected_change(repo, say)
    final = repo.resolve_branch(MAIN)
    say(f"   main stays at {final[:12]}: only gated commits reach it.")

    say()
    say("Explore it yourself:")
    say(f"   cd {root}")
    say("   aevolve log --all                # history of main, and the rejected proposal with its reasons")
    say(f"   aevolve review {rejected}   # the pull-request body a reviewer would read")
    say("   git log -1 main                  # the rationale trailers and the one-line gate verdict")
    return DemoResult(
        path=root, initial_main=initial, accepted_branch=accepted, accepted_report=report,
        promoted_main=promoted_main, rejected_branch=rejected, rejected_report=rejected_report,
        final_main=final, story=story,
    )


def _accepted_change(repo, say: Callable[..., None]) -> tuple[str, dict, str]:
    """Steps 2-5: week 1's observations become a proposal the gate accepts and main takes.
    (branch, gate report, main after)."""
    from aevolve._gate.run import gate
    from aevolve._git.repo import MAIN
    from aevolve._promote.promote import promote
    from aevolve._propose.run import propose
    from aevolve._review.diff import semantic_diff

    say()
    added = _observe(repo, sample.OBSERVATIONS_WEEK1, "week1.jsonl")
    failed = sum(1 for o in sample.OBSERVATIONS_WEEK1 if not o["feedback"]["success"])
    say(f"2. Observe: {added} observations from week 1 in production ({failed} failed) -> refs/aevolve/observations")

    say()
    first = propose(repo, evolver="rules", observation_ids=[o["id"] for o in sample.OBSERVATIONS_WEEK1])
    branch, commit = _proposed(first)
    _tell_proposal(say, first, semantic_diff(repo, MAIN, commit))

    say()
    report = gate(repo, branch).to_dict()
    _tell_gate(say, branch, report)

    say()
    promoted = promote(repo, branch)
    say(f"5. Promote: main {promoted.old[:12]} -> {promoted.new[:12]} "
        "(fast-forward; the gate report rides along as a git note)")
    return branch, report, promoted.new


def _rejected_change(repo, say: Callable[..., None]) -> tuple[str, dict]:
    """Step 6: a wrong rule from week 2's feedback, which the gate rejects. (branch, gate report)."""
    from aevolve._gate.run import gate
    from aevolve._git.repo import MAIN
    from aevolve._propose.run import propose
    from aevolve._review.diff import semantic_diff

    say()
    _observe(repo, sample.OBSERVATIONS_WEEK2, "week2.jsonl")
    wrong = sample.OBSERVATIONS_WEEK2[0]
    say(f"6. Week 2: a reviewer typed a wrong rule into the feedback "
        f"({wrong['id']}: \"{wrong['feedback']['expected']}\")")
    second = propose(repo, evolver="rules", observation_ids=[wrong["id"]])
    branch, commit = _proposed(second)
    _tell_proposal(say, second, semantic_diff(repo, MAIN, commit), step=None)
    report = gate(repo, branch).to_dict()
    _tell_gate(say, branch, report, step=None)
    return branch, report


def _proposed(result) -> tuple[str, str]:
    """The branch and commit of a proposal; the sample's observations always give the evolver work."""
    from aevolve._errors import EvolverFailed

    if result.branch is None or result.commit is None:
        raise EvolverFailed(f"the demo's proposal made no commit: {result.reason or 'nothing to do'}")
    return result.branch, result.commit


def _tell_proposal(say, result, diff, step: int | None = 3) -> None:
    head = f"{step}. Propose (rules evolver)" if step else "   Propose (rules evolver)"
    say(f"{head} -> {result.branch}")
    rationale = result.rationale
    say(f"   {rationale.subject}")
    for name, text in (("Diagnosis", rationale.diagnosis), ("Change", rationale.change),
                       ("Expected effect", rationale.expected_effect)):
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        say(f"   {name}: {first_line}")
    for line in diff.render("text", stat=True).splitlines():
        say(f"   {line}")


def _tell_gate(say, branch: str, report: dict, step: int | None = 4) -> None:
    head = f"{step}. Gate" if step else "   Gate"
    say(f"{head} {branch} against main ({_rate(report, 'baseline')} -> {_rate(report, 'candidate')} cases pass)")
    for line in _case_table(report):
        say(line)
    verdict = "ACCEPT" if report["decision"] == "accept" else "REJECT"
    say(f"   decision: {verdict}: " + "; ".join(report.get("reasons", [])))
