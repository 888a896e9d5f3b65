"""Gate reports stored as git notes under refs/notes/aevolve: the one place that
knows how a report is parsed (where a note lives is `Repo.note_at`'s). Whether a note admits a
commit into main is `aevolve._trust.verdicts`' question; writing one (redacted,
signed) is `aevolve._trust.record`'s.
"""

from __future__ import annotations

import json

from aevolve._git.repo import NOTES_REF, Repo
from aevolve._json import loads

# One human-readable line per verdict (and per promotion), for `git log` (notes.displayRef):
# written beside the JSON note, in the same ref transaction.
LOG_REF = "refs/notes/aevolve-log"


def parse_report(data: bytes | None) -> dict | None:
    """A gate report from a note's bytes, or None (absent, not JSON, not a report, or
    nested deeper than aevolve._json.MAX_DEPTH: a pushed note is anyone's input).
    NaN is accepted here: an older report may carry a runner's NaN cost."""
    if data is None:
        return None
    try:
        report = loads(data, allow_nan=True)
    except ValueError:  # not JSON, not UTF-8, or nested too deep
        return None
    return report if isinstance(report, dict) and "decision" in report else None


def read_gate_report(repo: Repo, commit: str, ref: str = NOTES_REF) -> dict | None:
    """The gate report noted on `commit`, or None (absent or not a gate report)."""
    return parse_report(repo.read_note(str(commit), ref))


def write_gate_report(repo: Repo, report: dict, ref: str = NOTES_REF) -> str:
    """Store `report` as the note of its candidate commit; returns the notes commit."""
    return repo.write_note(report["candidate"], dump_report(report), ref)


def dump_report(report: dict) -> bytes:
    """One line of JSON: `git log --notes=aevolve` shows one line, not hundreds. Signatures
    cover a canonical payload, never these bytes, so older indented notes stay valid."""
    return json.dumps(report, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def verdict_line(report: dict) -> str:
    """`gate: ACCEPT 0.875 → 1.000, 2 fixed, 0 broken, 14 cases` (+ who gated, and when)."""
    found = report.get("summary")
    summary: dict = found if isinstance(found, dict) else {}
    parts = [f"gate: {str(report.get('decision', '?')).upper()}"]
    base, cand = summary.get("baseline_pass_rate"), summary.get("candidate_pass_rate")
    if isinstance(cand, (int, float)):
        parts[0] += f" {_rate(base)} \u2192 {_rate(cand)}"
    counts = [f"{summary[k]} {word}" for k, word in (("improvements", "fixed"), ("regressions", "broken"),
                                                     ("cases", "cases")) if isinstance(summary.get(k), int)]
    line = ", ".join(parts + counts)
    if report.get("baseline"):
        line += f" (against {str(report['baseline'])[:12]})"
    who = report.get("gated_by")
    if isinstance(who, dict):
        line += f"; gated by {who_line(who)}"
    return line


def who_line(who: dict) -> str:
    """`Name <email> at T` (with `key K` when signed) from a gated_by/promoted_by record."""
    text = f"{who.get('name') or '?'} <{who.get('email') or '?'}>"
    if who.get("key"):
        text += f" key {who['key']}"
    return text + (f" at {who['at']}" if who.get("at") else "")


def _rate(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def add_log_line(old: bytes | None, line: str) -> bytes:
    """The display note with `line` added (once: writing the same line twice changes nothing)."""
    lines = (old or b"").decode("utf-8", "replace").splitlines()
    if line not in lines:
        lines.append(line)
    return "".join(f"{item}\n" for item in lines).encode()
