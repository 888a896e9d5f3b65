"""Memory JSONL compared record by record (matched by `record_key`), never line by line.

Only lines that are not on both sides are parsed, and memory stays bounded:
the lines both blobs share at the start and at the end are skipped by
comparing bytes (an append parses only the appended lines); in between, the
old side's lines are held as one hash each and the new side's are matched
against them chunk by chunk, never as a list of lines or of records. Only the
differing lines are ever copied out and decoded: a 1,000,000-record file with
5,000 edits holds the two blobs, one hash per line of the old side, and
10,000 short lines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from itertools import compress, count

from aevolve._json import loads
from aevolve._review.semdiff.fields import field_changes
from aevolve._review.semdiff.result import MemoryChange, RecordChange
from aevolve._review.semdiff.text import status
from aevolve._state.jsonl import record_key

CHUNK = 1 << 20  # bytes of lines split at once: C-speed splitting, a bounded copy
_BLOCK = 1 << 16  # bytes compared at once when looking for the shared start and end

_EMPTY = hash(b"")
Numbered = list[tuple[int, bytes]]  # (1-based line number, the line without its "\n")


def memory_change(sa, sb, path, old, new) -> MemoryChange:
    change = MemoryChange(path, status(old, new))
    da = sa.read_whole(path, old[0]) if old else b""
    db = sb.read_whole(path, new[0]) if new else b""
    if b"\0" in da[:8192] or b"\0" in db[:8192]:
        change.binary, change.note = True, f"binary ({len(da)} -> {len(db)} bytes)"
        return change
    gone, came = differing_lines(da, db)
    del da, db  # the blobs: only the differing lines are needed from here on
    old_records = _parse_lines(gone, "a", change)
    new_records = _parse_lines(came, "b", change)
    for key, rec in new_records.items():
        if key in old_records:
            before = old_records.pop(key)
            if before != rec:
                change.changed.append(RecordChange(key, "changed", before, rec, field_changes(before, rec)))
        else:
            change.added.append(RecordChange(key, "added", new=rec))
    change.removed = [RecordChange(k, "removed", old=r) for k, r in old_records.items()]
    return change


def differing_lines(da: bytes, db: bytes) -> tuple[Numbered, Numbered]:
    """(lines only in a, lines only in b) with their line numbers, duplicates counted:
    the multiset difference of the two sides' lines (blank lines aside: they carry
    nothing). Lines that sit in the same place at the start or the end of both blobs
    are on both sides by definition and never split; those in between are matched by
    hash (64 bits: two different lines pass for equal about once in 10^7 diffs of a
    million lines each)."""
    start = _shared_start(da, db)
    end_a, end_b = _shared_end(da, db, start)
    first = db.count(b"\n", 0, start) + 1  # db: `start` may sit one past the end of da ("x" -> "x\ny")
    unique = _unique_hashes(da, start, end_a, first)
    if unique is not None:  # the usual case: set operations, at C speed
        came = _new_lines(db, start, end_b, first, unique)
        return (_marked(da, start, end_a, first, unique) if unique else []), came
    counts: Counter[int] = Counter()
    for _, lines in chunks(da, start, end_a, first):
        counts.update(map(hash, filter(None, lines)))  # one int per distinct line, not the line
    came = _unmatched(db, start, end_b, first, counts)
    return (_left_over(da, start, end_a, first, counts) if counts else []), came


def _unique_hashes(data: bytes, start: int, end: int, first: int) -> set[int] | None:
    """The hashes of the non-empty lines of data[start:end], or None when one repeats."""
    out: set[int] = set()
    for _, lines in chunks(data, start, end, first):
        before = len(out)
        out.update(map(hash, lines))
        out.discard(_EMPTY)
        if len(out) - before != len(lines) - lines.count(b""):
            return None
    return out


def _new_lines(data: bytes, start: int, end: int, first: int, unique: set[int]) -> Numbered:
    """The non-empty lines of data[start:end] whose hash `unique` does not hold, using up
    (removing) those it holds: a line twice in data matches once."""
    out: Numbered = []
    for number, lines in chunks(data, start, end, first):
        hashes = list(map(hash, lines))
        present = set(hashes)
        present.discard(_EMPTY)
        if len(present) != len(hashes) - hashes.count(_EMPTY):  # a line twice in this chunk: one by one
            out += [(k, line) for k, (line, h) in enumerate(zip(lines, hashes, strict=True), number)
                    if h != _EMPTY and not _take(unique, h)]
            continue
        fresh = present - unique
        unique -= present
        if fresh:
            out += compress(zip(count(number), lines), map(fresh.__contains__, hashes))
    return out


def _marked(data: bytes, start: int, end: int, first: int, hashes: set[int]) -> Numbered:
    """The lines of data[start:end] whose hash is in `hashes`."""
    out: Numbered = []
    for number, lines in chunks(data, start, end, first):
        out += compress(zip(count(number), lines), map(hashes.__contains__, map(hash, lines)))
    return out


def _take(hashes: set[int], h: int) -> bool:
    if h in hashes:
        hashes.remove(h)
        return True
    return False


def _unmatched(data: bytes, start: int, end: int, first: int, counts: Counter[int]) -> Numbered:
    """The lines of data[start:end] that `counts` does not cover, using up what it covers
    (earlier lines first: of two equal lines, the later one is the one added)."""
    out: Numbered = []
    for number, lines in chunks(data, start, end, first):
        for k, line in enumerate(lines, number):
            if line and not _use(counts, hash(line)):
                out.append((k, line))
    return out


def _left_over(data: bytes, start: int, end: int, first: int, counts: Counter[int]) -> Numbered:
    """The lines of data[start:end] that `counts` still holds (the first ones of equal lines)."""
    out: Numbered = []
    for number, lines in chunks(data, start, end, first):
        for k, line in enumerate(lines, number):
            if line and _use(counts, hash(line)):
                out.append((k, line))
    return out


def _use(counts: Counter, h: int) -> bool:
    """Use up one line of hash `h`; False when none is left."""
    left = counts.get(h)
    if not left:
        return False
    if left == 1:
        del counts[h]
    else:
        counts[h] = left - 1
    return True


def chunks(data: bytes, start: int, end: int, first: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, lines) of data[start:end], about CHUNK bytes at a time, cut
    at line breaks: together the lines are `data[start:end].split(b"\\n")`, never all held."""
    pos, number = start, first
    while True:
        cut = data.find(b"\n", pos + CHUNK, end) if pos + CHUNK < end else -1
        lines = data[pos:end if cut < 0 else cut].split(b"\n")
        yield number, lines
        if cut < 0:
            return
        pos, number = cut + 1, number + len(lines)


def _shared_start(a: bytes, b: bytes) -> int:
    """Where the first line that differs starts: a line boundary both blobs share."""
    n = min(len(a), len(b))
    same, step = 0, _BLOCK
    while step:  # compare whole blocks (memcmp), then halve the block near the first difference
        while same + step <= n and a[same:same + step] == b[same:same + step]:
            same += step
        step //= 2
    if same == len(a) and same < len(b) and b[same:same + 1] == b"\n":
        return same + 1  # a is b up to its last line, which lacked its line break: "x" -> "x\ny"
    return a.rfind(b"\n", 0, same) + 1


def _shared_end(a: bytes, b: bytes, start: int) -> tuple[int, int]:
    """(end in a, end in b) of the region between `start` and the complete lines both blobs
    end with (those lines start right after a line break that is part of the shared end)."""
    la, lb = len(a), len(b)
    n = min(la, lb) - start
    same, step = 0, _BLOCK
    while step:
        while same + step <= n and a[la - same - step:la - same] == b[lb - same - step:lb - same]:
            same += step
        step //= 2
    if same == 0:
        return la, lb
    cut = a.find(b"\n", la - same, la)  # the first line break inside the shared end
    if cut < 0:
        return la, lb
    keep = la - cut - 1  # bytes after it: whole lines on both sides
    return la - keep, lb - keep


def _parse_lines(numbered: Numbered, side: str, change: MemoryChange) -> dict:
    out: dict[str, dict] = {}
    for number, raw in numbered:
        if not raw.strip():
            continue
        try:
            value = loads(raw)  # bounded depth, no NaN: what validate reads
            problem = None if isinstance(value, dict) else "not a JSON object"
        except UnicodeDecodeError:
            problem = "not valid UTF-8"
        except json.JSONDecodeError as exc:
            problem = f"broken JSON: {exc.msg}"
        if problem:
            change.invalid.append({"side": side, "line": number, "error": problem,
                                   "text": raw.decode("utf-8", "replace")[:200]})
            continue
        key = record_key(value)
        while key in out:  # the same key twice on one side: keep both visible
            key += "'"
        out[key] = value
    return out
