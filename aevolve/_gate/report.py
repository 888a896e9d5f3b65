"""The gate report: one dataclass, its JSON form (schema gate-report) and renderings."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Callable
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
        parts = [Part(["\n".join(out)])]
        evidence = evidence_units(self.to_dict(), level=4)
        if evidence:
            parts.append(Part(["\n" + evidence[0], *evidence[1:]], "flips' outputs, tag and cost tables",
                              "The note holds them all: `git notes --ref=aevolve show "
                              f"{self.candidate[:12]}`, or `aevolve review`."))
        tail = []
        if self.cases:
            rows = ["| case | verdict | baseline | candidate |", "|---|---|---|---|"]
            for c in self._sorted_cases():
                verdict = f"**{c.get('verdict')}**" if c.get("regressed") else c.get("verdict", "")
                rows.append(f"| `{c['id']}` | {verdict} | {_counts(c.get('baseline'))} | {_counts(c['candidate'])} |")
            tail += ["#### All cases", ""] + (rows if len(rows) <= 27 else
                                              [f"<details><summary>{len(rows) - 2} cases</summary>", "", *rows,
                                               "", "</details>"])
        if self.errors:
            tail += ["", f"Runner errors: {len(self.errors)} (reported apart from assertion failures)."]
        if tail:
            parts.append(Part(["", *tail]))
        return fit(parts) + "\n"


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


WORD_DIFF_TOKENS = 4000  # beyond this many words a side, SequenceMatcher's quadratic worst case is not worth it
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")

Segments = list[tuple[str, bool]]  # (text, changed): the changed words of one side


def word_diff(a: str, b: str) -> tuple[Segments, Segments]:
    """The words of `a` that `b` removed and the words of `b` it added, as segments of each.

    Whitespace is never marked on its own (a changed run of words is marked whole).
    Texts longer than WORD_DIFF_TOKENS words come back unmarked."""
    ta, tb = _WORDS.findall(a), _WORDS.findall(b)
    if "".join(ta) != a or "".join(tb) != b or max(len(ta), len(tb)) > WORD_DIFF_TOKENS:
        return [(a, False)], [(b, False)]
    old: Segments = []
    new: Segments = []
    # autojunk: in long texts a word repeated everywhere (a space, "the") anchors nothing, and
    # without the heuristic repetitive outputs make SequenceMatcher quadratic many times over
    matcher = difflib.SequenceMatcher(None, ta, tb)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        same = op == "equal"
        if i2 > i1:
            _append(old, "".join(ta[i1:i2]), not same)
        if j2 > j1:
            _append(new, "".join(tb[j1:j2]), not same)
    return old, new


def _append(segments: Segments, text: str, changed: bool) -> None:
    if changed and not text.strip():
        changed = False  # a lone space is not a change worth marking
    if changed and len(segments) >= 2 and segments[-2][1] and not segments[-1][0].strip():
        space = segments.pop()[0]  # "of purchase": one marked run, not two around a space
        segments[-1] = (segments[-1][0] + space + text, True)
    elif segments and segments[-1][1] == changed:
        segments[-1] = (segments[-1][0] + text, changed)
    else:
        segments.append((text, changed))



# -- the evidence, in Markdown (gate --format markdown and aevolve review) -----------------

GITHUB_LIMIT = 65_536  # characters in a GitHub comment or pull-request body
OUTPUT_SHOWN = 2000  # characters of an output shown per cell (all that was kept with --full)
REASON_SHOWN = 160
OPEN_FLIPS = 5  # more flips than this: each one's outputs fold into <details>
GROUPS = (("regressions", "🔴", "regression"), ("fixes", "🟢", "fix"), ("still_failing", "⚪", "still failing"))
FLIP_LABELS = (("pass_fail", "P→F"), ("fail_pass", "F→P"), ("fail_fail", "F→F"), ("pass_pass", "P→P"),
               ("new", "new"), ("errors", "errors"))
Link = Callable[[str], str]  # a commit id -> Markdown (a link when the remote is a known host)


def clean_cases(raw) -> list[dict]:
    """The cases of a report as the renderers read them: a note is anyone's input (an older
    aevolve, a hand-edited note), so malformed cases are skipped and sides made readable."""
    out = []
    for case in raw if isinstance(raw, list) else []:
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            continue
        case = dict(case)
        for side in ("baseline", "candidate"):
            value = case.get(side)
            if not isinstance(value, dict):
                case[side] = None if side == "baseline" else {}
                continue
            value = dict(value)
            for key in ("runs", "passes", "errors"):
                n = value.get(key)
                value[key] = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0
            value["passes"] = min(value["passes"], value["runs"])
            case[side] = value
        if not isinstance(case.get("threshold"), (int, float)) or isinstance(case.get("threshold"), bool):
            case["threshold"] = 1.0
        out.append(case)
    return out


def flip_groups(cases: list[dict]) -> dict[str, list[dict]]:
    """Regressions, fixes and still-failing cases (clean_cases' form); pass->pass cases are in none."""
    from aevolve._gate.decision import flip

    out: dict[str, list[dict]] = {name: [] for name, _, _ in GROUPS}
    for case in sorted(cases, key=lambda c: c["id"]):
        kind, verdict = flip(case), case.get("verdict")
        if case.get("regressed") or kind == "pass_fail" or verdict == "regression":
            out["regressions"].append(case)
        elif kind == "fail_pass" or verdict in ("improvement", "new-pass"):
            out["fixes"].append(case)
        elif kind in ("fail_fail", "errors") or verdict in ("fail", "new-fail", "error"):
            out["still_failing"].append(case)
    return out


def _cell(text: str, limit: int = REASON_SHOWN) -> str:
    """One Markdown table cell: one line, pipes escaped, cut at `limit`."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mark(side: dict | None, threshold: float) -> str:
    from aevolve._gate.decision import side_passing

    if not side or not side.get("runs"):
        return "–"
    ok = "✅" if side_passing(side, threshold) else "❌"
    return f"{ok} {_counts(side)}"


def _reason(case: dict, group: str) -> str:
    """The failing assertion's reason: the candidate's, or for a fix what used to fail."""
    side = case.get("baseline") if group == "fixes" else case.get("candidate")
    failures = (side or {}).get("failures")
    return str(failures[0]) if isinstance(failures, list) and failures else ""


def flip_table(cases: list[dict]) -> list[str]:
    groups = flip_groups(cases)
    rows = ["| | case | baseline | candidate | failing assertion |", "|---|---|---|---|---|"]
    for name, icon, label in GROUPS:
        for c in groups[name]:
            rows.append(f"| {icon} {label} | `{_cell(c['id'], 120)}` | {_mark(c.get('baseline'), c['threshold'])} "
                        f"| {_mark(c.get('candidate'), c['threshold'])} | {_cell(_reason(c, name))} |")
    return rows if len(rows) > 2 else []


def flip_counts(summary: dict | None, cases: list[dict]) -> str:
    """"P→F 1 · F→P 2 · ...": the report's own counts, else counted from its cases."""
    from aevolve._gate.decision import FLIPS, flip

    flips = (summary or {}).get("flips")
    if not isinstance(flips, dict):
        flips = dict.fromkeys(FLIPS, 0)
        for c in cases:
            flips[flip(c)] += 1
    return " · ".join(f"{label} {flips.get(key, 0)}" for key, label in FLIP_LABELS
                      if key not in ("new", "errors") or flips.get(key))


def _output(run: dict | None, full: bool) -> tuple[str | None, str]:
    """(the output to show or None when the report kept none, a note on what was cut)."""
    if not isinstance(run, dict) or not isinstance(run.get("output"), str):
        return None, ""
    text, note = run["output"], ""
    if isinstance(run.get("output_bytes"), int):
        note = f"kept {len(text.encode())} of {run['output_bytes']} bytes (gate.report_output_bytes)"
    if not full and len(text) > OUTPUT_SHOWN:
        note = (note + "; " if note else "") + f"{len(text) - OUTPUT_SHOWN} more characters (--full shows them)"
        text = text[:OUTPUT_SHOWN]
    return text, note


def _pre(segments: Segments, tag: str) -> str:
    body = "".join(f"<{tag}>{html.escape(t, quote=False)}</{tag}>" if changed else html.escape(t, quote=False)
                   for t, changed in segments)
    return f"<pre>{body}</pre>"


def _run_head(side: str, run: dict | None) -> str:
    if not isinstance(run, dict):
        return f"{side}: no run kept"
    mark = "✅" if run.get("passed") else "❌"
    rep = run.get("repeat")
    extra = f" run {rep + 1}" if isinstance(rep, int) else ""
    latency = run.get("latency_ms")
    timing = f", {latency:.0f} ms" if isinstance(latency, (int, float)) and not isinstance(latency, bool) else ""
    return f"{side}{extra} {mark}{timing}"


def _failed_asserts(side: str, run: dict | None) -> list[str]:
    if not isinstance(run, dict):
        return []
    out = []
    if isinstance(run.get("error"), str):
        out.append(f"- ⚠️ {side}: runner error: {_cell(run['error'], 300)}")
    for a in run.get("asserts") or []:
        if isinstance(a, dict) and a.get("passed") is False:
            out.append(f"- ❌ {side}: {_cell(a.get('reason', ''), 300)}")
    return out


def side_by_side(case: dict, group: str, full: bool = False) -> str:
    """One flip: baseline and candidate outputs in two columns, changed words marked, then
    the assertions that failed. Reports from before outputs were kept say so."""
    icon, label = next((i, lbl) for name, i, lbl in GROUPS if name == group)
    runs = {side: [r for r in ((case.get(side) or {}).get("outputs") or []) if isinstance(r, dict)]
            for side in ("baseline", "candidate")}
    head = f"{icon} `{_cell(case['id'], 120)}` — {label}"
    if not runs["baseline"] and not runs["candidate"]:
        reason = _reason(case, group)
        return "\n".join([f"**{head}**: no outputs in this report (gated before reports kept them, or "
                          "gate.report_output_bytes is 0)" + (f"; {_cell(reason)}" if reason else ""), ""])
    out = [f"**{head}**", "", "<table>"]
    notes, failed = [], []
    for n in range(max(len(runs["baseline"]), len(runs["candidate"]))):
        pair = [runs[side][n] if n < len(runs[side]) else None for side in ("baseline", "candidate")]
        (a, note_a), (b, note_b) = _output(pair[0], full), _output(pair[1], full)
        old, new = word_diff(a, b) if a is not None and b is not None else ([(a or "", False)], [(b or "", False)])
        out.append(f"<tr><th>{_run_head('baseline', pair[0])}</th><th>{_run_head('candidate', pair[1])}</th></tr>")
        cells = [_pre(old, "del") if a is not None else "<i>output not kept</i>",
                 _pre(new, "ins") if b is not None else "<i>output not kept</i>"]
        out.append(f"<tr><td>{cells[0]}</td><td>{cells[1]}</td></tr>")
        notes += [f"- {side}: {note}" for side, note in (("baseline", note_a), ("candidate", note_b)) if note]
        failed += _failed_asserts("baseline", pair[0]) + _failed_asserts("candidate", pair[1])
    out += ["</table>", ""]
    if failed or notes:
        out += [*dict.fromkeys(failed), *notes, ""]
    return "\n".join(out)


def tag_table(summary: dict | None, cases: list[dict]) -> list[str]:
    from aevolve._gate.decision import tag_rates

    tags = (summary or {}).get("tags")
    if not isinstance(tags, dict) or not all(isinstance(v, dict) for v in tags.values()):
        tags = tag_rates(cases)
    if not tags:
        return []
    rows = ["| tag | cases | baseline | candidate | Δ |", "|---|---|---|---|---|"]
    for tag, row in sorted(tags.items()):
        base, cand = _num(row.get("baseline")), _num(row.get("candidate"))
        delta = f"{cand - base:+.1%}" if base is not None and cand is not None else "–"
        rows.append(f"| `{_cell(tag, 80)}` | {row.get('cases', '–')} | {_pct(base)} | {_pct(cand)} | {delta} |")
    return rows


def cost_table(cases: list[dict]) -> list[str]:
    """Latency and cost, median and p95 per side, and the change."""
    from aevolve._gate.decision import evidence_summary

    figures = evidence_summary(cases)
    rows = []
    for what, key, unit, fmt in (("latency", "latency_ms", " ms", "{:.0f}"), ("cost", "cost", "", "{:.6g}")):
        sides = figures[key]
        for stat in ("median", "p95", "total"):
            base, cand = (_num((sides.get(s) or {}).get(stat)) for s in ("baseline", "candidate"))
            if base is None and cand is None:
                continue
            show = [("–" if v is None else fmt.format(v) + unit) for v in (base, cand)]
            delta = "–"
            if base is not None and cand is not None:
                delta = ("+" if cand >= base else "-") + fmt.format(abs(cand - base)) + unit
                delta += f" ({(cand - base) / base:+.0%})" if base else ""
            rows.append(f"| {what} {stat} | {show[0]} | {show[1]} | {delta} |")
    return ["| | baseline | candidate | Δ |", "|---|---|---|---|", *rows] if rows else []


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _pct(rate) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def evidence_units(report: dict, *, level: int = 4, full: bool = False) -> list[str]:
    """The evidence of a report as Markdown pieces, most important first: flip counts and the
    flip table (never dropped), then one piece per flip's side-by-side outputs, tags, cost."""
    h = "#" * level
    cases = clean_cases(report.get("cases"))
    summary = report.get("summary") if isinstance(report.get("summary"), dict) else {}
    units = []
    table = flip_table(cases)
    if cases:
        head = [f"{h} Flips", "", flip_counts(summary, cases), ""]
        units.append("\n".join(head + (table + [""] if table else ["No case changed or fails.", ""])))
    groups = flip_groups(cases)
    flipped = [(name, c) for name, _, _ in GROUPS for c in groups[name]]
    if flipped:
        units.append(f"{h} Outputs, side by side\n")
        fold = len(flipped) > OPEN_FLIPS
        for name, case in flipped:
            body = side_by_side(case, name, full)
            if fold:
                first, _, rest = body.partition("\n")
                body = f"<details><summary>{first.strip('*')}</summary>\n\n{rest.strip()}\n\n</details>\n"
            units.append(body)
    tags = tag_table(summary, cases)
    if tags:
        units.append("\n".join([f"{h} Pass rate by tag", "", *tags, ""]))
    costs = cost_table(cases)
    if costs:
        units.append("\n".join([f"{h} Latency and cost", "", *costs, ""]))
    return units


@dataclass
class Part:
    """A piece of a Markdown body: its units, and when it may lose some to fit, what they are."""

    units: list[str]
    what: str = ""  # "semantic diff blocks": what a dropped unit is; "" never dropped
    hint: str = ""  # where the whole of it is

    def text(self) -> str:
        return "\n".join(self.units)


def fit(parts: list[Part], limit: int = GITHUB_LIMIT) -> str:
    """The parts joined, within `limit` characters: whole units are dropped from the end of the
    largest droppable part until it fits, and a note says what was left out and where it is."""
    text = "\n".join(p.text() for p in parts if p.units)
    if len(text) <= limit:
        return text
    kept = [list(p.units) for p in parts]
    dropped = [0] * len(parts)
    reserve = 400 * sum(1 for p in parts if p.what)  # room for the notes

    def size() -> int:
        return sum(len(u) + 1 for units in kept for u in units)

    while size() > limit - reserve:
        candidates = [i for i, p in enumerate(parts) if p.what and len(kept[i]) > 1]
        if not candidates:
            break
        i = max(candidates, key=lambda n: sum(len(u) for u in kept[n][1:]))
        kept[i].pop()
        dropped[i] += 1
    out = []
    for part, units, n in zip(parts, kept, dropped, strict=True):
        out += units
        if n:
            out.append(f"\n> **Folded to fit GitHub's {GITHUB_LIMIT:,}-character limit:** {n} of "
                       f"{len(part.units) - 1} {part.what} not shown. {part.hint}\n")
    text = "\n".join(u for u in out if u)
    if len(text) > limit:  # what cannot be dropped is still too long: cut, and say so
        tail = f"\n\n_… cut at GitHub's {GITHUB_LIMIT:,}-character limit._\n"
        text = text[: limit - len(tail)] + tail
    return text
