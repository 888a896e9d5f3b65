"""Candidates built from other candidates' changes: GEPA's merge of two accepted
candidates, and ablations of a winner that carries several independent parts.

A *part* is one changed file, or one record appended to a memory `.jsonl` file
(what a lesson is). A built candidate is proposed through the `patch` evolver,
so the policy and the gate judge it like any other proposal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aevolve._errors import AevolveError
from aevolve._git.repo import Repo

MAX_PARTS = 6  # a winner with more parts is not ablated: one gate per part would cost too much


@dataclass(frozen=True)
class Part:
    path: str
    content: str | None  # the new file (None: deleted); for a record part, the appended JSON line
    record: bool = False  # one record appended to a .jsonl file

    @property
    def label(self) -> str:
        if not self.record:
            return self.path
        try:
            return f"{self.path} record {json.loads(self.content or '{}').get('id')}"
        except ValueError:
            return f"{self.path} record"


def parts_of(repo: Repo, base: str, commit: str) -> list[Part] | None:
    """The independent parts of `commit` against `base`, or None when a change is not
    plain UTF-8 text (a mode change, a binary file): such a candidate is left whole."""
    import pygit2

    out: list[Part] = []
    for delta in repo.tree(base).diff_to_tree(repo.tree(commit)).deltas:
        path = delta.new_file.path
        if delta.status == pygit2.enums.DeltaStatus.DELETED:
            out.append(Part(delta.old_file.path, None))
            continue
        if delta.status not in (pygit2.enums.DeltaStatus.ADDED, pygit2.enums.DeltaStatus.MODIFIED) \
                or (delta.status == pygit2.enums.DeltaStatus.MODIFIED and delta.old_file.mode != delta.new_file.mode):
            return None
        try:
            new = repo.blob(str(delta.new_file.id)).decode("utf-8")
            old = repo.blob(str(delta.old_file.id)).decode("utf-8") \
                if delta.status == pygit2.enums.DeltaStatus.MODIFIED else ""
        except UnicodeDecodeError:
            return None
        out += _file_parts(path, old, new)
    return out


def _file_parts(path: str, old: str, new: str) -> list[Part]:
    """Appended memory records one by one; any other change as the whole file."""
    if path.endswith(".jsonl") and new.startswith(old) and (not old or old.endswith("\n")):
        lines = [line for line in new[len(old):].splitlines() if line.strip()]
        if lines and all(_is_object(line) for line in lines):
            return [Part(path, line, record=True) for line in lines]
    return [Part(path, new)]


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def touched(parts: list[Part]) -> set[str]:
    return {p.path for p in parts}


def edits_of(parts: list[Part]) -> list[dict]:
    """Patch-evolver edits that make `parts` on the base: records appended in order,
    other files written whole or deleted."""
    records: dict[str, list[dict]] = {}
    edits: list[dict] = []
    for part in parts:
        if part.record:
            records.setdefault(part.path, []).append(json.loads(part.content or "{}"))
        elif part.content is None:
            edits.append({"op": "delete", "path": part.path})
        else:
            edits.append({"op": "write", "path": part.path, "content": part.content})
    edits += [{"op": "append-jsonl", "path": path, "records": recs} for path, recs in records.items()]
    return edits


def cited(parts: list[Part], ids: list[str]) -> list[str]:
    """The observation ids the parts' text names (what a built candidate may cite as evidence):
    a part dropped by ablation must not mark its observation resolved."""
    text = "\n".join(p.content or "" for p in parts)
    return [i for i in ids if i in text]


def propose_parts(repo: Repo, base: str, parts: list[Part], rationale: dict) -> tuple[str | None, str | None, str]:
    """(branch, commit, why not) of a proposal of `parts` on `base` through the patch evolver."""
    from aevolve._propose.evolvers.patch import PatchEvolver
    from aevolve._propose.run import propose

    evolver = PatchEvolver(edits={**rationale, "edits": edits_of(parts)})
    try:
        got = propose(repo, evolver=evolver, base=base, observation_ids=[], history=[])
    except AevolveError as exc:
        return None, None, str(exc)
    if got.nothing_to_do:
        return None, None, got.reason
    return got.branch, got.commit, ""
