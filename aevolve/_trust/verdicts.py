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
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._git.repo import APPROVALS_REF, NOTES_REF, ZERO, Repo
_PROPOSAL = re.compile(r"^Aevolve-Proposal\s*:", re.IGNORECASE | re.MULTILINE)


def is_evolver_commit(message: str) -> bool:
    """Written by an evolver: its message carries an `Aevolve-Proposal` line."""
    return bool(_PROPOSAL.search(message))


# -- reading git through the `git` command ---------------------------------------------


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str

    @property
    def subject(self) -> str:
        lines = self.message.strip().splitlines()
        return lines[0][:72] if lines else "?"


class GitReader:
    """Reads objects, trees and notes with a few batched `git` calls."""

    def __init__(self, repo: Repo):
        self.repo = repo
        self._listing: dict[str, dict[str, str]] = {}

    def cat(self, names: list[str]) -> list[bytes | None]:
        """Contents of each object name (`sha`, `rev:path`); None where missing."""
        if not names:
            return []
        proc = self.repo.run_git(["cat-file", "--batch"], input=("\n".join(names) + "\n").encode(), check=False)
        out, pos, results = proc.stdout, 0, []
        for _ in names:
            nl = out.find(b"\n", pos)
            if nl < 0:
                results.append(None)
                continue
            header = out[pos:nl].split()
            pos = nl + 1
            if len(header) == 3 and header[2].isdigit():
                size = int(header[2])
                results.append(out[pos:pos + size])
                pos += size + 1
            else:
                results.append(None)
        return results

    def rev(self, name: str) -> str | None:
        proc = self.repo.run_git(["rev-parse", "-q", "--verify", f"{name}^{{commit}}"], check=False)
        return proc.stdout.strip() or None

    def ref(self, name: str) -> str | None:
        proc = self.repo.run_git(["rev-parse", "-q", "--verify", name], check=False)
        return proc.stdout.strip() or None

    def commit(self, sha: str) -> CommitInfo | None:
        body = self.cat([sha])[0]
        if body is None:
            return None
        head, _, message = body.partition(b"\n\n")
        tree, parents = "", []
        for line in head.splitlines():
            key, _, value = line.partition(b" ")
            if key == b"tree":
                tree = value.decode()
            elif key == b"parent":
                parents.append(value.decode())
        return CommitInfo(sha, tree, tuple(parents), message.decode("utf-8", "replace"))

    def first_parent_chain(self, old: str, new: str) -> list[str] | None:
        """Commits from just after OLD to NEW, oldest first, linked by first parents;
        None when OLD is not on NEW's first-parent line."""
        proc = self.repo.run_git(["rev-list", "--first-parent", "--parents", new, "--not", old], check=False)
        if proc.returncode != 0:
            return None
        rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
        expected = new
        for row in rows:
            if row[0] != expected or len(row) < 2:
                return None
            expected = row[1]
        return [row[0] for row in reversed(rows)] if expected == old else None

    def files(self, tree: str) -> dict[str, str]:
        """path -> blob id of every file of a tree (cached per tree)."""
        if tree not in self._listing:
            out = self.repo.run_git(["ls-tree", "-r", "-z", "--full-tree", tree], input=b"", check=False).stdout
            files = {}
            for record in out.split(b"\0"):
                meta, _, path = record.partition(b"\t")
                parts = meta.split(b" ")
                if len(parts) == 3 and parts[1] == b"blob":
                    files[path.decode("utf-8", "surrogateescape")] = parts[2].decode()
            self._listing[tree] = files
        return self._listing[tree]

    def reader(self, tree: str):
        """A `path -> bytes | None` function over one tree."""
        files = self.files(tree)

        def read(path: str) -> bytes | None:
            oid = files.get(path)
            return self.cat([oid])[0] if oid else None

        return read

    def changed_paths(self, parent: str, commit: str) -> list[str]:
        proc = self.repo.run_git(["diff-tree", "-r", "-z", "--name-only", "--no-renames", parent, commit],
                                 input=b"", check=False)
        return [p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p]

    def note(self, notes_commits: list[str | None], commit: str) -> bytes | None:
        """The first note of `commit` found in the given notes commits (fan-out aware)."""
        paths = [commit, f"{commit[:2]}/{commit[2:]}", f"{commit[:2]}/{commit[2:4]}/{commit[4:]}"]
        names = [f"{n}:{p}" for n in notes_commits if n and n != ZERO for p in paths]
        return next((data for data in self.cat(names) if data is not None), None)


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


def parse_report(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        report = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    return report if isinstance(report, dict) and "decision" in report else None


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
               approvals: list[str | None] = (), allowed_signers: Path | None = None,
               require_signed: bool = False) -> list[str]:
    """Refusal lines for moving main OLD -> NEW (empty: admissible)."""
    return check_chain(reader, old, new, Trust(list(notes), list(approvals), allowed_signers, require_signed))


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
