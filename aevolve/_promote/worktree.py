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
from aevolve._git.repo import run_git

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


def _git(worktree: Path, args: list[str]) -> subprocess.CompletedProcess:
    return run_git(["--literal-pathspecs", "-C", str(worktree), *args], check=False, unset=_GIT_ENV)


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
        _git(checkout.path, ["update-index", "-q", "--refresh"])
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
        _git(checkout.path, ["update-index", "-q", "--refresh"])
        proc = _git(checkout.path, ["read-tree", "-m", "-u", old, new])
        (updated if proc.returncode == 0 else failed).append((checkout.path, proc.stderr.strip()))
    if failed:
        where = "; ".join(f"{path}: {err}" for path, err in failed)
        raise CheckoutNotUpdated(
            f"the branch moved to {new[:12]}, but a checkout changed meanwhile and was not updated ({where}). "
            f"After saving your changes run `git read-tree -m -u {old[:12]} {new[:12]}` there."
        )
    return [path for path, _ in updated]
