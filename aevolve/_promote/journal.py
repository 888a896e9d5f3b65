"""The promote journal: finishing a checkout update that a killed promotion left undone.

A branch and its checkouts cannot move in one step: the ref transaction moves
the ref, then `git read-tree -m -u OLD NEW` moves each checkout. A promotion
killed in between leaves the ref at NEW and the checkout at OLD: `git status`
shows the promotion reversed as staged changes, and a commit there would undo
it. So a promotion that has checkouts to update first writes this journal
(branch, OLD, NEW, the checkouts), atomically, and removes it once every
checkout followed. The next aevolve command that finds one calls `heal`, which
under the promote lock (so never beside a live promotion) finishes the update,
or drops the journal when the transaction never committed, or, when finishing
would overwrite uncommitted work, keeps it and says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aevolve._errors import StorageError
from aevolve._git.repo import Repo, short

NAME = "promote-journal.json"


@dataclass
class Journal:
    branch: str  # the full ref the promotion moves (refs/heads/main)
    old: str
    new: str
    checkouts: list[str]  # top folders of the worktrees that had `branch` checked out
    version: int = 1


@dataclass
class Healed:
    """What `heal` did: one line per thing finished, and what is left to do by hand."""

    branch: str | None = None
    messages: list[str] = field(default_factory=list)
    blocked: str | None = None  # the journal is kept; this says how to finish


def journal_path(repo: Repo) -> Path:
    # the common dir: a promotion started in a linked worktree is healed from any of them
    return repo.common_dir / "aevolve" / NAME


def pending(repo: Repo) -> bool:
    """Is there an unfinished promotion? One stat: every command asks."""
    return journal_path(repo).exists()


def write_journal(repo: Repo, journal: Journal) -> None:
    """Write the journal so that it is either absent or complete on disk (tmp, fsync, rename)."""
    path = journal_path(repo)
    tmp = path.with_name(f"{NAME}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(asdict(journal), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:  # no journal, no move: the ref must not go where we could not heal it
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "read-only or not writable"
        raise StorageError(f"cannot write {path}: {what} ({exc.strerror or exc}); nothing was promoted. "
                           f"Free space or make {path.parent} writable, then retry", path) from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clear_journal(repo: Repo) -> None:
    journal_path(repo).unlink(missing_ok=True)


def read_journal(repo: Repo) -> Journal | None:
    """The journal, or None when there is none (or it is not one: written by hand)."""
    try:
        data = json.loads(journal_path(repo).read_text(encoding="utf-8"))
        return Journal(branch=data["branch"], old=data["old"], new=data["new"],
                       checkouts=[str(p) for p in data["checkouts"]])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def heal(repo: Repo) -> Healed:
    """Finish (or drop) an interrupted promotion's checkout update; see the module doc."""
    if not pending(repo):
        return Healed()
    with repo.lock("promote"):  # a live promotion holds it while its journal exists
        journal = read_journal(repo)
        if journal is None:
            if pending(repo):
                clear_journal(repo)
                return Healed(messages=[f"removed {journal_path(repo)}: it is not a promote journal"])
            return Healed()
        return _heal(repo, journal)


def _heal(repo: Repo, journal: Journal) -> Healed:
    from aevolve._promote.worktree import finish_update

    name = journal.branch.removeprefix("refs/heads/")
    done = Healed(branch=journal.branch)
    current = repo.ref_target(journal.branch)
    if current != journal.new:
        clear_journal(repo)
        if current == journal.old:
            done.messages.append(f"a promotion of {name} was interrupted before {name} moved; "
                                 "nothing to finish")
        else:
            done.messages.append(
                f"a promotion interrupted after moving {name} to {short(journal.new)} could not be finished: "
                f"{name} has moved on to {short(current or '?')} since; check `git status` in "
                + ", ".join(journal.checkouts))
        return done
    problems = []
    for folder in map(Path, journal.checkouts):
        outcome = finish_update(folder, journal.branch, journal.old, journal.new)
        if outcome.updated:
            done.messages.append(f"finished an interrupted promotion: checkout {folder} updated "
                                 f"{short(journal.old)} -> {short(journal.new)} ({name})")
        elif outcome.problem:
            problems.append(outcome.problem)
    if problems:
        done.blocked = (f"a promotion moved {name} {short(journal.old)} -> {short(journal.new)} but was "
                        "interrupted before its checkouts followed; " + "; ".join(problems))
    else:
        clear_journal(repo)
    return done
