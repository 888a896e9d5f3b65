"""Errors a user can act on, and the one table that turns them into exit codes.

Every failure aevolve reports is one of these exceptions; `aevolve.cli` catches
them in a single place and exits with `exit_code`.
"""

from __future__ import annotations

from pathlib import Path

# Exit codes (also in docs/exit-codes.md). 0/1/2/100 follow promptfoo's gate codes.
OK = 0
ERROR = 1  # something failed (also: `validate` found errors)
USAGE = 2  # the command line is wrong
INVALID_INPUT = 3  # a file given to aevolve is malformed or breaks its schema
POLICY_REFUSED = 4  # a proposal broke the policy; nothing was written
EVOLVER_FAILED = 5  # the evolver failed or answered garbage; nothing was written
CONFLICT = 6  # another process won a race, or a checkout is dirty; retry or resolve
STORAGE = 7  # the repository cannot be written: a stale lock, a read-only folder, a full disk
GATE_REJECTED = 100  # the gate ran and said no


class AevolveError(Exception):
    """Base class: `str(error)` is the message shown to the user."""

    exit_code = ERROR


class UsageError(AevolveError):
    exit_code = USAGE


class InvalidInput(AevolveError):
    """A file is malformed or violates its schema; says which file and line."""

    exit_code = INVALID_INPUT

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class NotARepository(AevolveError):
    pass


class RefNotFound(AevolveError):
    pass


class AmbiguousRef(AevolveError):
    """A short name names several refs (a tag and a branch both called main)."""

    exit_code = USAGE


class GitCommandFailed(AevolveError):
    pass


class Conflict(AevolveError):
    """A compare-and-swap lost, a lock is held, or work would be overwritten."""

    exit_code = CONFLICT


class RefMoved(Conflict):
    pass


class LockBusy(Conflict):
    pass


class StorageError(AevolveError):
    """The repository or disk cannot be written (read-only, full, no permission).

    Never contention: the message names the path and what to do about it.
    """

    exit_code = STORAGE

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(message)


class StaleLock(StorageError):
    """A `.lock` file left by a process that died; git's own advice applies."""


class PolicyRefused(AevolveError):
    exit_code = POLICY_REFUSED

    def __init__(self, violations: list[str]):
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"proposal refused by policy; nothing was written:\n{lines}")


class EvolverFailed(AevolveError):
    exit_code = EVOLVER_FAILED


class PatchDoesNotApply(EvolverFailed):
    """`git apply --check` refused a diff; the message is git's own."""


class GateRejected(AevolveError):
    exit_code = GATE_REJECTED


class GateError(AevolveError):
    """The gate could not judge: a dead runner, no cases, an assertion that cannot
    be evaluated. Fails closed: nothing is accepted, `main` does not move."""


class SigningError(AevolveError):
    """A signature could not be made or checked (no key, ssh-keygen failed)."""


class FileError(AevolveError):
    """A state file that cannot be read as its format: says file and line."""

    exit_code = INVALID_INPUT

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path, self.line, self.detail = path, line, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")



class MergeConflict(Conflict):
    """Both sides changed the same thing differently; `files` names where."""

    def __init__(self, message: str, files: list[str], details: list[str] | None = None):
        self.files = list(files)
        self.details = list(details or [])
        lines = "".join(f"\n  - {d}" for d in self.details)
        super().__init__(message + lines)


class DirtyCheckout(Conflict):
    """Moving the branch would overwrite uncommitted work; `files` names it."""

    def __init__(self, message: str, worktree: Path, files: list[str]):
        self.worktree = worktree
        self.files = list(files)
        super().__init__(message)


class CheckoutNotUpdated(AevolveError):
    """The ref moved, but a checkout could not follow (it changed in between)."""


class NotGated(AevolveError):
    """The candidate has no accepting gate note and gating was not allowed."""


class AssertionSetupError(Exception):
    """The assertion itself is broken (bad regex, missing check function...)."""
