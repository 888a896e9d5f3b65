"""Publishing to a remote: `promote --push` and `propose --push`.

`publish_promotion` syncs, promotes onto a private copy of the remote's main
(`refs/aevolve-publish/<pid>`: the local main never has to move back when the
push loses), then sends main, the gate notes, the display notes, the approvals
and the evolution branch in one `git push --atomic` (the branch with
`--force-with-lease`: a rebase rewrote it, and a pull request must show it as
merged). When someone else pushed first, it syncs, rebases, gates again and
retries, up to `attempts` times. Only after the push landed does the local
main fast-forward (a checkout of it follows, as `aevolve sync` moves it).

`publish_proposal` pushes a new evolution branch and the observations it
cites, merged with the remote's first.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aevolve._errors import AevolveError, Conflict, GitCommandFailed
from aevolve._git.notes import LOG_REF
from aevolve._git.repo import APPROVALS_REF, NOTES_REF, OBSERVATIONS_REF, ZERO, Repo
from aevolve._remote.fetch import check_remote, default_remote

if TYPE_CHECKING:
    from aevolve._promote.promote import PromoteResult

ATTEMPTS = 10  # pushes lost to a teammate who pushed first (each loss means one more landed)
PROPOSE_ATTEMPTS = 5
BACKOFF, BACKOFF_CAP = 0.75, 4.0  # seconds: the random wait after a lost push grows with the losses
# git's words for "the remote moved since we looked": sync and try again
RACE_REASONS = ("fetch first", "non-fast-forward", "stale info", "failed to update ref", "failed to lock",
                "cannot lock", "incorrect old value", "reference already exists", "but expected",
                "atomic transaction failed")


@dataclass
class PushOutcome:
    ok: bool
    race: bool  # refused only because the remote moved meanwhile
    refused: list[str] = field(default_factory=list)  # "ref: reason" for each refused ref
    remote_said: list[str] = field(default_factory=list)  # the server's (hook's) lines

    @property
    def summary(self) -> str:
        return "; ".join(self.refused) or "the push failed"


@dataclass
class PublishResult:
    remote: str
    promotion: PromoteResult  # the promotion of the attempt that landed
    pushed: list[str]  # the refs the push published
    attempts: int  # pushes tried (1: the first one landed)
    losses: list[str] = field(default_factory=list)  # why the earlier attempts were refused
    main_state: str = ""  # the local main afterwards: fast-forward, up-to-date, blocked ...
    main_message: str = ""
    checkouts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        promotion = self.promotion.to_dict()
        return {"remote": self.remote, "published": bool(self.pushed), "pushed": self.pushed,
                "attempts": self.attempts, "losses": self.losses, "local_main": self.main_state,
                "local_main_message": self.main_message, "checkouts": self.checkouts, "promotion": promotion}


def publish_promotion(repo: Repo, branch: str, remote: str | None = None, *, main: str = "main",
                      regate: bool = True, attempts: int = ATTEMPTS) -> PublishResult:
    """Sync, promote `branch` onto the remote's main and publish it in one atomic push
    (module doc). Raises what `promote` raises (GateRejected, NotGated, Conflict ...),
    Conflict (exit 6) when the local main diverged from the remote's or every attempt
    lost the race, GitCommandFailed when the server refused the push for another reason.
    """
    from aevolve._remote.sync import sync

    main_ref = main if main.startswith("refs/") else f"refs/heads/{main}"
    name = remote or default_remote(repo, main_ref)
    check_remote(repo, name)
    losses: list[str] = []
    for attempt in range(1, attempts + 1):
        synced = sync(repo, name, main=main)
        start = _start(repo, main_ref, synced.main, name)
        _adopt_remote_branch(repo, branch, name)
        promoted, outcome, pushed = _promote_and_push(repo, branch, name, main_ref, start, regate,
                                                      synced.main.remote)
        if outcome is None or outcome.ok:
            result = PublishResult(name, promoted, pushed, attempt, losses)
            _follow(repo, main_ref, promoted.new, result)
            return result
        if not outcome.race:
            raise GitCommandFailed(f"{name} refused the push of {main_ref.removeprefix('refs/heads/')} "
                                   f"({outcome.summary}); nothing was published:"
                                   + "".join(f"\n  {line}" for line in outcome.remote_said))
        losses.append(outcome.summary)
        # back off with jitter: the teammates who lost with us would otherwise gate again in lockstep,
        # and all but one of them lose again
        time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF * attempt)))
    raise Conflict(f"someone else pushed to {name} first {attempts} times in a row; {branch} was promoted "
                   f"locally each time but not published (last refusal: {losses[-1] if losses else '?'}). "
                   f"Run `aevolve promote {branch} --push {name}` again")


def _start(repo: Repo, main_ref: str, synced, remote: str) -> str:
    """The main to promote onto: the local main once the sync brought it up to date (it
    may hold gated commits not yet published), else the remote's."""
    name = main_ref.removeprefix("refs/heads/")
    if synced.state == "diverged":
        raise Conflict(f"{name} diverged from {remote}/{name} ({len(synced.unpublished)} local commit(s) not "
                       f"there); `aevolve sync {remote}` says which and how to keep them; nothing was promoted")
    if synced.state == "blocked" and synced.remote:
        return synced.remote  # the checkout could not follow: publish on top of the remote's main anyway
    tip = repo.ref_target(main_ref) or synced.remote
    if tip is None:
        raise AevolveError(f"neither this clone nor {remote} has a {name}; nothing to promote onto")
    return tip


def _adopt_remote_branch(repo: Repo, branch: str, remote: str) -> None:
    """A teammate's branch known only as `remote/branch`: make the local branch, as
    `git switch BRANCH` would, so the rebase moves it and the push updates it."""
    if branch.startswith("refs/") or repo.ref_target(f"refs/heads/{branch}") is not None:
        return
    tracking = repo.ref_target(f"refs/remotes/{remote}/{branch}")
    if tracking is not None:
        repo.update_ref(f"refs/heads/{branch}", tracking, None)


def _promote_and_push(repo: Repo, branch: str, remote: str, main_ref: str, start: str, regate: bool,
                      remote_main: str | None):
    """(PromoteResult, PushOutcome or None when there was nothing to push, pushed refs)."""
    from aevolve._promote.promote import promote

    stage = f"refs/aevolve-publish/{os.getpid()}"
    if repo.ref_target(stage) is not None:
        repo.transaction([(stage, ZERO, repo.ref_target(stage))])
    repo.update_ref(stage, start, None)
    try:
        promoted = promote(repo, branch, main=stage, regate=regate, shown_as=main_ref.removeprefix("refs/heads/"))
        if promoted.new == remote_main:
            return promoted, None, []  # already on the remote's main: nothing to publish
        specs = [f"{stage}:{main_ref}", *(f"{ref}:{ref}" for ref in (NOTES_REF, LOG_REF, APPROVALS_REF)
                                          if repo.ref_target(ref) is not None)]
        leases = {}
        if promoted.branch is not None:
            specs.append(f"{promoted.branch}:{promoted.branch}")
            tracking = f"refs/remotes/{remote}/{promoted.branch.removeprefix('refs/heads/')}"
            leases[promoted.branch] = repo.ref_target(tracking)
        outcome = push(repo, remote, specs, leases)
        return promoted, outcome, [spec.split(":")[1] for spec in specs] if outcome.ok else []
    finally:
        tip = repo.ref_target(stage)
        if tip is not None:
            repo.transaction([(stage, ZERO, tip)])


def _follow(repo: Repo, main_ref: str, published: str, result: PublishResult) -> None:
    """Fast-forward the local main to what landed (unless a checkout would lose work)."""
    from aevolve._remote.sync import _sync_main_once

    local = _sync_main_once(repo, main_ref, published)
    result.main_state, result.main_message, result.checkouts = local.state, local.message, local.checkouts


def push(repo: Repo, remote: str, specs: list[str], leases: dict[str, str | None] | None = None) -> PushOutcome:
    """One atomic push, read back per ref (`git push --porcelain`)."""
    proc = repo.push(remote, specs, leases=leases)
    if proc.returncode == 0:
        return PushOutcome(True, False)
    refused = []
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] == "!":
            refused.append(f"{parts[1].split(':')[-1]}: {parts[2]}")
    said = [line.removeprefix("remote: ") for line in proc.stderr.splitlines() if line.startswith("remote: ")]
    declined = any("hook declined" in r for r in refused)
    race = bool(refused) and not declined and any(word in r for r in refused for word in RACE_REASONS)
    if not refused:
        refused = [proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "git push failed"]
        said = said or proc.stderr.strip().splitlines()
    return PushOutcome(False, race, refused, said)


# -- propose --push ------------------------------------------------------------------------


def publish_proposal(repo: Repo, branch: str, remote: str | None = None, *, main: str = "main",
                     attempts: int = PROPOSE_ATTEMPTS) -> list[str]:
    """Push the evolution branch `branch` and the observations (merged with the remote's
    first, by a sync) in one atomic push; the refs pushed. Retries when the remote's
    observations moved meanwhile; GitCommandFailed when the server refused."""
    from aevolve._remote.sync import sync

    main_ref = main if main.startswith("refs/") else f"refs/heads/{main}"
    name = remote or default_remote(repo, main_ref)
    check_remote(repo, name)
    ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    outcome = PushOutcome(False, False)
    for _ in range(attempts):
        sync(repo, name, main=main)
        specs = [f"{ref}:{ref}"] + ([f"{OBSERVATIONS_REF}:{OBSERVATIONS_REF}"]
                                    if repo.ref_target(OBSERVATIONS_REF) is not None else [])
        outcome = push(repo, name, specs, {ref: repo.ref_target(f"refs/remotes/{name}/{branch}")})
        if outcome.ok:
            return [spec.split(":")[1] for spec in specs]
        if not outcome.race:
            break
    raise GitCommandFailed(f"{name} refused {ref.removeprefix('refs/heads/')} ({outcome.summary}); the branch "
                           "is here, unpublished" + "".join(f"\n  {line}" for line in outcome.remote_said))
