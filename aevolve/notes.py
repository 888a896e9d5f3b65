"""Gate reports stored as git notes under refs/notes/aevolve.

Promotion, the pre-push and pre-receive hooks, review and log all ask the same
question: did the gate accept *this exact commit*? It is answered here only.
"""

from __future__ import annotations

import json

from .repo import NOTES_REF, Repo


def read_gate_report(repo: Repo, commit: str, ref: str = NOTES_REF) -> dict | None:
    """The gate report noted on `commit`, or None (absent or not a gate report)."""
    data = repo.read_note(str(commit), ref)
    if data is None:
        return None
    try:
        report = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return report if isinstance(report, dict) and "decision" in report else None


def is_accepting(report: dict | None, commit: str) -> bool:
    """True only for a complete (unsharded) report that accepts exactly `commit`."""
    return (
        report is not None
        and report.get("decision") == "accept"
        and report.get("candidate") == str(commit)
        and not report.get("shard")
    )


def gate_accepts(repo: Repo, commit: str, ref: str = NOTES_REF) -> bool:
    return is_accepting(read_gate_report(repo, commit, ref), str(commit))


def write_gate_report(repo: Repo, report: dict, ref: str = NOTES_REF) -> str:
    """Store `report` as the note of its candidate commit; returns the notes commit."""
    data = json.dumps(report, indent=2, sort_keys=True).encode() + b"\n"
    return repo.write_note(report["candidate"], data, ref)
