"""Gate reports stored as git notes under refs/notes/aevolve: the one place that
knows how a report is parsed (where a note lives is `Repo.note_at`'s). Whether a note admits a
commit into main is `aevolve._trust.verdicts`' question; writing one (redacted,
signed) is `aevolve._trust.record`'s.
"""

from __future__ import annotations

import json

from aevolve._git.repo import NOTES_REF, Repo
from aevolve._json import loads


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
    return json.dumps(report, indent=2, sort_keys=True).encode() + b"\n"
