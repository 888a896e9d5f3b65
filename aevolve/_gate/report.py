"""The gate report: one dataclass, its JSON form (schema gate-report) and renderings."""

from __future__ import annotations

from dataclasses import dataclass, field

VERDICT_ORDER = {"regression": 0, "error": 1, "fail": 2, "new-fail": 3, "improvement": 4, "new-pass": 5, "pass": 6}


@dataclass
class GateReport:
    candidate: str
    baseline: str | None
    decision: str  # accept | reject | partial
    reasons: list[str] = field(default_factory=list)
    candidate_tree: str | None = None
    baseline_tree: str | None = None
    cases: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    static: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    policy: dict = field(default_factory=dict)
    suite: dict = field(default_factory=dict)
    shard: dict | None = None
    timings: dict = field(default_factory=dict)
    created: str = ""
    version: int = 1
    exam_digest: str | None = None  # the exam at the baseline the verdict was made under
    change: str | None = None  # evolver | manual | maintainer (see aevolve._trust.exam)
    exam_change: dict | None = None  # a maintainer change of the exam: what the new exam judges differently
    approvals: list[dict] | None = None  # the approvals a maintainer change was accepted with
    notices: list[str] = field(default_factory=list)  # things the gate repaired or noticed on the way
    signature: dict | None = None  # the gater's SSH signature over the verdict (aevolve._trust.verdicts)

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    @property
    def regressions(self) -> list[str]:
        return [c["id"] for c in self.cases if c.get("regressed")]

    @property
    def improvements(self) -> list[str]:
        return [c["id"] for c in self.cases if c.get("verdict") == "improvement"]

    def to_dict(self) -> dict:
        out = {
            "version": self.version, "candidate": self.candidate, "candidate_tree": self.candidate_tree,
            "baseline": self.baseline, "baseline_tree": self.baseline_tree, "decision": self.decision,
            "reasons": list(self.reasons), "regressions": self.regressions, "improvements": self.improvements,
            "static": list(self.static), "cases": self.cases, "errors": self.errors, "summary": self.summary,
            "policy": self.policy, "suite": self.suite, "shard": self.shard, "timings": self.timings,
            "exam_digest": self.exam_digest, "change": self.change, "notices": list(self.notices),
        }
        for key in ("exam_change", "approvals", "signature"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.candidate_tree is None:
            out.pop("candidate_tree")
        if self.created:
            out["created"] = self.created
        return out

    @classmethod
    def from_dict(cls, data: dict) -> GateReport:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    # -- renderings ------------------------------------------------------------------
    def render(self, format: str = "text") -> str:
        return self.render_markdown() if format == "markdown" else self.render_text()

    def _sorted_cases(self) -> list[dict]:
        return sorted(self.cases, key=lambda c: (VERDICT_ORDER.get(c.get("verdict", ""), 9), c["id"]))

    def render_text(self) -> str:
        baseline = (self.baseline or "-")[:12]
        lines = [f"gate: {self.decision.upper()}  candidate {self.candidate[:12]}  baseline {baseline}"
                 + (f"  shard {self.shard['index']}/{self.shard['count']}" if self.shard else "")]
        lines += [f"  - {r}" for r in self.reasons]
        lines += [f"  * {n}" for n in self.notices]
        if self.exam_change:
            lines += ["", "Exam change (old and new exam, both on the baseline's state):"]
            lines += [f"  {line}" for line in exam_change_lines(self.exam_change)]
        regs = [c for c in self._sorted_cases() if c.get("regressed")]
        if regs:
            lines.append("")
            lines.append("Regressions:")
            for c in regs:
                lines.append(f"  {c['id']}: baseline {_counts(c.get('baseline'))}, candidate {_counts(c['candidate'])}"
                             + (f" (p={c['p_value']:.4f})" if "p_value" in c else ""))
                lines += [f"      {f}" for f in c["candidate"].get("failures", [])[:3]]
        if self.errors:
            lines.append("")
            lines.append("Runner errors (not assertion failures):")
            for e in self.errors[:20]:
                tail = (e.get("stderr") or "").strip().splitlines()[-1:] if e.get("stderr") else []
                cut = f" [{' and '.join(e['truncated'])} cut]" if e.get("truncated") else ""
                lines.append(f"  {e['case']} [{e['side']} run {e['repeat'] + 1}]: {e['error']}{cut}"
                             + (f" | stderr: {tail[0][:160]}" if tail else ""))
        others = [c for c in self._sorted_cases() if not c.get("regressed")]
        if others:
            lines.append("")
            lines.append("Cases:")
            for c in others:
                lines.append(f"  {c.get('verdict', '?'):<12} {c['id']}: baseline {_counts(c.get('baseline'))}, "
                             f"candidate {_counts(c['candidate'])}")
                if c.get("verdict") in ("fail", "new-fail", "error"):
                    lines += [f"      {f}" for f in c["candidate"].get("failures", [])[:2]]
        t = self.timings
        if t:
            lines.append("")
            lines.append(f"{t.get('runs_started', 0)} run(s) started, {t.get('runs_cached', 0)} from cache, "
                         f"{t.get('total_s', 0):.2f}s")
        return "\n".join(lines)

    def render_markdown(self) -> str:
        mark = {"accept": "✅ accepted", "reject": "❌ rejected", "partial": "🧩 partial (shard)",
                "error": "⚠️ error (could not judge)"}[self.decision]
        out = [f"### Gate: {mark}", "",
               f"Candidate `{self.candidate[:12]}` against baseline `{(self.baseline or '-')[:12]}`"
               + (f", shard {self.shard['index']}/{self.shard['count']}" if self.shard else "") + ".", ""]
        out += [f"- {r}" for r in self.reasons]
        out += [f"- note: {n}" for n in self.notices]
        if self.exam_change:
            out += ["", "**Exam change** (old and new exam, both on the baseline's state):", ""]
            out += [f"- {line}" for line in exam_change_lines(self.exam_change)]
        if self.cases:
            out += ["", "| case | verdict | baseline | candidate |", "|---|---|---|---|"]
            for c in self._sorted_cases():
                verdict = f"**{c.get('verdict')}**" if c.get("regressed") else c.get("verdict", "")
                out.append(f"| `{c['id']}` | {verdict} | {_counts(c.get('baseline'))} | {_counts(c['candidate'])} |")
        failing = [c for c in self._sorted_cases() if c["candidate"].get("failures") and c.get("verdict") != "pass"]
        if failing:
            out += ["", "<details><summary>Failure reasons</summary>", ""]
            for c in failing:
                out.append(f"- `{c['id']}`: " + "; ".join(c["candidate"]["failures"][:3]))
            out += ["", "</details>"]
        if self.errors:
            out += ["", f"Runner errors: {len(self.errors)} (reported apart from assertion failures)."]
        return "\n".join(out) + "\n"


def exam_change_lines(change: dict) -> list[str]:
    """What a new exam adds, removes and judges differently, one line each."""
    def state(passes: bool | None) -> str:
        return "passes" if passes else ("fails" if passes is not None else "not run")

    lines = [f"+ {c['id']}: new case, {state(c.get('passes'))} on the baseline" for c in change.get("added", [])]
    lines += [f"- {c['id']}: removed (it {state(c.get('passed'))} under the old exam)"
              for c in change.get("removed", [])]
    for c in change.get("changed", []):
        how = "case edited" if c.get("edited") else "case unchanged"
        lines.append(f"~ {c['id']}: {state(c.get('old'))} under the old exam, "
                     f"{state(c.get('new'))} under the new ({how})")
    lines.append(f"{change.get('unchanged', 0)} case(s) judged the same by both exams")
    return lines


def _counts(side: dict | None) -> str:
    if not side:
        return "-"
    text = f"{side.get('passes', 0)}/{side.get('runs', 0)} pass"
    if side.get("errors"):
        text += f", {side['errors']} error"
    return text
