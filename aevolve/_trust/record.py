"""Writing a verdict: redacted (secrets never leave the machine), signed (when a
signing key is configured), and never rewritten when it says the same again."""

from __future__ import annotations

from aevolve._faults import pause
from aevolve._git.notes import dump_report, read_gate_report
from aevolve._git.repo import Repo
from aevolve._trust.exam import read_config
from aevolve._trust.secrets import redact_obj, secret_values
from aevolve._trust.signing import NAMESPACE_VERDICT, allowed_signers_file, signing_key, verify
from aevolve._trust.verdicts import sign_report, verdict_payload

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
    data = prepare_report(repo, report)
    pause("gate-note")
    repo.write_note(report["candidate"], data)
    return True


def _would_sign_better(repo: Repo, existing: dict) -> bool:
    """Would writing again replace a note that is unsigned, or signed by a key this
    clone does not trust, with one signed here (CI re-gating a laptop's verdict)?"""
    if signing_key(repo) is None:
        return False
    signature = existing.get("signature")
    if signature is None:
        return True
    return not verify(verdict_payload(existing), signature, NAMESPACE_VERDICT, allowed_signers_file(repo)).valid


def prepare_report(repo: Repo, report: dict) -> bytes:
    """The note's bytes: the report redacted, then signed when a key is configured."""
    clean = redact_obj(report, secret_values(names=secret_names(repo, report.get("baseline"))))
    return dump_report(sign_report(repo, clean))


def secret_names(repo: Repo, baseline: str | None) -> tuple[str, ...]:
    """The variable the baseline's aevolve.yaml names as holding the LLM key (its
    value is a secret whatever the variable is called)."""
    commit = repo.try_resolve(baseline) if baseline else None
    if commit is None:
        return ()
    tree = commit.tree
    name = read_config(lambda p: repo.read(tree, p))["evolver"]["openai"].get("api_key_env")
    return (name,) if isinstance(name, str) and name else ()
