"""Traces as observations: `aevolve observe --format otel|langsmith FILE`.

A converter (`otel`, `langsmith`) turns one exported file into observation
records, one per agent run, and says which records of the file it could not
read, with their line. Nothing is ingested when one is bad, unless the caller
asked to skip them (`--skip-invalid`). The records then go through `observe`'s
own code (schema, limits, deduplication by id), so a file ingested twice adds
nothing the second time.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aevolve._errors import InvalidInput, UsageError

FORMATS = ("jsonl", "otel", "langsmith")
SHOWN = 20  # problems printed; the rest are counted
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


@dataclass
class Converted:
    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "FILE:LINE: why" of records not read


@dataclass
class TraceIngest:
    format: str
    added: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # problems of records skipped (--skip-invalid)
    commit: str | None = None

    def to_dict(self) -> dict:
        return {"format": self.format, "added": self.added, "duplicates": self.duplicates,
                "conflicts": self.conflicts, "ids": self.ids, "skipped": self.skipped, "commit": self.commit}


def safe_id(text: str) -> str:
    """An observation id (observation.json's pattern) made of `text`."""
    return _ID_UNSAFE.sub("-", text).strip("-._:")[:200] or "run"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_text(source, max_bytes: int) -> tuple[str, str]:
    """(name, text) of a FILE argument ('-' is stdin), never reading past `max_bytes`."""
    if str(source) == "-":
        name, data = "<stdin>", sys.stdin.buffer.read(max_bytes + 1)
    else:
        name = str(source)
        try:
            with open(source, "rb") as stream:
                data = stream.read(max_bytes + 1)
        except FileNotFoundError:
            raise UsageError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{source}: is a folder; give an exported trace file") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"{name}: the input is larger than {max_bytes:,} bytes (observe.max_bytes in "
                           "aevolve.yaml); nothing was ingested: split it, or raise the limit on main")
    try:
        return name, data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{name}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                           "nothing was ingested") from None


def convert(fmt: str, name: str, text: str) -> Converted:
    if fmt == "otel":
        from aevolve._ecosystem.otel import convert as otel

        return otel(name, text)
    if fmt == "langsmith":
        from aevolve._ecosystem.langsmith import convert as langsmith

        return langsmith(name, text)
    raise UsageError(f"unknown trace format {fmt!r}: use one of {', '.join(FORMATS)}")


def _schema_problems(name: str, records: list[dict], where: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Records the observation schema accepts, and the problems of the others."""
    from aevolve._state import schemas

    kept, problems = [], []
    for record in records:
        issues = schemas.errors("observation", record)
        if issues:
            at = where.get(record.get("id", ""), name)
            problems.append(f"{at}: the run converts to an invalid observation: "
                            f"{issues[0].pointer or '/'}: {issues[0].message}")
        else:
            kept.append(record)
    return kept, problems


def ingest(repo, fmt: str, sources: list, *, skip_invalid: bool = False) -> TraceIngest:
    """Convert every source, then ingest all records in one `observe` (one batch)."""
    from aevolve._state.observations import Limits

    limits = Limits.of(repo)
    result = TraceIngest(fmt)
    records: list[dict] = []
    problems: list[str] = []
    budget = limits.max_bytes
    for source in sources:
        name, text = read_text(source, budget)
        budget -= len(text.encode())
        converted = convert(fmt, name, text)
        where = {r["id"]: name for r in converted.records if isinstance(r.get("id"), str)}
        kept, bad = _schema_problems(name, converted.records, where)
        records += kept
        problems += converted.problems + bad
    if problems and not skip_invalid:
        raise _refusal(fmt, problems)
    result.skipped = problems
    if len(records) > limits.max_records:
        raise InvalidInput(f"more than {limits.max_records:,} runs in one run of observe (observe.max_records "
                           "in aevolve.yaml); nothing was ingested: split the input, or raise the limit on main")
    if records:
        _observe(repo, records, result)
    return result


def _refusal(fmt: str, problems: list[str]) -> InvalidInput:
    shown = "\n".join(f"  {p}" for p in problems[:SHOWN])
    rest = len(problems) - SHOWN
    more = f"\n  ... and {rest} more" if rest > 0 else ""
    return InvalidInput(f"{len(problems)} record(s) of the {fmt} export cannot be read; nothing was ingested "
                        f"(--skip-invalid ingests the others):\n{shown}{more}", problems)


def _observe(repo, records: list[dict], result: TraceIngest) -> None:
    """Through `observe` itself: its schema check, limits and deduplication."""
    from aevolve._state.observations import observe_records

    done = observe_records(repo, records)
    result.added, result.duplicates, result.conflicts = done.added, done.duplicates, done.conflicts
    result.ids, result.commit = done.ids, done.commit
