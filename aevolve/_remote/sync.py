"""`aevolve sync [REMOTE]`: bring the remote's work into this clone, losing nothing.

1. Configure what `aevolve init` would (drivers, refspecs): a fresh clone needs
   nothing else, and nothing is committed.
2. Fetch main, the evolution branches, the gate and approval notes and the
   observations into remote-tracking copies (`fetch.py`).
3. Merge the notes (gate notes, approvals, display lines, shared runs) and the
   observations into the local refs (a union, each ref moved by compare-and-swap;
   `notes_merge.py`, `observations_merge.py`).
4. Fast-forward the local main to the remote's when the local one holds nothing
   unpublished (a checkout of main follows, as promotion moves it); otherwise
   leave it and say exactly which local commits are unpublished.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from aevolve._errors import DirtyCheckout, RefMoved
from aevolve._gate.shared_runs import RUNS_REF
from aevolve._git.notes import LOG_REF
from aevolve._git.reader import GitReader
from aevolve._git.repo import APPROVALS_REF, NOTES_REF, Repo
from aevolve._remote.fetch import Fetched, check_remote, default_remote, fetch
from aevolve._remote.notes_merge import LogPick, NotesMerge, ReportPick, approvals_pick, merge_notes, runs_pick
from aevolve._remote.observations_merge import ObservationsMerge, merge_observations

MAIN_ATTEMPTS = 5


@dataclass
class MainSync:
    ref: str
    old: str | None = None  # the local main before
    new: str | None = None  # the local main after
    remote: str | None = None  # the remote's main
    # up-to-date, fast-forward, created, ahead, diverged, blocked (a checkout would lose work),
    # no-remote-main
    state: str = "no-remote-main"
    unpublished: list[dict] = field(default_factory=list)  # {"commit", "subject"}: local only, oldest last
    behind: int = 0  # remote commits this main lacks (diverged)
    checkouts: list[str] = field(default_factory=list)  # checkouts moved with main
    message: str = ""  # why main did not move (blocked)

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SyncResult:
    remote: str
    main: MainSync
    notes: NotesMerge
    approvals: NotesMerge
    observations: ObservationsMerge
    configured: list[str] = field(default_factory=list)  # "key = value" lines written to .git/config
    branches: list[str] = field(default_factory=list)  # the remote's evolution branches (remote-tracking refs)
    log: NotesMerge | None = None  # the display notes (refs/notes/aevolve-log)
    runs: NotesMerge | None = None  # the shared run results (refs/notes/aevolve-runs)

    @property
    def changed(self) -> bool:
        """Did any local ref or setting change?"""
        parts: list[MainSync | NotesMerge | ObservationsMerge] = [self.main, self.notes, self.approvals,
                                                                 self.observations, *([self.log] if self.log else []),
                                                                 *([self.runs] if self.runs else [])]
        return bool(self.configured) or any(part.changed for part in parts)

    def to_dict(self) -> dict:
        return {"remote": self.remote, "changed": self.changed, "configured": self.configured,
                "main": self.main.to_dict(), "notes": self.notes.to_dict(), "approvals": self.approvals.to_dict(),
                "observations": self.observations.to_dict(), "branches": self.branches,
                "log": self.log.to_dict() if self.log else None,
                "runs": self.runs.to_dict() if self.runs else None}


def sync(repo: Repo, remote: str | None = None, *, main: str = "main") -> SyncResult:
    """Fetch `remote` (default: main's upstream, else origin) and merge it in (module doc).

    Never drops a local commit, note or observation. Raises UsageError (no such
    remote), GitCommandFailed (the fetch failed: nothing changed), RefMoved (a
    ref kept moving under a merge).
    """
    from aevolve._state.gitsetup import setup, tracking_ref

    main_ref = main if main.startswith("refs/") else f"refs/heads/{main}"
    name = remote or default_remote(repo, main_ref)
    check_remote(repo, name)
    configured = setup(repo, attributes=False).config
    fetched = fetch(repo, name, main_ref)
    with GitReader(repo) as reader:
        notes = merge_notes(repo, NOTES_REF, fetched.notes, ReportPick(reader, fetched.main))
        log = merge_notes(repo, LOG_REF, fetched.log, LogPick(reader, fetched.main))
    approvals = merge_notes(repo, APPROVALS_REF, fetched.approvals, approvals_pick)
    runs = merge_notes(repo, RUNS_REF, repo.ref_target(tracking_ref(name, RUNS_REF)), runs_pick,
                       deletions_stick=True)  # what gc pruned here stays pruned
    observations = merge_observations(repo, fetched.observations)
    return SyncResult(name, _sync_main(repo, main_ref, fetched), notes, approvals, observations,
                      configured, sorted(fetched.branches), log, runs)


def merge_fetched_notes(repo: Repo) -> list[NotesMerge]:
    """Merge the notes a plain `git fetch` brought (every remote's tracking copies) into
    the local ones, without the network: `promote --no-regate` and the hooks then read
    the same verdicts. The changed merges."""
    from aevolve._state.gitsetup import tracking_ref

    out = []
    with GitReader(repo) as reader:
        for remote in repo.remotes():
            remote_main = repo.ref_target(f"refs/remotes/{remote}/main")
            for ref, pick in ((NOTES_REF, ReportPick(reader, remote_main)), (LOG_REF, LogPick(reader, remote_main)),
                              (APPROVALS_REF, approvals_pick), (RUNS_REF, runs_pick)):
                tip = repo.ref_target(tracking_ref(remote, ref))
                if tip is not None:
                    merged = merge_notes(repo, ref, tip, pick, deletions_stick=ref == RUNS_REF)
                    if merged.changed:
                        out.append(merged)
    return out


def _sync_main(repo: Repo, main_ref: str, fetched: Fetched) -> MainSync:
    for _ in range(MAIN_ATTEMPTS):
        try:
            return _sync_main_once(repo, main_ref, fetched.main)
        except RefMoved:
            continue  # a promotion moved main meanwhile: look again
    raise RefMoved(f"{main_ref} kept moving during the sync; the notes and observations are merged, "
                   "run `aevolve sync` again for main")


def _sync_main_once(repo: Repo, main_ref: str, theirs: str | None) -> MainSync:
    ours = repo.ref_target(main_ref)
    result = MainSync(main_ref, ours, ours, theirs)
    if theirs is None:
        return result
    if ours == theirs:
        result.state = "up-to-date"
    elif ours is None:
        _create_main(repo, main_ref, theirs, result)
    elif repo.is_ancestor(ours, theirs):
        _fast_forward(repo, main_ref, ours, theirs, result)
    else:
        result.unpublished = _commits(repo, ours, theirs)
        if repo.is_ancestor(theirs, ours):
            result.state = "ahead"
        else:
            result.state, result.behind = "diverged", sum(1 for _ in repo.commits(theirs, hide=ours))
    return result


def _create_main(repo: Repo, main_ref: str, theirs: str, result: MainSync) -> None:
    from aevolve._promote.worktree import checkouts_of

    if checkouts_of(repo, main_ref):  # an unborn main checked out: its files are the user's
        result.state = "blocked"
        result.message = (f"{main_ref.removeprefix('refs/heads/')} is checked out but has no commit yet; "
                          f"`git reset --keep {theirs[:12]}` there adopts the remote's")
        return
    repo.update_ref(main_ref, theirs, None)
    result.new, result.state = theirs, "created"


def _fast_forward(repo: Repo, main_ref: str, ours: str, theirs: str, result: MainSync) -> None:
    """Move main OURS -> THEIRS and every checkout of it, as promotion does."""
    from aevolve._promote.worktree import check_checkouts, update_checkouts

    with repo.lock("promote"):
        if repo.ref_target(main_ref) != ours:
            raise RefMoved(f"{main_ref} moved")
        try:
            checkouts = check_checkouts(repo, main_ref, ours, theirs)
        except DirtyCheckout as exc:
            result.state, result.message = "blocked", str(exc)
            return
        repo.update_ref(main_ref, theirs, ours)
        result.new, result.state = theirs, "fast-forward"
        result.checkouts = [str(p) for p in update_checkouts(checkouts, ours, theirs)]


def _commits(repo: Repo, tip: str, hide: str) -> list[dict]:
    """The commits of `tip` that `hide` lacks, newest first."""
    return [{"commit": str(c.id), "subject": (c.message.splitlines() or ["?"])[0][:72]}
            for c in repo.commits(tip, hide=hide)]
