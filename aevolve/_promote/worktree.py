"""Keep checkouts of a branch in step when aevolve moves that branch's ref.

`git update-ref` moves a ref but not a checkout that has the branch checked out:
its index and files would silently fall behind (and `git status` would show
the promotion reversed). Promotion therefore updates every worktree that has
`main` checked out exactly as `git merge --ff-only` would, using git's own
two-tree merge (`git read-tree -m -u OLD NEW`): only paths that differ between
OLD and NEW are touched, unrelated local changes stay, and work that would be
overwritten makes it refuse.

The check (`check_checkouts`) runs before any ref moves; the update
(`update_checkouts`) runs after the ref transaction succeeded.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from aevolve._errors import CheckoutNotUpdated, DirtyCheckout
from aevolve._git.repo import held_lock, run_git, storage_error

# Variables that would point git at another repository or index than the worktree's own.
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")


@dataclass(frozen=True)
class Checkout:
    path: Path  # the worktree's top folder


def checkouts_of(repo, branch_ref: str) -> list[Checkout]:
    """Every non-bare worktree (the main one and linked ones) with `branch_ref` checked out."""
    if repo.workdir is None and not (repo.git_dir / "worktrees").is_dir():
        return []  # a bare repository without linked worktrees
    listed = repo.worktrees()
    if listed is None:  # very old git: only the main worktree
        if repo.workdir is not None and _head_ref(repo) == branch_ref:
            return [Checkout(repo.workdir)]
        return []
    return [Checkout(path) for path, branch in listed if branch == branch_ref]


def _head_ref(repo) -> str | None:
    return None if repo.head_is_unborn else repo.head_branch()


def _git(worktree: Path, args: list[str], input: str | None = None) -> subprocess.CompletedProcess:
    return run_git(["--literal-pathspecs", "-C", str(worktree), *args], check=False, unset=_GIT_ENV, input=input)


def _refresh(worktree: Path) -> None:
    """Refresh the index's stat data (a touched file is no change); a full disk or a
    read-only .git would otherwise pass for uncommitted changes."""
    proc = _git(worktree, ["update-index", "-q", "--refresh"])
    error = storage_error(proc.stderr, worktree) if proc.returncode != 0 else None
    if error is not None:
        raise error


def _z(text: str) -> list[str]:
    return [p for p in text.split("\0") if p]


def blocking_files(worktree: Path, old: str, new: str) -> list[str]:
    """Paths whose uncommitted state a fast-forward OLD -> NEW would overwrite."""
    changed = _z(_git(worktree, ["diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new]).stdout)
    if not changed:
        return []
    wanted = set(changed)
    # Index or files differ from OLD (staged or not) on a path that will change.
    dirty = set()
    for cached in ([], ["--cached"]):
        args = ["diff-index", *cached, "-z", "--name-only", "--no-renames", old, "--", *changed]
        dirty |= set(_z(_git(worktree, args).stdout))
    # Untracked files where NEW puts a file.
    untracked = set(_z(_git(worktree, ["ls-files", "-z", "--others", "--", *changed]).stdout))
    return sorted((dirty | untracked) & wanted)


def check_checkouts(repo, branch_ref: str, old: str, new: str) -> list[Checkout]:
    """Refuse (DirtyCheckout, nothing changed) when moving `branch_ref` OLD -> NEW
    would overwrite uncommitted work in a checkout of it; returns the checkouts."""
    found = checkouts_of(repo, branch_ref)
    for checkout in found:
        # Stat-only differences (a file touched, or restored) are not changes; git
        # merge refreshes the index too, read-tree alone would call them dirty.
        _refresh(checkout.path)
        # git's own dry run is the authority; our listing only names the files.
        dry = _git(checkout.path, ["read-tree", "-m", "-u", "-n", old, new])
        files = blocking_files(checkout.path, old, new)
        if dry.returncode != 0 or files:
            shown = ", ".join(files) if files else dry.stderr.strip()
            raise DirtyCheckout(
                f"{branch_ref.removeprefix('refs/heads/')} is checked out in {checkout.path} and "
                f"moving it would overwrite uncommitted changes in: {shown}. "
                "Commit, stash or discard them, then retry; nothing was changed.",
                checkout.path,
                files,
            )
    return found


def update_checkouts(checkouts: list[Checkout], old: str, new: str) -> list[Path]:
    """Bring each checkout from OLD to NEW as `git merge --ff-only` would."""
    updated: list[tuple[Path, str]] = []
    failed: list[tuple[Path, str]] = []
    for checkout in checkouts:
        _git(checkout.path, ["update-index", "-q", "--refresh"])  # the refs moved: report, never stop here
        proc = _git(checkout.path, ["read-tree", "-m", "-u", old, new])
        (updated if proc.returncode == 0 else failed).append((checkout.path, proc.stderr.strip()))
    if failed:
        where = "; ".join(f"{path}: {err}" for path, err in failed)
        raise CheckoutNotUpdated(
            f"the branch moved to {new[:12]}, but a checkout could not follow (it changed meanwhile, or its "
            f"disk is full or read-only: {where}). After saving your changes (or making room) run any aevolve "
            f"command to finish (or `git read-tree -m -u {old[:12]} {new[:12]}` there)."
        )
    return [path for path, _ in updated]


@dataclass(frozen=True)
class Finished:
    updated: bool = False  # the checkout was moved OLD -> NEW now
    problem: str | None = None  # it could not be: what to do


def finish_update(folder: Path, branch_ref: str, old: str, new: str) -> Finished:
    """Bring a checkout that a killed promotion left at OLD to NEW (the branch is at
    NEW already), keeping local changes as `update_checkouts` does. Nothing to do when
    the checkout is gone, is on another branch now, or is at NEW already."""
    if not folder.is_dir() or _git(folder, ["symbolic-ref", "-q", "HEAD"]).stdout.strip() != branch_ref:
        return Finished()
    changed = _z(_git(folder, ["diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new]).stdout)
    if not changed:
        return Finished()
    _refresh(folder)
    at_new = _git(folder, ["diff-index", "--cached", "--quiet", "--no-renames", new, "--", *changed])
    if at_new.returncode == 0:
        return Finished()  # updated before the kill, or by hand
    _adopt_written(folder, old, new, changed)
    proc = _git(folder, ["read-tree", "-m", "-u", old, new])
    if proc.returncode == 0:
        return Finished(updated=True)
    return Finished(problem=_how_to_finish(folder, old, new, proc.stderr))


def _adopt_written(folder: Path, old: str, new: str, changed: list[str]) -> None:
    """A promotion killed inside `read-tree` wrote some of NEW's files but not the index:
    stage each path whose index entry is still OLD's and whose file is already NEW's, so
    that the two-tree merge does not take it for a local change."""
    staged = set(_z(_git(folder, ["diff-index", "--cached", "-z", "--name-only", "--no-renames", old, "--",
                                  *changed]).stdout))
    paths = [p for p in changed if p not in staged and "\n" not in p]
    wanted: dict[str, str] = {}
    for record in _z(_git(folder, ["ls-tree", "-r", "-z", new, "--", *paths]).stdout):
        meta, _, path = record.partition("\t")
        wanted[path] = meta.split()[2]
    on_disk = [p for p in paths if (folder / p).is_file()]
    hashed = _git(folder, ["hash-object", "--stdin-paths"], input="".join(p + "\n" for p in on_disk))
    found = dict(zip(on_disk, hashed.stdout.split(), strict=False)) if hashed.returncode == 0 else {}
    adopt = [p for p in paths if found.get(p) == wanted.get(p) and (p in found or not (folder / p).exists())]
    if adopt:
        _git(folder, ["update-index", "--add", "--remove", "-z", "--stdin"], input="".join(p + "\0" for p in adopt))


def _how_to_finish(folder: Path, old: str, new: str, said: str) -> str:
    said = "; ".join(line.strip() for line in said.strip().splitlines() if line.strip())
    lock = held_lock(said)
    if lock is not None:
        return (f"{lock} exists, so {folder} could not be updated: make sure no git process is running there, "
                f"remove the file (rm '{lock}'), then run any aevolve command to finish")
    return (f"{folder} could not be updated without overwriting uncommitted changes ({said}): save or discard "
            f"them, then run any aevolve command to finish (or `git -C {folder} read-tree -m -u {old} {new}`)")
