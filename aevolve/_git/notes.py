"""Gate reports stored as git notes under refs/notes/aevolve.

Reading and writing only: whether a note admits a commit into main is
`aevolve.verdicts`' question. Every report is redacted (secrets never leave
the machine) and signed (when a signing key is configured) before it is written.
"""

from __future__ import annotations

import json

from aevolve._git.repo import NOTES_REF, Repo


def read_gate_report(repo: Repo, commit: str, ref: str = NOTES_REF) -> dict | None:
    """The gate report noted on `commit`, or None (absent or not a gate report)."""
    from aevolve._trust.verdicts import parse_report

    return parse_report(repo.read_note(str(commit), ref))


def write_gate_report(repo: Repo, report: dict, ref: str = NOTES_REF) -> str:
    """Store `report` as the note of its candidate commit; returns the notes commit."""
    return repo.write_note(report["candidate"], _dump(report), ref)


VERDICT_KEYS = ("decision", "candidate", "baseline", "candidate_tree", "exam_digest", "change", "static")


def same_verdict(a: dict, b: dict) -> bool:
    """Do two reports say the same about the same transition (timings and dates aside)?"""
    def cases(report: dict) -> list:
        return [(c.get("id"), c.get("verdict")) for c in report.get("cases") or []]

    return all(a.get(k) == b.get(k) for k in VERDICT_KEYS) and cases(a) == cases(b)


def store_report(repo: Repo, report: dict) -> bool:
    """Redact, sign and note `report` on its candidate. False (nothing written) when
    the note there already gives the same verdict: re-gating never churns notes."""
    existing = read_gate_report(repo, report["candidate"])
    if existing is not None and same_verdict(existing, report) and not _would_sign_better(repo, existing):
        return False
    repo.write_note(report["candidate"], prepare_report(repo, report))
    return True


def _would_sign_better(repo: Repo, existing: dict) -> bool:
    """Would writing again replace a note that is unsigned, or signed by a key this
    clone does not trust, with one signed here (CI re-gating a laptop's verdict)?"""
    from aevolve._trust.signing import NAMESPACE_VERDICT, allowed_signers_file, signing_key, verify
    from aevolve._trust.verdicts import verdict_payload

    if signing_key(repo) is None:
        return False
    signature = existing.get("signature")
    if signature is None:
        return True
    return not verify(verdict_payload(existing), signature, NAMESPACE_VERDICT, allowed_signers_file(repo)).valid


def prepare_report(repo: Repo, report: dict) -> bytes:
    """The note's bytes: the report redacted, then signed when a key is configured."""
    from aevolve._trust.secrets import redact_obj, secret_values
    from aevolve._trust.verdicts import sign_report

    clean = redact_obj(report, secret_values(names=secret_names(repo, report.get("baseline"))))
    return _dump(sign_report(repo, clean))


def secret_names(repo: Repo, baseline: str | None) -> tuple[str, ...]:
    """The variable the baseline's aevolve.yaml names as holding the LLM key (its
    value is a secret whatever the variable is called)."""
    from aevolve._trust.exam import read_config

    commit = repo.try_resolve(baseline) if baseline else None
    if commit is None:
        return ()
    tree = commit.tree
    name = read_config(lambda p: repo.read(tree, p))["evolver"]["openai"].get("api_key_env")
    return (name,) if isinstance(name, str) and name else ()


def _dump(report: dict) -> bytes:
    return json.dumps(report, indent=2, sort_keys=True).encode() + b"\n"
