"""Running a hook as git calls it: the user's own hook first, then aevolve's check."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

from aevolve._errors import UsageError
from aevolve._git.repo import Repo
from aevolve._hooks.install import ALL_HOOKS, _executable
from aevolve._hooks.outcome import HookOutcome


def run(repo: Repo, name: str, args: list[str], stdin: str) -> HookOutcome:
    """aevolve's check for hook `name`, given git's arguments and stdin."""
    if name == "pre-receive":
        from aevolve._hooks.server import pre_receive

        return pre_receive(repo, stdin)
    from aevolve._hooks import client

    if name == "pre-commit":
        return client.pre_commit(repo)
    if name == "commit-msg":
        return client.commit_msg(repo, args[0])
    if name == "pre-push":
        return client.pre_push(repo, args[0] if args else "", stdin)
    raise UsageError(f"unknown hook {name!r}; aevolve runs {', '.join(ALL_HOOKS)}")


def run_chained(chain: str | None, args: list[str], stdin: bytes | None) -> int:
    """Run the user's own hook (<name>.local) first, as git would run a hook."""
    if not chain or not _executable(Path(chain)):
        return 0
    try:
        return subprocess.run([chain, *args], input=stdin).returncode
    except OSError as exc:
        if exc.errno != errno.ENOEXEC:  # git also falls back to sh for a script without #!
            raise
        return subprocess.run(["/bin/sh", chain, *args], input=stdin).returncode
