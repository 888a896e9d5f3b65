"""Merging a remote's observations into `refs/aevolve/observations`: a union of batches.

Both sides are commit chains whose trees hold JSONL batches
(`_state/observations.py`). An observation is matched by its canonical JSON, so
the same observation ingested in two clones (in batches of different names) is
stored once. What the local side lacks is added on top of it as whole batches
(the same blob, so every clone converges on the same tree) or, for a batch
only partly new, as a batch of its new lines. Nothing is ever dropped: a line
that is not an observation is kept as written, and an id stored with other
content on the two sides keeps both (reported as a conflict).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from aevolve._git.repo import OBSERVATIONS_REF, Repo
from aevolve._remote.ref_merge import retried, without_merge
from aevolve._state.jsonl import lines
from aevolve._state.observations import BATCH_DIR, canonical


@dataclass
class ObservationsMerge:
    ref: str = OBSERVATIONS_REF
    old: str | None = None
    new: str | None = None
    action: str = "none"  # none, up-to-date, ahead, created, fast-forward, merged
    added: int = 0  # observations new to this clone
    conflicts: list[str] = field(default_factory=list)  # ids stored with different content on the two sides

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Batch:
    path: str  # below the tree's root: batches/<name>.jsonl
    oid: str
    items: list[str]  # each line, canonical when it is an observation
    ids: dict[str, str] = field(default_factory=dict)  # id -> canonical line


def merge_observations(repo: Repo, remote_tip: str | None) -> ObservationsMerge:
    return retried(lambda: _merge_once(repo, remote_tip),
                   f"{OBSERVATIONS_REF} kept moving while merging the remote's observations")


def _merge_once(repo: Repo, remote_tip: str | None) -> ObservationsMerge:
    local_tip = repo.ref_target(OBSERVATIONS_REF)
    result = ObservationsMerge(old=local_tip, new=local_tip)
    action = without_merge(repo, OBSERVATIONS_REF, local_tip, remote_tip)
    if action is not None:
        if action == "created":
            result.added, result.new = len(_items(batches(repo, str(remote_tip)))), remote_tip
        result.action = action
        return result
    assert remote_tip is not None and local_tip is not None
    local, remote = batches(repo, local_tip), batches(repo, remote_tip)
    result.added = len(_items(remote) - _items(local))
    result.conflicts = _conflicts(local, remote)
    if repo.is_ancestor(local_tip, remote_tip):
        missing = _missing(repo, local, remote)  # what the remote dropped of ours comes back on top of it
        if not missing:
            new, result.action = remote_tip, "fast-forward"
        else:
            new, result.action = _commit(repo, remote_tip, [remote_tip], missing), "merged"
    else:
        new = _commit(repo, local_tip, [local_tip, remote_tip], _missing(repo, remote, local))
        result.action = "merged"
    repo.update_ref(OBSERVATIONS_REF, new, local_tip)
    result.new = new
    return result


def batches(repo: Repo, tip: str) -> list[Batch]:
    tree = repo.tree(tip)
    if BATCH_DIR not in tree:
        return []
    out = []
    for entry in sorted(repo.walk(repo.tree(tree[BATCH_DIR].id)), key=lambda f: f.path):
        batch = Batch(f"{BATCH_DIR}/{entry.path}", entry.oid, [])
        for line in lines(repo.blob(entry.oid).decode("utf-8", "replace")):
            record = line.record
            text = canonical(record) if record is not None else line.raw
            batch.items.append(text)
            if record is not None and isinstance(record.get("id"), str):
                batch.ids[record["id"]] = text
        out.append(batch)
    return out


def _items(side: list[Batch]) -> set[str]:
    return {item for batch in side for item in batch.items}


def _conflicts(local: list[Batch], remote: list[Batch]) -> list[str]:
    ours = {key: text for batch in local for key, text in batch.ids.items()}
    return sorted({key for batch in remote for key, text in batch.ids.items() if ours.get(key, text) != text})


def _missing(repo: Repo, source: list[Batch], target: list[Batch]) -> dict[str, bytes]:
    """The files to add to `target`'s tree so that it holds every item of `source`."""
    have, paths = _items(target), {batch.path for batch in target}
    edits: dict[str, bytes] = {}
    for batch in source:
        new = [item for item in dict.fromkeys(batch.items) if item not in have]
        if not new:
            continue
        if len(new) == len(batch.items) and batch.path not in paths:
            edits[batch.path] = repo.blob(batch.oid)  # the whole batch: the same blob on every clone
        else:
            body = "".join(item + "\n" for item in new).encode()
            stem = batch.path.rsplit("/", 1)[-1].split("-", 1)[0]
            edits[f"{BATCH_DIR}/{stem}-{hashlib.sha256(body).hexdigest()[:12]}.jsonl"] = body
        have.update(new)
    return edits


def _commit(repo: Repo, base: str, parents: list[str], edits: dict[str, bytes]) -> str:
    tree = repo.build_tree(repo.tree(base), dict(edits))
    count = sum(len(list(lines(data.decode("utf-8", "replace")))) for data in edits.values())
    message = (f"aevolve: sync observations with {parents[-1][:12]}\n\n"
               f"Aevolve-Observations: {count}\n")
    return str(repo.commit(tree, parents, message))
