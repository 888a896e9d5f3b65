"""`git status` started before the command that waits for it is even imported.

A warm `aevolve validate` of a large work tree is mostly the wait for `git
status` (the untracked-file scan alone is ~80 ms at 10,000 skills) and Python
importing the command line. The entry point (`aevolve/_main.py`) starts the
status at once for the one command that needs it, so the two overlap;
`Repo.start_status` takes that process instead of starting its own when it
runs in the same folder. A process nobody took is killed at exit, and one
started before a heal that touched the work tree is discarded (`discard`).
"""

from __future__ import annotations

import os
import subprocess

STATUS = ["--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
          "--ignore-submodules=all"]

_started: dict[str, subprocess.Popen] = {}  # real path of the folder it runs in -> the status process


def prefetch(argv: list[str]) -> None:
    """Start `git status` when `argv` is a validate of the work tree (`[-C PATH] validate [--json|--no-cache]`)."""
    folder, args = ".", list(argv)
    if len(args) >= 2 and args[0] == "-C":
        folder, args = args[1], args[2:]
    if args[:1] == ["validate"] and set(args[1:]) <= {"--json", "--no-cache"}:
        try:
            _started[os.path.realpath(folder)] = subprocess.Popen(
                ["git", *STATUS], cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        except OSError:
            pass  # no such folder, no git: the command itself says so


def take(folder: str | os.PathLike | None) -> subprocess.Popen | None:
    """The status started early in `folder`, once; None when there is none."""
    return _started.pop(os.path.realpath(folder), None) if folder is not None else None


def discard() -> None:
    """Stop every status nobody took (the command failed early, or a heal changed files)."""
    while _started:
        _, proc = _started.popitem()
        proc.kill()
        proc.communicate()
