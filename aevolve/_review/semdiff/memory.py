"""Memory JSONL compared record by record (matched by `record_key`), never line by line.

Only lines that are not on both sides are parsed: a 200,000-record file with
1,000 edits costs two set builds and 2,000 json.loads.
"""

from __future__ import annotations

import json
from collections import Counter

from aevolve._json import loads
from aevolve._review.semdiff.fields import field_changes
from aevolve._review.semdiff.result import MemoryChange, RecordChange
from aevolve._review.semdiff.text import status
from aevolve._state.jsonl import record_key


def memory_change(sa, sb, path, old, new) -> MemoryChange:
    change = MemoryChange(path, status(old, new))
    da = sa.read(path, old[0]) if old else b""
    db = sb.read(path, new[0]) if new else b""
    if b"\0" in da[:8192] or b"\0" in db[:8192]:
        change.binary, change.note = True, f"binary ({len(da)} -> {len(db)} bytes)"
        return change
    la, lb = da.split(b"\n"), db.split(b"\n")
    gone, came = _differing_lines(la, lb)
    old_records = _parse_lines(gone, la, "a", change)
    new_records = _parse_lines(came, lb, "b", change)
    for key, rec in new_records.items():
        if key in old_records:
            before = old_records.pop(key)
            if before != rec:
                change.changed.append(RecordChange(key, "changed", before, rec, field_changes(before, rec)))
        else:
            change.added.append(RecordChange(key, "added", new=rec))
    change.removed = [RecordChange(k, "removed", old=r) for k, r in old_records.items()]
    return change


def _differing_lines(la: list[bytes], lb: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(lines only in a, lines only in b), counting duplicates when there are any."""
    sa_set, sb_set = set(la), set(lb)
    if len(sa_set) == len(la) and len(sb_set) == len(lb):
        return [line for line in la if line not in sb_set], [line for line in lb if line not in sa_set]
    ca, cb = Counter(la), Counter(lb)
    return list((ca - cb).elements()), list((cb - ca).elements())


def _parse_lines(raw_lines: list[bytes], all_lines: list[bytes], side: str, change: MemoryChange) -> dict:
    out: dict[str, dict] = {}
    where: dict[bytes, int] | None = None  # line -> its first number, built on the first broken line
    for raw in raw_lines:
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
            if where is None:
                where = {}
                for number, line in enumerate(all_lines, 1):
                    where.setdefault(line, number)
            change.invalid.append({"side": side, "line": where[raw], "error": problem,
                                   "text": raw.decode("utf-8", "replace")[:200]})
            continue
        key = record_key(value)
        while key in out:  # the same key twice on one side: keep both visible
            key += "'"
        out[key] = value
    return out
