"""Three-way merges: memory JSONL record by record, and whole trees for rebasing.

A line-based merge of two evolvers that each appended a memory record at the
end of the same file "conflicts"; a record-based merge sees two additions and
keeps both. Records are matched by `aevolve._state.jsonl.record_key` (their id, else
their content's hash). The same function serves the git merge driver
(`aevolve merge-jsonl %O %A %B %P`) and `rebase_onto`, which replays a
candidate's changes onto a `main` that moved while it was being gated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from aevolve._errors import MergeConflict
from aevolve._state.jsonl import lines, record_key

REBASED_TRAILER = "Aevolve-Rebased-From"


@dataclass
class JsonlMerge:
    text: str
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass
class _Line:
    key: str
    value: object  # the parsed record; the stripped raw text for a line that is not a JSON object
    raw: str


def _parse(text: str) -> dict[tuple[str, int], _Line]:
    """Records in file order, keyed by (record key, occurrence) so duplicates stay apart."""
    out: dict[tuple[str, int], _Line] = {}
    seen: dict[str, int] = {}
    for line in lines(text):
        value: object = line.record
        if line.record is not None:
            key = record_key(line.record)
        else:  # not a record: merged as an opaque line, matched by its exact text
            value = line.raw.strip()
            key = "line:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        n = seen.get(key, 0)
        seen[key] = n + 1
        out[(key, n)] = _Line(key, value, line.raw)
    return out


def _label(key: tuple[str, int]) -> str:
    name, n = key
    shown = name if not name.startswith(("sha256:", "line:")) else f"(no id) {name}"
    return f"{shown!r}" + (f" (occurrence {n + 1})" if n else "")


def merge_jsonl(base: str, ours: str, theirs: str, path: str = "<jsonl>") -> JsonlMerge:
    """Merge three versions of a JSONL file record by record.

    Keeps ours' order, appends theirs' new records in theirs' order, applies
    one-sided edits and deletions. A record changed on both sides to different
    results (or edited on one side and deleted on the other) is a conflict: the
    text then holds git-style conflict markers around that record.
    """
    if theirs == base or ours == theirs:
        return JsonlMerge(ours)
    if ours == base:
        return JsonlMerge(theirs)
    b, o, t = _parse(base), _parse(ours), _parse(theirs)
    out = _Merged(path)
    for key, mine in o.items():
        _merge_ours(out, key, b.get(key), mine, t.get(key))
    for key, other in t.items():
        if key not in o:
            _merge_theirs_only(out, key, b.get(key), other)
    return JsonlMerge("".join(line + "\n" for line in out.lines), out.conflicts)


@dataclass
class _Merged:
    path: str
    lines: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def conflict(self, key, ours: _Line | None, theirs: _Line | None, what: str) -> None:
        self.conflicts.append(f"{self.path}: record {_label(key)} {what}")
        self.lines += ["<<<<<<< ours", *([ours.raw] if ours else []), "=======",
                       *([theirs.raw] if theirs else []), ">>>>>>> theirs"]


def _merge_ours(out: _Merged, key, old: _Line | None, mine: _Line, other: _Line | None) -> None:
    """A record our side has, in our order."""
    if old is None:  # added on our side
        if other is None or other.value == mine.value:
            out.lines.append(mine.raw)
        else:
            out.conflict(key, mine, other, "added on both sides with different content")
    elif other is None:  # deleted on their side
        if mine.value != old.value:
            out.conflict(key, mine, None, "edited on one side and deleted on the other")
    elif mine.value == old.value and other.value != old.value:
        out.lines.append(other.raw)  # their edit
    elif other.value in (old.value, mine.value):
        out.lines.append(mine.raw)  # unchanged, our edit, or the same edit on both sides
    else:
        out.conflict(key, mine, other, "edited on both sides differently")


def _merge_theirs_only(out: _Merged, key, old: _Line | None, other: _Line) -> None:
    """A record only their side has: new there, or one we deleted."""
    if old is None:
        out.lines.append(other.raw)  # new on their side
    elif other.value != old.value:
        out.conflict(key, None, other, "deleted on one side and edited on the other")
    # else: deleted on our side and untouched on theirs -> stays deleted


# -- trees ------------------------------------------------------------------------


def is_jsonl_memory(path: str) -> bool:
    return path.startswith("memory/") and path.endswith(".jsonl")


def _files(repo, tree) -> dict[str, tuple[str, int]]:
    return {f.path: (f.oid, f.mode) for f in repo.list_files(tree)} if tree is not None else {}


@dataclass
class TreeMerge:
    tree: str  # the merged tree id
    merged_records: list[str]  # JSONL files merged record by record


def merge_trees(repo, base_tree, ours_tree, theirs_tree) -> TreeMerge:
    """Three-way merge of trees: a path changed on one side only takes that side;
    memory JSONL changed on both sides merges record by record; anything else
    changed on both sides differently raises MergeConflict naming the files."""
    b, o, t = _files(repo, base_tree), _files(repo, ours_tree), _files(repo, theirs_tree)
    edits: dict[str, bytes | None] = {}
    modes: dict[str, int] = {}
    conflicted: list[str] = []
    details: list[str] = []
    merged: list[str] = []
    for path in sorted(set(b) | set(o) | set(t)):
        old, mine, other = b.get(path), o.get(path), t.get(path)
        if mine == other or other == old:
            continue  # the result is ours
        if mine == old:  # only their side changed it
            edits[path] = None if other is None else repo.blob(other[0])
            if other is not None:
                modes[path] = other[1]
            continue
        if is_jsonl_memory(path) and mine is not None and other is not None:
            result = merge_jsonl(
                _text(repo, old), _text(repo, mine), _text(repo, other), path
            )
            if result.clean:
                edits[path] = result.text.encode()
                modes[path] = mine[1]
                merged.append(path)
                continue
            conflicted.append(path)
            details += result.conflicts
            continue
        conflicted.append(path)
        if mine is None or other is None:
            details.append(f"{path}: deleted on one side and changed on the other")
        else:
            details.append(f"{path}: changed on both sides")
    final = (set(o) | {p for p, d in edits.items() if d is not None}) - {p for p, d in edits.items() if d is None}
    for path in sorted(final):  # a file on one side where the other made a folder
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in final:
                conflicted.append(prefix)
                details.append(f"{prefix}: a file on one side, a folder on the other")
    if conflicted:
        files = sorted(set(conflicted))
        raise MergeConflict(f"merge conflict in {', '.join(files)}", files, details)
    tree = repo.build_tree(ours_tree, edits, modes) if edits else ours_tree.id
    return TreeMerge(str(tree), merged)


def _text(repo, entry) -> str:
    if entry is None:
        return ""
    return repo.blob(entry[0]).decode("utf-8", errors="surrogateescape")


_TRAILER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:\s?.*$")


def add_trailer(message: str, key: str, value: str) -> str:
    """`message` with `key: value` appended to its trailer block (made if absent)."""
    body = message.rstrip("\n")
    paragraphs = body.split("\n\n")
    last = paragraphs[-1].splitlines() if len(paragraphs) > 1 else []
    joiner = "\n" if last and all(_TRAILER_LINE.match(line) for line in last) else "\n\n"
    return f"{body}{joiner}{key}: {value}\n"


def rebase_onto(repo, candidate_commit: str, old_base: str, new_base: str) -> str:
    """Replay the candidate's changes since `old_base` as one commit on `new_base`.

    The new commit keeps the candidate's author and message, adds the trailer
    `Aevolve-Rebased-From: <candidate sha>`, and is written as an object only:
    no ref and no working tree moves. Raises MergeConflict naming the files.
    """
    cand = repo.resolve(str(candidate_commit))
    base_commit = repo.resolve(str(old_base))
    onto = repo.resolve(str(new_base))
    merged = merge_trees(repo, base_commit.tree, onto.tree, cand.tree)
    message = add_trailer(cand.message, REBASED_TRAILER, str(cand.id))
    return str(repo.commit(merged.tree, [str(onto.id)], message, author=cand.author))
