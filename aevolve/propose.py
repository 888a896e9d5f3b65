"""snapshot -> evolver -> policy -> one commit on a new evolution branch.

The base commit is resolved once; the evolver sees the state at that commit,
the selected observations and the gate reports of earlier rejected proposals.
Its proposal is schema-checked and passes the policy in memory before any git
object is written; the commit is built from objects (never the user's index or
working tree) and the branch is created atomically, so a run that dies leaves
either no branch or a complete one.
"""

from __future__ import annotations

import os
import re
import secrets as _random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import schemas
from .api import callable_module
from .errors import AevolveError, EvolverFailed, PolicyRefused, RefMoved
from .evolvers.base import EvolveContext, Evolver, Proposal
from .policy import PolicyResult, evaluate
from .rationale import Rationale
from .repo import BLOB_EXECUTABLE, Repo
from .state import State

BRANCH_PREFIX = "refs/heads/evolve/"
HISTORY_LIMIT = 10
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class ProposeResult:
    branch: str | None = None  # e.g. "evolve/20250101-add-lessons-k2m9q7x1" (no refs/heads/)
    commit: str | None = None
    proposal: Proposal | None = None
    rationale: Rationale | None = None
    message: str = ""
    dry_run: bool = False
    nothing_to_do: bool = False
    reason: str = ""
    base: str = ""
    summary: list[str] = field(default_factory=list)  # one line per changed file

    def to_dict(self) -> dict:
        r = self.rationale
        return {
            "branch": self.branch,
            "commit": self.commit,
            "base": self.base,
            "dry_run": self.dry_run,
            "nothing_to_do": self.nothing_to_do,
            "reason": self.reason or None,
            "proposal": self.proposal.to_dict() if self.proposal else None,
            "rationale": None if r is None else {
                "title": r.title, "layer": r.layer, "diagnosis": r.diagnosis, "change": r.change,
                "expected_effect": r.expected_effect, "evidence": r.evidence,
                "proposal_id": r.proposal_id, "evolver": r.evolver, "base": r.base,
            },
            "message": self.message or None,
            "summary": self.summary,
            "usage": (self.proposal.usage or None) if self.proposal else None,
        }


def _pause(stage: str) -> None:
    """Test hook: stop at a named stage so a test can kill the process there."""
    if os.environ.get("AEVOLVE_TEST_PAUSE_AT") == stage:
        print(f"aevolve-test-pause {stage}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("AEVOLVE_TEST_PAUSE_SECONDS", "60")))


def new_proposal_id() -> str:
    return "p-" + "".join(_random.choice(_BASE36) for _ in range(8))


def slugify(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or "change"


def rejected_history(repo: Repo, limit: int = HISTORY_LIMIT) -> list[dict]:
    """Gate reports of rejected evolve/* branch tips, newest first.

    Each entry is the report itself plus `branch`, `commit` and `title`.
    """
    from .notes import read_gate_report
    from .rationale import parse

    found = []
    for name, target in repo.refs(BRANCH_PREFIX).items():
        report = read_gate_report(repo, target)
        if report is None or report.get("decision") == "accept":
            continue
        commit = repo.git[target]
        rationale = parse(commit.message)
        found.append((commit.commit_time, name, {
            **report, "branch": name.removeprefix("refs/heads/"), "commit": target,
            "title": rationale.title if rationale else commit.message.splitlines()[0],
        }))
    found.sort(key=lambda item: (-item[0], item[1]))
    return [entry for _, _, entry in found[:limit]]


def _resolve_evolver(evolver, options: dict | None, config: dict) -> Evolver:
    from . import evolvers

    if evolver is None:
        evolver = config.get("evolver", {}).get("default") or "rules"
    if isinstance(evolver, str):
        return evolvers.get(evolver, **(options or {}))
    if options:
        raise AevolveError("evolver_options apply only when the evolver is given by name")
    return evolver


def propose(
    repo: Repo | str | Path,
    *,
    evolver: str | Evolver | None = "rules",
    base: str = "main",
    observation_ids=None,
    evolver_options: dict | None = None,
    dry_run: bool = False,
    seed: int = 0,
    focus: str | None = None,
    temperature: float | None = None,
    history: list[dict] | None = None,
) -> ProposeResult:
    """Run an evolver on `base` and commit its proposal on a new evolve/* branch.

    `evolver=None` uses aevolve.yaml's `evolver.default`. Returns a result with
    `nothing_to_do` set (and `reason`) when the evolver found nothing to change.
    """
    from .observations import load_observations

    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    base_commit = str(repo.resolve(base).id)  # resolved once: everything builds on it
    state = State.from_tree(repo, base_commit)
    config = state.config()
    chosen = _resolve_evolver(evolver, evolver_options, config)
    ctx = EvolveContext(
        repo=repo, base=base_commit, state=state,
        observations=load_observations(repo, ids=observation_ids),
        history=rejected_history(repo) if history is None else history,
        config=config, seed=seed, focus=focus, temperature=temperature,
    )
    try:
        proposal = chosen.propose(ctx)
    except AevolveError:
        raise
    except Exception as exc:  # an evolver's crash is the evolver's failure, not ours
        raise EvolverFailed(f"evolver {getattr(chosen, 'name', chosen)!r} failed: {type(exc).__name__}: {exc}") from exc
    name = str(getattr(chosen, "name", "") or type(chosen).__name__)
    if proposal is None:
        reason = getattr(chosen, "reason", None) or "the evolver found nothing to change"
        return ProposeResult(nothing_to_do=True, reason=reason, dry_run=dry_run, base=base_commit)
    if not isinstance(proposal, Proposal):
        raise EvolverFailed(f"evolver {name!r} returned {type(proposal).__name__}, not a Proposal")
    issues = schemas.errors("proposal", proposal.to_dict())
    if issues:
        listed = schemas.listing(issues)
        raise EvolverFailed(f"evolver {name!r} returned a proposal that breaks schema 'proposal':\n{listed}")
    return commit_proposal(repo, base_commit, proposal, name, dry_run=dry_run, state=state)


def commit_proposal(
    repo: Repo | str | Path,
    base_commit: str,
    proposal: Proposal,
    evolver_name: str,
    *,
    dry_run: bool = False,
    state: State | None = None,
    attempts: int = 8,
) -> ProposeResult:
    """Check `proposal` against the policy and commit it on a new evolve/* branch.

    Raises PolicyRefused (nothing written) listing every violation.
    """
    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    base_commit = str(repo.resolve(base_commit).id)
    state = state or State.from_tree(repo, base_commit)
    checked = evaluate(state, proposal, state.config())
    if checked.violations:
        raise PolicyRefused(checked.violations)
    summary = _summary(state, proposal, checked)
    if not checked.changes:
        return ProposeResult(nothing_to_do=True, reason="the proposal's edits change nothing",
                             proposal=proposal, dry_run=dry_run, base=base_commit)
    same = _already_proposed(repo, base_commit, checked.changes)
    if same:
        return ProposeResult(nothing_to_do=True, reason=f"the same change is already proposed on {same}",
                             proposal=proposal, dry_run=dry_run, base=base_commit, summary=summary)
    layer = proposal.layer or (checked.layers[0] if len(checked.layers) == 1 else "state")
    _pause("policy")
    tree = None
    for _ in range(attempts):
        pid = new_proposal_id()
        rationale = Rationale(
            title=proposal.title, layer=layer, diagnosis=proposal.diagnosis, change=proposal.change,
            expected_effect=proposal.expected_effect, evidence=list(proposal.evidence),
            proposal_id=pid, evolver=evolver_name, base=base_commit,
        )
        message = rationale.message()
        branch = f"evolve/{datetime.now(timezone.utc):%Y%m%d}-{slugify(proposal.title)}-{pid[2:]}"
        result = ProposeResult(branch=branch, proposal=proposal, rationale=rationale, message=message,
                               dry_run=dry_run, base=base_commit, summary=summary)
        if dry_run:
            return result
        if tree is None:
            modes = {p: BLOB_EXECUTABLE for p in checked.changes
                     if p in state.files and state.files[p].mode == BLOB_EXECUTABLE}
            tree = repo.build_tree(repo.git[base_commit].tree, checked.changes, modes)
        commit = repo.commit(tree, [base_commit], message)
        _pause("objects")
        try:
            repo.create_ref(f"refs/heads/{branch}", commit)
        except RefMoved:
            continue  # a branch of that name exists: draw a new id
        _pause("ref")
        result.commit = str(commit)
        return result
    raise RefMoved(f"could not find a free branch name after {attempts} tries")


def _already_proposed(repo: Repo, base_commit: str, changes: dict[str, bytes | None]) -> str | None:
    """An evolve/* branch whose single commit on `base_commit` makes exactly these changes."""
    import pygit2

    wanted = {p: (str(pygit2.hash(d)) if d is not None else None) for p, d in changes.items()}
    base_tree = repo.git[base_commit].tree
    for name, target in sorted(repo.refs(BRANCH_PREFIX).items()):
        commit = repo.git[target]
        if [str(p) for p in commit.parent_ids] != [base_commit]:
            continue
        diff = base_tree.diff_to_tree(commit.tree)
        got = {}
        for delta in diff.deltas:
            if delta.status == pygit2.enums.DeltaStatus.DELETED:
                got[delta.old_file.path] = None
            else:
                got[delta.new_file.path] = str(delta.new_file.id)
        if got == wanted:
            return name.removeprefix("refs/heads/")
    return None


def _summary(state: State, proposal: Proposal, checked: PolicyResult) -> list[str]:
    """One line per changed file: what happens to it and how big it gets."""
    appended: dict[str, int] = {}
    for edit in proposal.edits:
        if edit.op == "append-jsonl":
            appended[edit.path] = appended.get(edit.path, 0) + len(edit.records or [])
    out = []
    for path, data in sorted(checked.changes.items()):
        if data is None:
            out.append(f"delete  {path}")
        elif path in appended:
            out.append(f"append  {path} (+{appended[path]} record{'s' if appended[path] != 1 else ''})")
        elif path in state.files:
            out.append(f"modify  {path} ({len(data)} bytes)")
        else:
            out.append(f"add     {path} ({len(data)} bytes)")
    return out


callable_module(__name__, propose)
