"""Merging a remote's notes into the local notes ref: a union, never a loss.

Each side's notes commit is read as {annotated commit: note blob}. A note only
one side has is kept; where both differ, a `Pick` decides per commit (the gate
notes: the admissible verdict; approvals: the union of approvals). The result
is a notes commit built from objects: the remote's tip itself when it already
holds everything (a fast-forward), else a commit on top of the remote's (with
the local tip as a second parent when the two diverged), so the next push of
the notes is a fast-forward for the server. The local ref moves by
compare-and-swap; a note written meanwhile makes the merge start over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from aevolve._git.notes import parse_report
from aevolve._git.reader import GitReader
from aevolve._git.repo import Repo, TreeFile
from aevolve._remote.ref_merge import retried, without_merge

HEX = frozenset("0123456789abcdef")


@dataclass
class NoteChoice:
    """One commit whose note differs on the two sides, and which one was kept."""

    commit: str
    kept: str  # "local", "remote" or "union"
    why: str
    conflict: bool = False  # nothing decided it: the local note was kept

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NotesMerge:
    ref: str
    old: str | None = None  # the local ref before
    new: str | None = None  # the local ref after
    action: str = "none"  # none, up-to-date, ahead, created, fast-forward, merged
    taken: int = 0  # notes new to this clone (or replacing the local one)
    choices: list[NoteChoice] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def conflicts(self) -> list[NoteChoice]:
        return [c for c in self.choices if c.conflict]

    def to_dict(self) -> dict:
        return {"ref": self.ref, "old": self.old, "new": self.new, "action": self.action, "taken": self.taken,
                "choices": [c.to_dict() for c in self.choices]}


@dataclass
class Sides:
    """What a Pick may look at for one commit."""

    commit: str
    local: bytes
    remote: bytes
    base: bytes | None  # the note in the two tips' merge base (None: absent or no base)


# A Pick answers (the note to keep, how it was decided) for a commit whose notes differ.
Pick = Callable[[Sides], tuple[bytes, NoteChoice]]


def merge_notes(repo: Repo, ref: str, remote_tip: str | None, pick: Pick, *,
                deletions_stick: bool = False) -> NotesMerge:
    """Merge the notes commit `remote_tip` into the local `ref` (see the module doc).
    With `deletions_stick`, a note deleted here since the merge base that the remote
    did not change stays deleted (the runs notes `gc` pruned)."""
    return retried(lambda: _merge_once(repo, ref, remote_tip, pick, deletions_stick),
                   f"{ref} kept moving while merging the remote's notes into it")


def _merge_once(repo: Repo, ref: str, remote_tip: str | None, pick: Pick, deletions_stick: bool) -> NotesMerge:
    local_tip = repo.ref_target(ref)
    result = NotesMerge(ref, local_tip, local_tip)
    action = without_merge(repo, ref, local_tip, remote_tip)
    if action is not None:
        if action == "created":
            result.taken, result.new = len(notes_in(repo, str(remote_tip))), remote_tip
        result.action = action
        return result
    assert remote_tip is not None and local_tip is not None
    behind = repo.is_ancestor(local_tip, remote_tip)
    tree = _merged_tree(repo, local_tip, remote_tip, pick, result, deletions_stick)
    if behind and tree == str(repo.tree(remote_tip).id):
        new, result.action = remote_tip, "fast-forward"
    else:
        parents = [remote_tip] if behind else [local_tip, remote_tip]
        message = f"aevolve: sync notes with {remote_tip[:12]}\n"
        new, result.action = str(repo.commit(tree, parents, message)), "merged"
    repo.update_ref(ref, new, local_tip)
    result.new = new
    return result


def notes_in(repo: Repo, notes_commit: str) -> dict[str, TreeFile]:
    """Annotated commit -> its note's file, whatever the fan-out (`ab/cdef...`)."""
    out = {}
    for entry in repo.list_files(repo.tree(notes_commit)):
        name = entry.path.replace("/", "")
        if len(name) in (40, 64) and set(name) <= HEX:
            out[name] = entry
    return out


def _merged_tree(repo: Repo, local_tip: str, remote_tip: str, pick: Pick, result: NotesMerge,
                 deletions_stick: bool = False) -> str:
    local, remote = notes_in(repo, local_tip), notes_in(repo, remote_tip)
    base_tip = repo.merge_base(local_tip, remote_tip)
    deleted = _deleted_here(repo, base_tip, local, remote) if deletions_stick and base_tip else set()
    edits: dict[str, bytes | None] = {}
    for commit, theirs in sorted(remote.items()):
        ours = local.get(commit)
        if commit in deleted:
            continue
        if ours is None:
            edits[theirs.path] = repo.blob(theirs.oid)
            result.taken += 1
            continue
        if ours.oid == theirs.oid:
            continue
        base = repo.note_at(base_tip, commit) if base_tip else None
        data, choice = pick(Sides(commit, repo.blob(ours.oid), repo.blob(theirs.oid), base))
        result.choices.append(choice)
        if data != repo.blob(ours.oid):
            edits[ours.path] = data
            result.taken += choice.kept != "local"
    return str(repo.build_tree(repo.tree(local_tip), edits))


def _deleted_here(repo: Repo, base_tip: str, local: dict[str, TreeFile], remote: dict[str, TreeFile]) -> set[str]:
    """Notes the base had, the local side deleted, and the remote left as they were."""
    base = notes_in(repo, base_tip)
    return {commit for commit, entry in base.items()
            if commit not in local and commit in remote and remote[commit].oid == entry.oid}


# -- gate notes -------------------------------------------------------------------------


class ReportPick:
    """Two different gate reports on one commit: keep the one that admits the commit
    (accepting, on the transition from its first parent); when both or neither do, the
    side that did not change since the merge base yields, and a commit already in the
    remote's main keeps the server's note (the server never lets it change)."""

    def __init__(self, reader: GitReader, remote_main: str | None):
        self.reader, self.remote_main = reader, remote_main

    def __call__(self, sides: Sides) -> tuple[bytes, NoteChoice]:
        local, remote = parse_report(sides.local), parse_report(sides.remote)
        if local is not None and local == remote:  # same report, other bytes: take the server's
            return sides.remote, NoteChoice(sides.commit, "remote", "the same report")
        parent = self._first_parent(sides.commit)
        ours, theirs = _admits(local, sides.commit, parent), _admits(remote, sides.commit, parent)
        if ours != theirs:
            side, data = ("local", sides.local) if ours else ("remote", sides.remote)
            why = f"the {side} report accepts it against its first parent {str(parent)[:12]}; the other does not"
            return data, NoteChoice(sides.commit, side, why)
        if sides.base is not None and sides.base == sides.local:
            return sides.remote, NoteChoice(sides.commit, "remote", "only the remote changed it")
        if sides.base is not None and sides.base == sides.remote:
            return sides.local, NoteChoice(sides.commit, "local", "only this clone changed it")
        if self.remote_main and self.reader.is_ancestor(sides.commit, self.remote_main):
            return sides.remote, NoteChoice(sides.commit, "remote", "already in the remote's main, whose notes "
                                                                    "the server never lets change")
        return sides.local, NoteChoice(sides.commit, "local", f"two different reports ({_decision(local)} here, "
                                       f"{_decision(remote)} on the remote) and neither is the one "
                                       "admissible verdict; kept this clone's", conflict=True)

    def _first_parent(self, commit: str) -> str | None:
        info = self.reader.commit(commit)
        return info.parents[0] if info is not None and info.parents else None


def _admits(report: dict | None, commit: str, parent: str | None) -> bool:
    return (report is not None and parent is not None and report.get("decision") == "accept"
            and not report.get("shard") and report.get("candidate") == commit and report.get("baseline") == parent)


def _decision(report: dict | None) -> str:
    return str(report.get("decision")) if report is not None else "not a report"


# -- approvals --------------------------------------------------------------------------


def approvals_pick(sides: Sides) -> tuple[bytes, NoteChoice]:
    """The union of both sides' approvals: one per approver key (the newest, as
    `aevolve approve` replaces its own), in a canonical order so that every clone
    merging the same two sides writes the same note."""
    from aevolve._trust.approvals import parse_approvals

    local, remote = parse_approvals(sides.local), parse_approvals(sides.remote)
    merged: dict[str, dict] = {}
    for item in [*local, *remote]:
        named = item.get("key")
        key = named if isinstance(named, str) else _canonical(item)
        kept = merged.get(key)
        if kept is None or str(item.get("created", "")) > str(kept.get("created", "")):
            merged[key] = item
    union = {_canonical(item) for item in merged.values()}
    if union == {_canonical(i) for i in remote}:
        return sides.remote, NoteChoice(sides.commit, "remote", "the remote holds every approval")
    if union == {_canonical(i) for i in local}:
        return sides.local, NoteChoice(sides.commit, "local", "this clone holds every approval")
    items = sorted(merged.values(), key=_canonical)
    data = json.dumps({"approvals": items}, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    return data, NoteChoice(sides.commit, "union", f"{len(items)} approval(s) from both sides")


def _canonical(item: dict) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# -- shared runs (refs/notes/aevolve-runs) ------------------------------------------------


def runs_pick(sides: Sides) -> tuple[bytes, NoteChoice]:
    """The union of both sides' batches of runs (each batch kept whole, so its signature
    still checks), in the canonical order every clone writes."""
    from aevolve._gate.shared_runs import union

    data = union(sides.local, sides.remote)
    if data == sides.remote:
        return sides.remote, NoteChoice(sides.commit, "remote", "the remote holds every run")
    if data == sides.local:
        return sides.local, NoteChoice(sides.commit, "local", "this clone holds every run")
    return data, NoteChoice(sides.commit, "union", "the runs of both")


# -- display notes (`git log`'s one-line verdicts) ----------------------------------------


class LogPick:
    """Two display notes on one commit: the server's for a commit already in its main
    (the server never lets that note change), else every line of both, the remote's
    first, so that clones merging the same two sides converge."""

    def __init__(self, reader: GitReader, remote_main: str | None):
        self.reader, self.remote_main = reader, remote_main

    def __call__(self, sides: Sides) -> tuple[bytes, NoteChoice]:
        if self.remote_main and self.reader.is_ancestor(sides.commit, self.remote_main):
            return sides.remote, NoteChoice(sides.commit, "remote", "already in the remote's main")
        ours, theirs = sides.local.decode("utf-8", "replace").splitlines(), \
            sides.remote.decode("utf-8", "replace").splitlines()
        if set(ours) <= set(theirs):
            return sides.remote, NoteChoice(sides.commit, "remote", "the remote holds every line")
        if set(theirs) <= set(ours):
            return sides.local, NoteChoice(sides.commit, "local", "this clone holds every line")
        merged = theirs + [line for line in ours if line not in theirs]
        return "".join(f"{line}\n" for line in merged).encode(), NoteChoice(sides.commit, "union",
                                                                            "the lines of both")
