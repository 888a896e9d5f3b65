"""snapshot -> evolver -> policy -> one commit on a new evolution branch.

The base commit is resolved once; the evolver sees the state at that commit,
the selected observations and the gate reports of earlier rejected proposals.
Its proposal is schema-checked, scanned for this machine's secret values (an
answer that repeats one is refused: exit 5) and passes the policy in memory
before any git object is written; the commit is built from objects (never the
user's index or working tree) and the branch is created atomically, so a run
that dies leaves either no branch or a complete one. Secret-looking strings in
the rationale are redacted in the commit message.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets as _random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aevolve._errors import AevolveError, EvolverFailed, PolicyRefused, RefMoved
from aevolve._faults import pause
from aevolve._git.repo import BLOB_EXECUTABLE, Repo
from aevolve._propose.evolvers.base import EvolveContext, Evolver, Proposal
from aevolve._propose.policy import PolicyResult, edit_count_problem, evaluate
from aevolve._propose.rationale import Rationale
from aevolve._state import schemas
from aevolve._state.model import State
from aevolve._trust.secrets import redact, secret_values, secret_variables

BRANCH_PREFIX = "refs/heads/evolve/"
REMOTE_BRANCHES = "refs/remotes/"  # a teammate's evolve/* branches, as a fetch copied them
NOTES_TRACKING = "refs/notes/remotes/"  # the notes a fetch copied (gitsetup.tracking_ref)
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
    """Gate reports of rejected evolution branch tips, newest first: local evolve/*
    branches and the remote-tracking copies a fetch brought (`refs/remotes/<remote>/evolve/*`),
    with the notes of refs/notes/aevolve and their tracking copies (the local note wins).

    Each entry is the report itself plus `branch` (`evolve/...`, or `origin/evolve/...`
    for a teammate's), `commit` and `title`. Each notes tree is read once; a note that
    says accept is recognised without parsing it (`_may_reject`).
    """
    from aevolve._git.notes import parse_report
    from aevolve._propose.rationale import parse

    notes = _note_blobs(repo)
    found, seen = [], set()
    for name, target in _evolution_branches(repo):
        if target in seen:
            continue  # a local branch and its remote-tracking copy: listed once, as the local one
        seen.add(target)
        blob = notes.get(target)
        data = repo.blob(blob) if blob else None
        report = parse_report(data) if data is not None and _may_reject(data) else None
        if report is None or report.get("decision") == "accept":
            continue
        commit = repo.try_resolve(target)
        if commit is None:
            continue
        rationale = parse(commit.message)
        found.append((commit.commit_time, name, {
            **report, "branch": _branch_name(name), "commit": target,
            "title": rationale.title if rationale else commit.message.splitlines()[0],
        }))
    found.sort(key=lambda item: (-item[0], item[1]))
    return [entry for _, _, entry in found[:limit]]


_ACCEPT = re.compile(rb'"decision"\s*:\s*"accept"')


def _may_reject(note: bytes) -> bool:
    """False when `note` holds `"decision"` once, as `"decision": "accept"`: its report is
    then an acceptance (or no report), so the history skips it without parsing ~5 KB of
    JSON per branch. Inside a JSON string a quote is escaped, so the pattern can only be a
    key and its value; anything else (two decisions, a rejection, not JSON) is parsed."""
    return note.count(b'"decision"') != 1 or _ACCEPT.search(note) is None


def _evolution_branches(repo: Repo) -> list[tuple[str, str]]:
    """(ref, tip) of every evolution branch: the local ones first, then the remote-tracking
    copies (`refs/remotes/<remote>/evolve/*`), each group by name."""
    remote = [(name, tip) for name, tip in repo.refs(REMOTE_BRANCHES).items()
              if name.count("/") >= 4 and name.split("/", 3)[3].startswith("evolve/")]
    return sorted(repo.refs(BRANCH_PREFIX).items()) + sorted(remote)


def _branch_name(ref: str) -> str:
    """`evolve/...` for a local branch, `origin/evolve/...` for a remote-tracking one."""
    return ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")


def _note_blobs(repo: Repo) -> dict[str, str]:
    """Annotated commit -> note blob id, over refs/notes/aevolve and then its tracking
    copies `refs/notes/remotes/<remote>/aevolve` (an earlier ref wins): one walk of each
    notes tree instead of one note lookup per branch."""
    from aevolve._git.repo import NOTES_REF

    tips = [repo.ref_target(NOTES_REF)]
    tips += [tip for name, tip in sorted(repo.refs(NOTES_TRACKING).items())
             if name.count("/") == 4 and name.endswith("/aevolve")]
    out: dict[str, str] = {}
    for tip in tips:
        if tip is None:
            continue
        for entry in repo.walk(repo.tree(tip)):
            out.setdefault(entry.path.replace("/", ""), entry.oid)  # fanned out or flat: the commit's id
    return out


def default_evolver(repo: Repo, base: str = "main") -> str:
    """The evolver `aevolve.yaml` names as default at `base` (main when `base` does not exist)."""
    from aevolve._git.repo import MAIN

    state = State.from_tree(repo, base if repo.try_resolve(base) else MAIN)
    return state.config()["evolver"]["default"] or "rules"


def _resolve_evolver(evolver, options: dict | None, config: dict) -> Evolver:
    from aevolve._propose import evolvers

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
    evolver: str | Evolver | None = None,
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
    from aevolve._state.observations import load_observations

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
    names, literals = _secret_sources(config, evolver_options)
    hidden = [*secret_values(names=names), *literals]
    try:
        proposal = chosen.propose(ctx)
    except AevolveError as exc:
        _scrubbed(exc, hidden)  # scrubs the message of the exception itself
        raise
    except Exception as exc:  # an evolver's crash is the evolver's failure, not ours
        message = redact(f"evolver {getattr(chosen, 'name', chosen)!r} failed: {type(exc).__name__}: {exc}", hidden)
        raise EvolverFailed(message) from exc
    name = str(getattr(chosen, "name", "") or type(chosen).__name__)
    if proposal is None:
        reason = getattr(chosen, "reason", None) or "the evolver found nothing to change"
        return ProposeResult(nothing_to_do=True, reason=redact(reason, hidden), dry_run=dry_run, base=base_commit)
    if not isinstance(proposal, Proposal):
        raise EvolverFailed(f"evolver {name!r} returned {type(proposal).__name__}, not a Proposal")
    too_many = edit_count_problem(len(proposal.edits or []), config)  # before anything reads every edit
    if too_many:
        raise PolicyRefused([too_many])
    refuse_leaked_secrets(proposal, names=names, literals=literals)
    issues = schemas.errors("proposal", proposal.to_dict())
    if issues:
        listed = redact(schemas.listing(issues), hidden)  # schema messages may quote the answer
        raise EvolverFailed(f"evolver {name!r} returned a proposal that breaks schema 'proposal':\n{listed}")
    return commit_proposal(repo, base_commit, proposal, name, dry_run=dry_run, state=state)


# -- secrets ------------------------------------------------------------------------------


def _secret_sources(config: dict, options: dict | None) -> tuple[list[str], list[str]]:
    """(variable names, literal values) whose values must never be committed: the key
    variable configured at the base (and one given as an option), and a key given as an option."""
    openai = (config.get("evolver") or {}).get("openai") or {}
    options = options or {}
    names = [n for n in (openai.get("api_key_env"), options.get("api_key_env")) if isinstance(n, str) and n]
    key = options.get("api_key")
    literals = [key] if isinstance(key, str) and len(key) >= 8 else []
    return names, literals


def _answer_fields(proposal: Proposal) -> list[tuple[str, str]]:
    """(where, text) for every part of a proposal that could end up in a commit."""
    out = [("the rationale's title", proposal.title), ("the rationale's Diagnosis", proposal.diagnosis),
           ("the rationale's Change", proposal.change), ("the rationale's Expected effect", proposal.expected_effect),
           ("the rationale's evidence", "\n".join(map(str, proposal.evidence or [])))]
    for index, edit in enumerate(proposal.edits or [], 1):  # not yet schema-checked: read defensively
        path, content, records = (getattr(edit, a, None) for a in ("path", "content", "records"))
        records = json.dumps(records, ensure_ascii=False, default=str) if records is not None else ""
        out.append((f"edit {index} ({path})", "\n".join(str(x) for x in (path, content or "", records))))
    return [(where, text if isinstance(text, str) else str(text)) for where, text in out]


def refuse_leaked_secrets(proposal: Proposal, *, names=(), literals=(), environ=None) -> None:
    """Raise EvolverFailed when any part of `proposal` holds the value of a secret variable
    (`names`, and every variable whose name holds KEY, TOKEN, SECRET or PASSWORD) or one of
    `literals`. The message names the variables and the fields, never the value."""
    variables = secret_variables(environ, names)
    leaks: dict[str, list[str]] = {}
    for where, text in _answer_fields(proposal):
        found = [f"${name}" for name, value in sorted(variables.items()) if value in text]
        if not found and any(value in text for value in literals):
            found = ["the API key given as an option"]
        for what in found:
            leaks.setdefault(what, []).append(where)
    if not leaks:
        return
    parts = [f"{what} (in {', '.join(places)})" for what, places in sorted(leaks.items())]
    raise EvolverFailed(
        f"the evolver's answer contains the value of {'; '.join(parts)}; refused, nothing was written. "
        "An endpoint that echoes its credentials must not be trusted with them; if the value is no secret, "
        "rename or unset the variable."
    )


def _scrubbed(exc: AevolveError, hidden: list[str]) -> AevolveError:
    """`exc` with secret values and patterns removed from its message (the same exception)."""
    text = str(exc)
    clean = redact(text, hidden)
    if clean != text:
        exc.args = (clean,)
    return exc


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
    proposal = _redacted_rationale(proposal, state.config())  # what is shown and committed from here on
    summary = _summary(state, proposal, checked)
    if not checked.changes:
        return ProposeResult(nothing_to_do=True, reason="the proposal's edits change nothing",
                             proposal=proposal, dry_run=dry_run, base=base_commit)
    same = _already_proposed(repo, base_commit, checked.changes)  # again under the lock, before the branch
    if same:
        return _duplicate(same, proposal, dry_run, base_commit, summary)
    layer = proposal.layer or (checked.layers[0] if len(checked.layers) == 1 else "state")
    pause("policy")
    tree = None
    for _ in range(attempts):
        pid = new_proposal_id()
        rationale = Rationale(
            title=proposal.title, layer=layer, diagnosis=proposal.diagnosis, change=_change(proposal, checked),
            expected_effect=proposal.expected_effect, evidence=list(proposal.evidence),
            proposal_id=pid, evolver=evolver_name, base=base_commit,
        )
        message = rationale.message()
        branch = f"evolve/{datetime.now(UTC):%Y%m%d}-{slugify(proposal.title)}-{pid[2:]}"
        result = ProposeResult(branch=branch, proposal=proposal, rationale=rationale, message=message,
                               dry_run=dry_run, base=base_commit, summary=summary)
        if dry_run:
            return result
        if tree is None:
            modes = {p: BLOB_EXECUTABLE for p in checked.changes
                     if p in state.files and state.files[p].mode == BLOB_EXECUTABLE}
            tree = repo.build_tree(repo.tree(base_commit), checked.changes, modes)
        commit = repo.commit(tree, [base_commit], message)
        pause("objects")
        # Decided together under the lock: eight proposes of one change open one branch.
        with repo.lock("propose"):
            same = _already_proposed(repo, base_commit, checked.changes, str(tree))
            if same:
                return _duplicate(same, proposal, dry_run, base_commit, summary)
            try:
                repo.create_ref(f"refs/heads/{branch}", commit)
            except RefMoved:
                continue  # a branch of that name exists: draw a new id
        pause("ref")
        result.commit = str(commit)
        return result
    raise RefMoved(f"could not find a free branch name after {attempts} tries")


def _duplicate(branch: str, proposal: Proposal, dry_run: bool, base: str, summary: list[str]) -> ProposeResult:
    return ProposeResult(nothing_to_do=True, reason=f"the same change is already proposed on {branch}",
                         proposal=proposal, dry_run=dry_run, base=base, summary=summary)


def _redacted_rationale(proposal: Proposal, config: dict) -> Proposal:
    """`proposal` with secret-looking strings in its rationale replaced by [REDACTED <kind>].

    A token quoted in a diagnosis is redacted rather than refused: the rationale is prose
    about the failure, and the change (the edits, which the policy refuses) is what counts."""
    names, _ = _secret_sources(config, None)
    hidden = secret_values(names=names)
    return dataclasses.replace(
        proposal, title=redact(proposal.title, hidden), diagnosis=redact(proposal.diagnosis, hidden),
        change=redact(proposal.change, hidden), expected_effect=redact(proposal.expected_effect, hidden),
        evidence=[redact(e, hidden) for e in proposal.evidence],
    )


def _already_proposed(repo: Repo, base_commit: str, changes: dict[str, bytes | None],
                      tree: str | None = None) -> str | None:
    """An evolution branch, local or a remote's tracking copy, whose single commit on
    `base_commit` makes exactly these changes: the same tree when the candidate's `tree`
    is known, else the same diff (before anything is written: a dry run writes nothing).
    Reads each branch tip's commit once; only tips on the same base are compared."""
    same_base = []
    for name, _target in _evolution_branches(repo):
        commit = repo.try_resolve(name)  # by full name: no ambiguity check (3 ref lookups); None: no commit
        if commit is not None and len(commit.parent_ids) == 1 and str(commit.parent_ids[0]) == base_commit:
            same_base.append((name, commit))
    if not same_base:
        return None
    if tree is not None:
        return next((_branch_name(name) for name, commit in same_base if str(commit.tree_id) == str(tree)), None)
    wanted = _blob_ids(changes)
    base_tree = repo.tree(base_commit)
    return next((_branch_name(name) for name, commit in same_base
                 if _changed_blobs(base_tree, commit.tree) == wanted), None)


def _blob_ids(changes: dict[str, bytes | None]) -> dict[str, str | None]:
    import pygit2

    return {p: (str(pygit2.hash(d)) if d is not None else None) for p, d in changes.items()}


def _changed_blobs(base_tree, tree) -> dict[str, str | None]:
    """Path -> new blob id (None: deleted) of every file that differs between two trees."""
    import pygit2

    got: dict[str, str | None] = {}
    for delta in base_tree.diff_to_tree(tree).deltas:
        if delta.status == pygit2.enums.DeltaStatus.DELETED:
            got[delta.old_file.path] = None
        else:
            got[delta.new_file.path] = str(delta.new_file.id)
    return got


def _change(proposal: Proposal, checked: PolicyResult) -> str:
    """The evolver's Change text, plus where appends really went when memory was sharded:
    an evolver that wrote `memory/x.jsonl` must not be quoted as if that file changed."""
    moved = [f"{asked} -> {', '.join(paths)}" for asked, paths in checked.redirects.items() if paths != [asked]]
    if not moved:
        return proposal.change
    return f"{proposal.change}\n\nAppended records went to the memory shard(s) in use (memory.shard_bytes): " \
           + "; ".join(moved) + "."


def _summary(state: State, proposal: Proposal, checked: PolicyResult) -> list[str]:
    """One line per changed file: what happens to it and how big it gets."""
    appended = checked.appended_records  # by the path really written (a memory shard, maybe)
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
