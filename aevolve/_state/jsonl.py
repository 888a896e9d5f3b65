"""JSON Lines: the one reader of memory files, observations and batches.

A-Evolve writes empty and blank-line-only files, so blank lines carry nothing.
Every reader in aevolve walks lines through `lines()`; what differs is only
what each does with a line that is not a JSON object (report it, refuse the
file, or keep it as opaque text, as the merge driver does). Every JSON value
read from a file or a note goes through `loads`: NaN and Infinity are not
JSON (RFC 8259), and nesting is bounded so no later walk of a value recurses
without end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from aevolve._errors import FileError
from aevolve._json import loads


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the file
    raw: str  # the line as written, without its line break
    value: object  # the decoded JSON value, or the JSONDecodeError

    @property
    def record(self) -> dict | None:
        """The line's JSON object, or None (broken JSON, or a value that is not an object)."""
        return self.value if isinstance(self.value, dict) else None


def lines(text: str) -> Iterator[Line]:
    """Every non-blank line of a JSONL text, decoded (a BOM starting the text is not content).

    Lines end at "\n" only: JSON strings may hold U+2028 or a form feed unescaped,
    which `str.splitlines` would take for line breaks."""
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        if raw.strip():
            yield decode_line(number, raw)


def decode_line(number: int, raw: str) -> Line:
    """One line of JSONL text (without its "\n"), decoded."""
    try:
        value: object = loads(raw)
    except json.JSONDecodeError as exc:
        value = exc
    return Line(number, raw.rstrip("\r"), value)


def iter_jsonl(text: str) -> Iterator[tuple[int, object]]:
    """(line number, decoded value or the JSONDecodeError) for each non-blank line."""
    for line in lines(text):
        yield line.number, line.value


def problem(line: Line) -> str | None:
    """Why a line is not a record (None when it is one)."""
    if isinstance(line.value, json.JSONDecodeError):
        return f"broken JSON: {line.value.msg} (column {line.value.colno})"
    if not isinstance(line.value, dict):
        return "each line must be a JSON object"
    return None


def read_jsonl(text: str, path: str) -> list[tuple[int, dict]]:
    """Every record of a JSONL file; the first line that is not a record raises FileError."""
    out = []
    for line in lines(text):
        why = problem(line)
        if why:
            raise FileError(path, why, line.number)
        out.append((line.number, line.record or {}))  # a record: `problem` said so
    return out


def record_key(record: dict) -> str:
    """How memory records are matched: by id, else by their content's hash."""
    if isinstance(record.get("id"), str) and record["id"]:
        return record["id"]
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dump_jsonl_record(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
