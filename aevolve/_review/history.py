"""The evolution history of main (`aevolve log`) and rollback (`aevolve rollback`).

A rollback never rewrites history: it is a new proposal on top of main whose
tree restores an earlier state of the evolvable layers, committed through
`commit_proposal` (so the policy applies) and gated like any other change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from aevolve._errors import InvalidInput
from aevolve._git.notes import parse_report
from aevolve._git.reader import GitReader
from aevolve._git.repo import NOTES_REF, Repo
from aevolve._propose.rationale import parse
from aevolve._review.review import summarize_report

EVOLVE_PREFIX = "refs/heads/evolve/"


@dataclass
class LogEntry:
    commit: str
    date: str  # ISO 8601, committer time
    subject: str
    status: str  # main | rejected | ungated | accepted (gated, not promoted) | partial
    author: str = ""
    branch: str | None = None  # evolve/* branches (with --all)
    aevolve: bool = False  # made by aevolve (carries an Aevolve-Proposal trailer)
    evolver: str | None = None
    proposal_id: str | None = None
    evidence: list[str] = field(default_factory=list)
    gate: dict | None = None  # decision, candidate_pass_rate, baseline_pass_rate, delta, reasons
    timestamp: int = 0

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def score(self) -> str:
        """"0.750 (+0.250)", or "" when not gated."""
        g = self.gate or {}
        if g.get("candidate_pass_rate") is None:
            return ""
        delta = f" ({g['delta']:+.3f})" if g.get("delta") is not None else ""
        return f"{g['candidate_pass_rate']:.3f}{delta}"

    def to_dict(self) -> dict:
        return {"commit": self.commit, "short": self.short, "date": self.date, "subject": self.subject,
                "status": self.status, "author": self.author, "branch": self.branch, "aevolve": self.aevolve,
                "evolver": self.evolver, "proposal_id": self.proposal_id, "evidence": self.evidence,
                "evidence_count": len(self.evidence), "gate": self.gate}


def _entry(repo: Repo, commit, status: str, note: bytes | None, branch: str | None = None) -> LogEntry:
    message = commit.message or ""
    rationale = parse(message)
    when = datetime.fromtimestamp(commit.commit_time, UTC).astimezone()
    entry = LogEntry(
        commit=str(commit.id), date=when.isoformat(timespec="seconds"),
        subject=message.splitlines()[0] if message else "", status=status,
        author=commit.author.name, branch=branch, timestamp=commit.commit_time,
    )
    if rationale is not None:
        entry.aevolve = True
        entry.evolver = rationale.evolver or None
        entry.proposal_id = rationale.proposal_id or None
        entry.evidence = rationale.evidence
    report = parse_report(note)
    if report is not None:
        g = summarize_report(report, report.get("baseline") or "")
        entry.gate = {k: g[k] for k in ("decision", "candidate_pass_rate", "baseline_pass_rate", "delta",
                                        "reasons", "baseline")}
    return entry


def log(repo: Repo, all: bool = False, n: int | None = None, base: str = "main") -> list[LogEntry]:
    """main's history newest first; `all` adds evolve/* tips that never reached main."""
    main = repo.try_resolve(base)
    picked: list[tuple] = []  # (commit, status, branch)
    if main is not None:
        for commit in repo.commits(str(main.id), by_time=True):
            picked.append((commit, "main", None))
            if n is not None and not all and len(picked) >= n:
                break
    if all:
        for ref, target in sorted(repo.refs(EVOLVE_PREFIX).items()):
            if main is not None and repo.is_ancestor(target, str(main.id)):
                continue  # promoted: already in main's history
            picked.append((repo.resolve(target), "ungated", ref.removeprefix("refs/heads/")))
    # every note in one pass over the notes tree, not one tree lookup per commit
    with GitReader(repo) as reader:
        notes = reader.notes_of(repo.ref_target(NOTES_REF), [str(c.id) for c, _, _ in picked])
    entries: list[LogEntry] = []
    for commit, status, branch in picked:
        entry = _entry(repo, commit, status, notes[str(commit.id)], branch)
        if branch is not None and entry.gate is not None:
            entry.status = {"reject": "rejected", "accept": "accepted", "partial": "partial"}.get(
                entry.gate["decision"], entry.gate["decision"])
        entries.append(entry)
    if all:
        entries.sort(key=lambda e: -e.timestamp)  # stable: main's topological order survives ties
    return entries[:n] if n is not None else entries


# -- rollback -----------------------------------------------------------------------------


def restore_changes(repo: Repo, ref_commit: str, base_commit: str) -> tuple[dict[str, bytes | None], list[str]]:
    """{path: bytes | None} that make base's evolvable layers equal ref's, and the layers.

    Protected paths (evals/, aevolve.yaml, ...) and everything outside the
    evolvable layers keep base's version.
    """
    from aevolve._review.semdiff.sources import tree_delta
    from aevolve._state.model import State
    from aevolve._trust.exam import is_evolvable

    state = State.from_tree(repo, base_commit)
    cfg, layers = state.config(), state.evolvable_layers()
    delta: list = []
    tree_delta(repo, repo.tree(base_commit), repo.tree(ref_commit), "", delta)
    changes: dict[str, bytes | None] = {}
    for path, _old, new in delta:
        if is_evolvable(path, layers, cfg):  # what an evolver may change, nothing else
            changes[path] = repo.blob(new[0]) if new else None
    return changes, layers


def rollback(repo: Repo, ref: str, base: str = "main", reason: str | None = None,
             evidence: list[str] | None = None):
    """A new evolution branch on `base` whose commit restores `ref`'s evolvable layers.

    Returns the ProposeResult of `commit_proposal` (`nothing_to_do` when the
    layers already match). Raises PolicyRefused like any proposal.
    """
    from aevolve._propose.evolvers.base import Edit, Proposal
    from aevolve._propose.run import ProposeResult, commit_proposal

    target = repo.resolve(ref)
    base_commit = repo.resolve(base)
    changes, layers = restore_changes(repo, str(target.id), str(base_commit.id))
    if not changes:
        return ProposeResult(nothing_to_do=True, base=str(base_commit.id),
                             reason=f"nothing to restore: {', '.join(layers)} at {ref} ({str(target.id)[:12]}) "
                                    f"already equal {base}")
    edits, binary = [], []
    for path, data in sorted(changes.items()):
        if data is None:
            edits.append(Edit("delete", path))
            continue
        try:
            edits.append(Edit("write", path, content=data.decode("utf-8")))
        except UnicodeDecodeError:
            binary.append(path)
    if binary:
        raise InvalidInput("cannot restore binary or non-UTF-8 files through a proposal: " + ", ".join(binary))
    subject = (target.message or "").splitlines()[0] if target.message else ""
    sha = str(target.id)[:12]
    restored = [e.path for e in edits if e.op == "write"]
    removed = [e.path for e in edits if e.op == "delete"]
    listed = [f"- restore {p}" for p in restored] + [f"- remove {p}" for p in removed]
    if len(listed) > 60:
        listed = listed[:60] + [f"- ... and {len(listed) - 60} more"]
    when = datetime.fromtimestamp(target.commit_time, UTC).date().isoformat()
    proposal = Proposal(
        title=f"roll back to {ref} ({sha})" if ref[:12] != sha else f"roll back to {sha}",
        diagnosis=(f"Restores the state of {ref} {sha} \"{subject}\" ({when}).\n"
                   + (reason.strip() if reason else "Reason: none given (aevolve rollback --reason).")),
        change=(f"Restores {len(restored)} file(s) and removes {len(removed)} in {', '.join(layers)} "
                f"to their state at {sha}:\n" + "\n".join(listed) + "\n"
                f"Protected paths (evals/, aevolve.yaml, ...) and files outside the evolvable layers stay as on "
                f"{base}. History is not rewritten: this is a new commit on {base}."),
        expected_effect=(f"The agent behaves as it did at {sha}; the gate judges this rollback against today's "
                         f"{base} with today's regression suite, like any change."),
        edits=edits,
        evidence=list(evidence or []),
    )
    return commit_proposal(repo, str(base_commit.id), proposal, "rollback")
