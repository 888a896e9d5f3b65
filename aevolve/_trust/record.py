"""Writing a verdict: redacted (secrets never leave the machine), signed (when a
signing key is configured), and never rewritten when it says the same again.

Each verdict records who gated and when (`gated_by`: git identity, the signing
key's fingerprint when signed, the time), inside the signed report. The JSON
note and its one-line rendering on the display ref (`notes.LOG_REF`, what plain
`git log` shows) move in one ref transaction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aevolve._errors import AevolveError, RefMoved
from aevolve._faults import pause
from aevolve._git.notes import LOG_REF, add_log_line, dump_report, read_gate_report, verdict_line
from aevolve._git.repo import NOTES_REF, Repo
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


# (notes ref, annotated object, its new note from the current one): notes written with a verdict
NoteChange = tuple[str, str, Callable[[bytes | None], bytes]]


def store_report(repo: Repo, report: dict, more: Sequence[NoteChange] = ()) -> bool:
    """Redact, sign and note `report` on its candidate, with the notes `more` changes (the
    runs the gate made) in the same transaction. False (no verdict written) when the
    note there already gives the same verdict: re-gating never churns notes; `more`
    is then written alone."""
    existing = read_gate_report(repo, report["candidate"])
    if existing is not None and same_verdict(existing, report) and not _would_sign_better(repo, existing):
        if more:
            write_verdict(repo, None, b"", [], more=more)
        return False
    finished = finish_report(repo, report)
    pause("gate-note")
    write_verdict(repo, report["candidate"], dump_report(finished), [verdict_line(finished)], more=more)
    return True


def identity(repo: Repo) -> dict:
    """Who does this, as recorded in a note: git's identity (GIT_COMMITTER_* first), the
    fingerprint of the signing key when one is configured, and the time (UTC)."""
    from aevolve._trust.signing import fingerprint

    sig = repo.signature("committer")
    who: dict = {"name": sig.name, "email": sig.email}
    key = signing_key(repo)
    if key is not None:
        try:
            who["key"] = fingerprint(key.path)
        except (AevolveError, OSError):
            pass  # signing will say what is wrong with the key
    who["at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return who


def log_commit(repo: Repo, parent: str | None, lines: dict[str, list[str]]) -> str | None:
    """The display-ref commit on top of `parent` with `lines` added to each commit's note
    (`parent` itself when every line is there already)."""
    tip = parent
    for commit, new in lines.items():
        old = repo.note_at(tip, commit)
        data = old or b""
        for line in new:
            data = add_log_line(data, line)
        if data != (old or b""):
            tip = str(repo.note_commit(commit, data, tip, LOG_REF))
    return tip


def write_verdict(repo: Repo, commit: str | None, data: bytes, lines: list[str], attempts: int = 50,
                  more: Sequence[NoteChange] = ()) -> None:
    """The JSON note of `commit` and its display lines, and the notes `more` changes, in one
    transaction (retried, re-reading every ref, while a parallel writer moves any);
    `commit` None writes only `more`."""
    from aevolve._git.repo import ZERO

    for attempt in range(attempts):
        txn = repo.begin_transaction()  # opened before reading the refs: see promote._move
        try:
            updates: list[tuple[str, str, str | None]] = []
            if commit is not None:
                notes_old, log_old = repo.ref_target(NOTES_REF), repo.ref_target(LOG_REF)
                notes_new = str(repo.note_commit(commit, data, notes_old))
                log_new = log_commit(repo, log_old, {commit: lines})
                updates += [(NOTES_REF, notes_new, notes_old or ZERO), (LOG_REF, log_new or ZERO, log_old or ZERO)]
            updates += _more_updates(repo, more)
            if not updates:  # only `more`, and every note already held it
                txn.abort()
                return
            txn.prepare(updates)
            txn.commit()
            return
        except RefMoved:
            time.sleep(random.uniform(0.0005, min(0.2, 0.005 * (attempt + 1))))
        except BaseException:
            txn.abort()
            raise
    what = f"the gate note on {commit[:12]}" if commit else "the runs notes"
    raise RefMoved(f"could not write {what}: the notes refs kept moving; nothing was written, gate again")


def _more_updates(repo: Repo, more: Sequence[NoteChange]) -> list[tuple[str, str, str | None]]:
    """(ref, new, old) for each notes ref `more` changes (none when nothing changes)."""
    from aevolve._git.repo import ZERO

    out: list[tuple[str, str, str | None]] = []
    for ref in dict.fromkeys(ref for ref, _obj, _change in more):
        old = repo.ref_target(ref)
        tip = old
        for _ref, obj, change in (m for m in more if m[0] == ref):
            before = repo.note_at(tip, obj)
            after = change(before)
            if after != before:
                tip = str(repo.note_commit(obj, after, tip, ref))
        if tip != old and tip is not None:
            out.append((ref, tip, old or ZERO))
    return out


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
    return dump_report(finish_report(repo, report))


def finish_report(repo: Repo, report: dict) -> dict:
    """The report as noted: redacted, `gated_by` recorded (kept when already there), signed."""
    clean = redact_obj(report, secret_values(names=secret_names(repo, report.get("baseline"))))
    if not isinstance(clean.get("gated_by"), dict):
        clean = {**clean, "gated_by": identity(repo)}
    return sign_report(repo, clean)


def secret_names(repo: Repo, baseline: str | None) -> tuple[str, ...]:
    """The variable the baseline's aevolve.yaml names as holding the LLM key (its
    value is a secret whatever the variable is called)."""
    commit = repo.try_resolve(baseline) if baseline else None
    if commit is None:
        return ()
    tree = commit.tree
    name = read_config(lambda p: repo.read(tree, p))["evolver"]["openai"].get("api_key_env")
    return (name,) if isinstance(name, str) and name else ()
