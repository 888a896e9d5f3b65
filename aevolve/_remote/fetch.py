"""Which remote a sync talks to, and the one `git fetch` that copies what it merges.

Everything lands in remote-tracking copies (`gitsetup.tracking_ref`), forced:
they mirror the remote. The local refs (main, the notes, the observations) are
never a fetch's destination; `aevolve sync` merges into them itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aevolve._errors import GitCommandFailed, UsageError
from aevolve._git.notes import LOG_REF
from aevolve._git.repo import APPROVALS_REF, NOTES_REF, OBSERVATIONS_REF, Repo
from aevolve._state.gitsetup import remote_refspecs, tracking_ref

DEFAULT_PREFIX = "evolve/"


@dataclass
class Fetched:
    """The remote's tips after the fetch (None: the remote has no such ref)."""

    remote: str
    main: str | None
    notes: str | None
    approvals: str | None
    observations: str | None
    log: str | None = None  # the display notes (one line per verdict and promotion)
    branches: dict[str, str] = field(default_factory=dict)  # remote-tracking evolution branch -> tip


def default_remote(repo: Repo, main_ref: str) -> str:
    """The remote `main` tracks (`branch.main.remote`), else `origin`."""
    name = main_ref.removeprefix("refs/heads/")
    upstream = repo.config_value(f"branch.{name}.remote")
    return upstream if upstream and upstream != "." else "origin"


def check_remote(repo: Repo, remote: str) -> None:
    if remote not in repo.remotes():
        known = ", ".join(repo.remotes()) or "none"
        raise UsageError(f"no remote named {remote!r} in {repo.workdir or repo.git_dir} (remotes: {known}); "
                         f"add it with `git remote add {remote} URL` or name another")


def branch_prefix(repo: Repo, main_ref: str) -> str:
    """The evolution branches' prefix (`hooks.branch_prefix` at main), when usable in a refspec."""
    from aevolve._trust.exam import read_config

    main = repo.ref_target(main_ref)
    if main is None:
        return DEFAULT_PREFIX
    tree = repo.tree(main)
    prefix = read_config(lambda path: repo.read(tree, path)).get("hooks", {}).get("branch_prefix")
    usable = isinstance(prefix, str) and prefix and not any(c in prefix for c in "*:^~?[\\ \t\n")
    return prefix if usable else DEFAULT_PREFIX


def refspecs(remote: str, main_ref: str, prefix: str) -> list[str]:
    return [
        f"+{main_ref}:{tracking_ref(remote, main_ref)}",
        f"+refs/heads/{prefix}*:{tracking_ref(remote, f'refs/heads/{prefix}*')}",
        *remote_refspecs(remote)["fetch"],
    ]


def fetch(repo: Repo, remote: str, main_ref: str) -> Fetched:
    """Fetch main, the evolution branches, the notes and aevolve's refs of `remote`."""
    prefix = branch_prefix(repo, main_ref)
    specs = refspecs(remote, main_ref, prefix)
    proc = _git_fetch(repo, remote, specs)
    if proc.returncode != 0 and "couldn't find remote ref" in proc.stderr:
        proc = _git_fetch(repo, remote, specs[1:])  # a remote without main yet (exact names must exist)
    if proc.returncode != 0:
        raise GitCommandFailed(f"could not fetch from {remote}: {proc.stderr.strip()}; nothing was changed "
                               "(check the remote's URL and your access: `git fetch` says the same)")
    tracking_branches = tracking_ref(remote, f"refs/heads/{prefix}")
    return Fetched(
        remote=remote,
        main=repo.ref_target(tracking_ref(remote, main_ref)),
        notes=repo.ref_target(tracking_ref(remote, NOTES_REF)),
        approvals=repo.ref_target(tracking_ref(remote, APPROVALS_REF)),
        observations=repo.ref_target(tracking_ref(remote, OBSERVATIONS_REF)),
        log=repo.ref_target(tracking_ref(remote, LOG_REF)),
        branches=repo.refs(tracking_branches),
    )


def _git_fetch(repo: Repo, remote: str, specs: list[str]):
    # One `git fetch`: transport, credentials and protocol are git's job.
    return repo.run_git(["fetch", "--quiet", "--no-tags", remote, *specs], check=False)
