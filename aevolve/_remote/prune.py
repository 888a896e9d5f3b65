"""`aevolve prune`: delete evolution branches that are done, keep their notes.

A branch is done when its tip is in main (promoted) or its gate note rejects it
(local notes, or the fetched copy of a remote's). An ungated branch, or one
accepted but not promoted, is kept unless its tip is older than `older_than`
days. Local branches go in one ref transaction (never a checked-out one); with
`remote`, the remote's go in one `git push --atomic` of deletions, each leased to
the tip we judged. Notes are never touched, so `aevolve log` still shows them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from aevolve._errors import GitCommandFailed
from aevolve._git.notes import parse_report
from aevolve._git.repo import NOTES_REF, ZERO, Repo

DAY = 86400


@dataclass
class Pruned:
    ref: str  # refs/heads/evolve/... or refs/remotes/R/evolve/...
    tip: str
    why: str  # promoted, rejected, stale (older than --older-than)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PruneResult:
    deleted: list[Pruned] = field(default_factory=list)
    kept: list[Pruned] = field(default_factory=list)  # why: ungated, accepted, checked-out, ...
    remote: str | None = None
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"remote": self.remote, "dry_run": self.dry_run, "deleted": [p.to_dict() for p in self.deleted],
                "kept": [p.to_dict() for p in self.kept]}


def prune(repo: Repo, *, remote: str | None = None, older_than: float | None = None, dry_run: bool = False,
          main: str = "main", prefix: str = "evolve/") -> PruneResult:
    """Delete done evolution branches locally (and on `remote`); see the module doc."""
    from aevolve._remote.fetch import check_remote
    from aevolve._state.gitsetup import tracking_ref

    main_ref = main if main.startswith("refs/") else f"refs/heads/{main}"
    result = PruneResult(remote=remote, dry_run=dry_run)
    mains = [repo.ref_target(main_ref)]
    notes = [repo.ref_target(NOTES_REF)]
    if remote:
        from aevolve._remote.sync import sync

        check_remote(repo, remote)
        if not dry_run:
            sync(repo, remote, main=main)
        mains.append(repo.ref_target(tracking_ref(remote, main_ref)))
        notes.append(repo.ref_target(tracking_ref(remote, NOTES_REF)))
    judge = _Judge(repo, [m for m in mains if m], [n for n in notes if n], older_than)
    checked_out = _checked_out(repo)
    local = []
    for ref, tip in sorted(repo.refs(f"refs/heads/{prefix}").items()):
        why = judge(tip)
        item = Pruned(ref, tip, why or judge.keep_reason(tip))
        if why and ref in checked_out:
            item.why = "checked-out"
            why = None
        (local.append(item) if why else result.kept.append(item))
    remote_items = []
    if remote:
        base = tracking_ref(remote, f"refs/heads/{prefix}")
        for ref, tip in sorted(repo.refs(base).items()):
            why = judge(tip)
            item = Pruned(ref, tip, why or judge.keep_reason(tip))
            (remote_items.append(item) if why else result.kept.append(item))
    result.deleted = local + remote_items
    if dry_run:
        return result
    if local:
        repo.transaction([(p.ref, ZERO, p.tip) for p in local])
    if remote and remote_items:
        _delete_on_remote(repo, remote, prefix, base, remote_items)
    return result


def _delete_on_remote(repo: Repo, remote: str, prefix: str, base: str, items: list[Pruned]) -> None:
    branches = {f"refs/heads/{prefix}{p.ref.removeprefix(base)}": p for p in items}
    proc = repo.push(remote, [f":{ref}" for ref in branches],
                     leases={ref: p.tip for ref, p in branches.items()})
    if proc.returncode != 0:
        raise GitCommandFailed(f"could not delete {len(branches)} branch(es) on {remote}: "
                               f"{proc.stderr.strip() or proc.stdout.strip()}; the local ones are deleted, "
                               f"nothing on {remote} was (run `aevolve prune --remote {remote}` again)")
    for item in items:  # the remote-tracking copies follow, as `git fetch --prune` would
        if repo.ref_target(item.ref) == item.tip:
            repo.transaction([(item.ref, ZERO, item.tip)])


def _checked_out(repo: Repo) -> set[str]:
    found = {branch for _path, branch in (repo.worktrees() or []) if branch}
    head = repo.head_branch()
    return found | ({head} if head else set())


class _Judge:
    def __init__(self, repo: Repo, mains: list[str], notes: list[str], older_than: float | None):
        self.repo, self.mains, self.notes, self.older_than = repo, mains, notes, older_than

    def report(self, tip: str) -> dict | None:
        for notes in self.notes:
            report = parse_report(self.repo.note_at(notes, tip))
            if report is not None:
                return report
        return None

    def __call__(self, tip: str) -> str | None:
        """Why the branch at `tip` may go (None: keep it)."""
        if any(self.repo.is_ancestor(tip, main) for main in self.mains):
            return "promoted"
        report = self.report(tip)
        if report is not None and report.get("decision") == "reject":
            return "rejected"
        if self.older_than is not None:
            age = time.time() - self.repo.resolve(tip).commit_time
            if age > self.older_than * DAY:
                return "stale"
        return None

    def keep_reason(self, tip: str) -> str:
        report = self.report(tip)
        return "ungated" if report is None else str(report.get("decision", "ungated"))
