"""Is a move of `main` from OLD to NEW admissible? The one verifier.

Promotion, the client `pre-push` and the server `pre-receive` all ask it. A
move is admissible only when every commit C on the first-parent chain
OLD..NEW carries an accepting gate note that is about exactly the transition
C^1 -> C: its baseline is C's first parent, its tree is C's tree, its exam
digest is the exam at C's first parent, its signature (when present, or when
required) verifies, and a maintainer change has its approvals.

Everything is read through the `git` command (`GitReader`), because inside a
pre-receive hook the pushed objects sit in a quarantine only `git` sees.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._git.notes import parse_report
from aevolve._git.reader import CommitInfo, GitReader
from aevolve._git.repo import APPROVALS_REF, NOTES_REF, Repo

_PROPOSAL = re.compile(r"^Aevolve-Proposal\s*:", re.IGNORECASE | re.MULTILINE)


def is_evolver_commit(message: str) -> bool:
    """Written by an evolver: its message carries an `Aevolve-Proposal` line."""
    return bool(_PROPOSAL.search(message))


# -- the signed payload ----------------------------------------------------------------


def report_digest(report: dict) -> str:
    """sha256 of the canonical report without its signature."""
    from aevolve._trust.signing import canonical

    body = {k: v for k, v in report.items() if k != "signature"}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def verdict_payload(report: dict) -> bytes:
    """What a gate signature covers: the transition, the exam, the decision and the report."""
    from aevolve._trust.signing import canonical

    return canonical({
        "kind": "aevolve-verdict",
        "candidate": report.get("candidate"),
        "baseline": report.get("baseline"),
        "tree": report.get("candidate_tree"),
        "exam_digest": report.get("exam_digest"),
        "decision": report.get("decision"),
        "report_digest": report_digest(report),
    })


def sign_report(repo: Repo, report: dict) -> dict:
    """`report` with a signature by the git user's SSH signing key, when one is configured."""
    from aevolve._trust.signing import NAMESPACE_VERDICT, sign, signing_key

    key = signing_key(repo)
    if key is None:
        return report
    unsigned = {k: v for k, v in report.items() if k != "signature"}
    return {**unsigned, "signature": sign(key, verdict_payload(unsigned), NAMESPACE_VERDICT)}


# -- the check -------------------------------------------------------------------------


@dataclass
class Trust:
    """Where to look and what to demand."""

    notes: list[str | None]  # gate notes commits, first wins (e.g. the pushed value, then the current one)
    approvals: list[str | None] = field(default_factory=list)  # approvals notes commits
    allowed_signers: Path | None = None
    require_signed: bool = False


@dataclass
class CommitVerdict:
    commit: str
    problems: list[str]
    report: dict | None = None
    signer: str | None = None  # who signed the note (the principal when checked against a list)
    fingerprint: str | None = None

    @property
    def valid(self) -> bool:
        return not self.problems


def check_move(reader: GitReader, old: str, new: str, *, notes: list[str | None],
               approvals: list[str | None] | None = None, allowed_signers: Path | None = None,
               require_signed: bool = False) -> list[str]:
    """Refusal lines for moving main OLD -> NEW (empty: admissible)."""
    return check_chain(reader, old, new, Trust(list(notes), list(approvals or []), allowed_signers, require_signed))


def check_chain(reader: GitReader, old: str, new: str, trust: Trust) -> list[str]:
    if old == new:
        return []
    chain = reader.first_parent_chain(old, new)
    if chain is None:
        return [f"{new[:12]} does not reach {old[:12]} through first parents: main only moves forward "
                "along its own line (rebase the change onto main, gate it, promote it)"]
    problems: list[str] = []
    for sha in chain:
        problems += check_commit(reader, sha, trust).problems
    return problems


def check_commit(reader: GitReader, sha: str, trust: Trust) -> CommitVerdict:
    """Is `sha`'s note an admissible verdict on the transition from its first parent?"""
    info = reader.commit(sha)
    if info is None:
        return CommitVerdict(sha, [f"{sha[:12]}: no such commit"])
    what = f"{sha[:12]} ({info.subject})"
    if not info.parents:
        return CommitVerdict(sha, [f"{what}: a root commit has no baseline to be gated against"])
    parent = info.parents[0]
    report = parse_report(reader.note(trust.notes, sha))
    if report is None:
        return CommitVerdict(sha, [f"{what}: it has no gate note; gate it (`aevolve gate {sha[:12]}`) "
                                   "and push its note with it"])
    verdict = CommitVerdict(sha, [], report)
    verdict.problems += _transition_problems(reader, info, parent, report, what)
    verdict.problems += _signature_problems(report, trust, what, verdict)
    verdict.problems += _approval_problems(reader, info, parent, trust, what)
    return verdict


def _transition_problems(reader: GitReader, info: CommitInfo, parent: str, report: dict, what: str) -> list[str]:
    from aevolve._trust.exam import exam_digest

    if report.get("candidate") != info.sha:
        return [f"{what}: its note is the verdict on another commit "
                f"({str(report.get('candidate'))[:12]}); a note copied from elsewhere proves nothing"]
    out = []
    if report.get("decision") != "accept" or report.get("shard"):
        what_kind = "a partial shard report" if report.get("shard") else f"decision {report.get('decision')!r}"
        out.append(f"{what}: the gate did not accept it ({what_kind})")
    baseline = report.get("baseline")
    if baseline == info.sha:
        out.append(f"{what}: its note was gated against itself; gate it against its parent {parent[:12]}")
    elif baseline != parent:
        out.append(f"{what}: its note was gated against {str(baseline)[:12]}, but its parent is {parent[:12]}; "
                   "gate it against its parent")
    if report.get("candidate_tree") != info.tree:
        out.append(f"{what}: its note is about tree {str(report.get('candidate_tree'))[:12]}, "
                   f"not the commit's tree {info.tree[:12]}")
    parent_info = reader.commit(parent)
    if parent_info is not None:
        expected = exam_digest(reader.files(parent_info.tree), reader.reader(parent_info.tree))
        if report.get("exam_digest") != expected:
            out.append(f"{what}: its note was made under a different exam than the one at its parent "
                       f"{parent[:12]} (exam digest {str(report.get('exam_digest'))[:19]}, expected "
                       f"{expected[:19]}); gate it again")
    return out


def _signature_problems(report: dict, trust: Trust, what: str, verdict: CommitVerdict) -> list[str]:
    from aevolve._trust.signing import NAMESPACE_VERDICT, verify

    signature = report.get("signature")
    if signature is None:
        if trust.require_signed:
            return [f"{what}: its gate note is not signed, and a signed verdict is required here "
                    "(gate it where an allowed signing key is configured: `git config aevolve.signingKey`, e.g. in CI)"]
        return []
    check = verify(verdict_payload(report), signature, NAMESPACE_VERDICT, trust.allowed_signers)
    verdict.signer = check.principal or check.signer
    verdict.fingerprint = check.fingerprint
    if not check.valid:
        return [f"{what}: its gate note's signature does not hold: {check.reason}"]
    return []


def _approval_problems(reader: GitReader, info: CommitInfo, parent: str, trust: Trust, what: str) -> list[str]:
    """A maintainer change needs approvals; an evolver change may never leave the layers."""
    from aevolve._trust.approvals import count_approvals, parse_approvals
    from aevolve._trust.exam import outside_layers, read_config, read_layers, required_approvals

    parent_info = reader.commit(parent)
    if parent_info is None:
        return []
    read = reader.reader(parent_info.tree)
    cfg, layers = read_config(read), read_layers(read)
    outside = outside_layers(reader.changed_paths(parent, info.sha), layers, cfg)
    if not outside:
        return []
    shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
    if is_evolver_commit(info.message):
        return [f"{what}: an evolver commit (Aevolve-Proposal) changes what no evolver may change: {shown}"]
    needed = required_approvals(cfg)
    approvals = parse_approvals(reader.note(trust.approvals, info.sha))
    counted = count_approvals(approvals, info.sha, info.tree, trust.allowed_signers)
    if len(counted.signers) >= needed:
        return []
    return [f"{what}: a maintainer change ({shown}) needs {needed} approval(s) by allowed signers, "
            f"it has {len(counted.signers)}; approve it with `aevolve approve {info.sha[:12]}`"]


# -- for `aevolve verify` and promotion -------------------------------------------------


def local_trust(repo: Repo, *, require_signed: bool = False, remote: str | None = None) -> Trust:
    """The notes this clone has (and a remote's fetched copy), checked against git's own
    allowed signers list when one is configured."""
    from aevolve._trust.signing import allowed_signers_file

    reader = GitReader(repo)
    notes = [reader.ref(NOTES_REF)]
    approvals = [reader.ref(APPROVALS_REF)]
    if remote:
        notes.append(reader.ref(f"refs/notes/remotes/{remote}/aevolve"))
        approvals.append(reader.ref(f"refs/notes/remotes/{remote}/aevolve-approvals"))
    return Trust(notes, approvals, allowed_signers_file(repo), require_signed)


def verify_commit(repo: Repo, rev: str, *, require_signed: bool = True) -> CommitVerdict:
    """Is REV's verdict valid (and signed)? For `aevolve verify`."""
    sha = str(repo.resolve(rev).id)
    return check_commit(GitReader(repo), sha, local_trust(repo, require_signed=require_signed))
