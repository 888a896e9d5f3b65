"""Observations: what the deployed agent did and how it went.

They live on `refs/aevolve/observations`, an ordinary commit chain whose tree
holds JSONL batches (`batches/<yyyymmdd>-<hash>.jsonl`). Ingesting appends one
batch by compare-and-swap on that ref, retrying when another process won, so
parallel `aevolve observe` runs never lose data. `main`, the index and the
working tree are never touched. Input is read line by line and bounded by
`observe.max_bytes` and `observe.max_records` of main's aevolve.yaml, so a
stream without end (`/dev/zero`) stops with a clear error, not a MemoryError.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aevolve import _config as config_mod
from aevolve._errors import InvalidInput, RefMoved, UsageError
from aevolve._faults import pause
from aevolve._git.repo import MAIN, OBSERVATIONS_REF, Repo
from aevolve._state import schemas
from aevolve._state.jsonl import Line, decode_line, problem, read_jsonl
from aevolve._state.model import State, decode

BATCH_DIR = "batches"


@dataclass
class ObserveResult:
    added: int = 0
    duplicates: int = 0  # already stored (or repeated in the input) with the same content
    ids: list[str] = field(default_factory=list)  # ids of the observations added
    conflicts: list[str] = field(default_factory=list)  # ids stored with different content; kept as stored
    commit: str | None = None  # the new tip of refs/aevolve/observations (None: nothing added)

    def to_dict(self) -> dict:
        return {"added": self.added, "duplicates": self.duplicates, "ids": self.ids,
                "conflicts": self.conflicts, "commit": self.commit, "ref": OBSERVATIONS_REF}


def canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# -- reading input -----------------------------------------------------------------


SHOWN_PROBLEMS = 20  # problems printed; the rest are counted
KEPT_PROBLEMS = 1000  # problems kept on the exception; a flood of bad lines stays bounded


@dataclass
class Limits:
    """What one `observe` run may read: observe.max_bytes and observe.max_records."""

    max_bytes: int
    max_records: int
    bytes_read: int = 0
    records: int = 0

    @classmethod
    def of(cls, repo: Repo) -> Limits:
        """The limits main's aevolve.yaml sets (the defaults before main exists)."""
        raw = State.from_tree(repo, MAIN).config() if repo.ref_target(MAIN) else config_mod.resolve({})
        section, defaults = raw.get("observe"), config_mod.DEFAULTS["observe"]
        section = section if isinstance(section, dict) else {}

        def value(key: str) -> int:  # a bad value is validate's to report; the default still bounds
            got = section.get(key)
            return got if isinstance(got, int) and not isinstance(got, bool) and got >= 1 else defaults[key]

        return cls(value("max_bytes"), value("max_records"))

    def too_big(self, name: str) -> InvalidInput:
        return InvalidInput(f"{name}: the input is larger than {self.max_bytes:,} bytes (observe.max_bytes in "
                            "aevolve.yaml); nothing was ingested: split it, or raise the limit on main")

    def too_many(self, name: str, number: int) -> InvalidInput:
        return InvalidInput(f"{name}:{number}: more than {self.max_records:,} observations in one run "
                            "(observe.max_records in aevolve.yaml); nothing was ingested: split the input, "
                            "or raise the limit on main")


def _open_source(source):
    """(name, binary stream, whether to close it) of a FILE argument; '-' is stdin."""
    if str(source) == "-":
        return "<stdin>", sys.stdin.buffer, False
    try:
        return str(source), open(source, "rb"), True  # closed by read_source
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: is a folder; give JSONL files") from None


def _raw_lines(name: str, stream, limits: Limits):
    """(line number, bytes without the line break) of a stream, never reading past
    the byte budget: a line without end (a stream of NULs) stops at the limit."""
    for number in itertools.count(1):
        chunk = stream.readline(limits.max_bytes - limits.bytes_read + 1)
        if not chunk:
            return
        limits.bytes_read += len(chunk)
        if limits.bytes_read > limits.max_bytes:
            raise limits.too_big(name)
        if number == 1:
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a BOM is not content
        yield number, chunk.removesuffix(b"\n")


def read_source(source, limits: Limits) -> list[dict]:
    """The observations of one JSONL input; any bad line raises InvalidInput for the whole file."""
    name, stream, close = _open_source(source)
    try:
        return parse_lines(name, _raw_lines(name, stream, limits), limits)
    finally:
        if close:
            stream.close()


def parse_lines(name: str, raw_lines, limits: Limits) -> list[dict]:
    """The observations of (number, bytes) lines; every bad line is reported, none ingested."""
    problems: list[str] = []
    failed = 0
    records = []
    for number, data in raw_lines:
        why, entry = _decoded(number, data)
        if entry is None and why is None:
            continue  # blank
        limits.records += 1
        if limits.records > limits.max_records:
            raise limits.too_many(name, number)
        found = [why] if why else _schema_problems(entry)
        if found:
            failed += 1
            if len(problems) < KEPT_PROBLEMS:
                problems += [f"{name}:{number}: {p}" for p in found]
        elif entry is not None and entry.record is not None:
            records.append(entry.record)
    if failed:
        raise _refusal(name, problems, failed)
    return records


def _decoded(number: int, data: bytes) -> tuple[str | None, Line | None]:
    """(why the line is not a record, or None; the decoded line, or None when blank)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {exc.start + 1})", None
    if not text.strip():
        return None, None
    entry = decode_line(number, text)
    return problem(entry), entry


def _schema_problems(entry: Line | None) -> list[str]:
    record = entry.record if entry is not None else None
    return [f"{issue.pointer or '/'}: {issue.message}" for issue in schemas.errors("observation", record)]


def _refusal(name: str, problems: list[str], failed: int) -> InvalidInput:
    shown = "\n".join(f"  {p}" for p in problems[:SHOWN_PROBLEMS])
    rest = len(problems) - SHOWN_PROBLEMS
    more = f"\n  ... and {rest} more" if rest > 0 else ""
    lines_note = f" ({failed} bad line(s))" if failed > 1 else ""
    return InvalidInput(f"{name} is not valid observation JSONL{lines_note}; nothing of it was ingested:\n"
                        f"{shown}{more}", problems)


# -- the stored chain ----------------------------------------------------------------


_BATCH_CACHE: dict[str, list[dict]] = {}  # blob id -> records; batches never change


def batches(repo: Repo, commit: str | None) -> list[tuple[str, list[dict]]]:
    """(batch name, records) of every batch at `commit`, in name order."""
    if commit is None:
        return []
    tree = repo.tree(commit)
    if BATCH_DIR not in tree:
        return []
    out = []
    for batch in sorted(repo.walk(repo.tree(tree[BATCH_DIR].id)), key=lambda f: f.path):
        if batch.oid not in _BATCH_CACHE:
            path = f"{OBSERVATIONS_REF}:{BATCH_DIR}/{batch.path}"  # a pushed ref is anyone's input
            text = decode(repo.blob(batch.oid), path)
            _BATCH_CACHE[batch.oid] = [r for _, r in read_jsonl(text, path)]
        out.append((batch.path, _BATCH_CACHE[batch.oid]))
    return out


def _stored(repo: Repo, commit: str | None) -> dict[str, str]:
    """id -> canonical JSON of every stored observation."""
    return {r["id"]: canonical(r) for _, records in batches(repo, commit) for r in records}


def observe(repo: Repo | str | Path, sources: list, *, attempts: int = 200) -> ObserveResult:
    """Ingest observation JSONL files (`'-'` = stdin) into refs/aevolve/observations.

    Every input is validated first: one bad line anywhere and nothing is ingested.
    """
    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    if not sources:
        raise UsageError("give at least one observation file (or - for stdin)")
    limits = Limits.of(repo)
    incoming: list[dict] = []
    for source in sources:
        incoming.extend(read_source(source, limits))
    for attempt in range(attempts):
        old = repo.ref_target(OBSERVATIONS_REF)
        stored = _stored(repo, old)
        result = ObserveResult()
        fresh: dict[str, dict] = {}
        for record in incoming:
            key, text = record["id"], canonical(record)
            known = stored.get(key) or (canonical(fresh[key]) if key in fresh else None)
            if known is None:
                fresh[key] = record
            elif known == text:
                result.duplicates += 1
            elif key not in result.conflicts:
                result.conflicts.append(key)
        if not fresh:
            return result
        body = "".join(canonical(r) + "\n" for r in fresh.values()).encode()
        digest = hashlib.sha256(body).hexdigest()[:12]
        name = f"{BATCH_DIR}/{datetime.now(UTC):%Y%m%d}-{digest}.jsonl"
        base_tree = repo.tree(old) if old else None
        tree = repo.build_tree(base_tree, {name: body})
        message = f"aevolve: observe {len(fresh)} observation(s)\n\nAevolve-Observations: {len(fresh)}\n"
        new = repo.commit(tree, [old] if old else [], message)
        pause("observe-objects")
        try:
            repo.update_ref(OBSERVATIONS_REF, new, old)
        except RefMoved:
            time.sleep(random.uniform(0, min(0.2, 0.01 * (attempt + 1))))
            continue
        result.added, result.ids, result.commit = len(fresh), list(fresh), str(new)
        return result
    raise RefMoved(f"{OBSERVATIONS_REF} kept moving; nothing was ingested, retry")


# -- querying ------------------------------------------------------------------------


def observe_records(repo: Repo, records: list[dict]) -> ObserveResult:
    """Ingest records converted from another format (Letta messages, traces) through
    `observe` itself: the same schema check, limits and deduplication as a file."""
    import os
    import tempfile

    from aevolve._state.jsonl import dump_jsonl_record

    handle, path = tempfile.mkstemp(prefix="observe-", suffix=".jsonl", dir=repo.git_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(dump_jsonl_record(r) + "\n" for r in records)
        return observe(repo, [path])
    finally:
        os.unlink(path)


def parse_when(value: str) -> datetime:
    """A date (`2024-05-01`) or an RFC 3339 date-time, as an aware UTC datetime."""
    text = str(value).strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{value!r} is not a date (YYYY-MM-DD) or an RFC 3339 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def load_observations(repo: Repo | str | Path, *, ids=None, failed: bool | None = None, since=None) -> list[dict]:
    """Stored observations, oldest first (by ts, then id).

    `ids` selects those ids (an unknown id is a UsageError); `failed=True` keeps
    unsuccessful ones, `failed=False` successful ones; `since` a date or date-time.
    """
    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    records = [r for _, batch in batches(repo, repo.ref_target(OBSERVATIONS_REF)) for r in batch]
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        by_id = {r["id"]: r for r in records}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise UsageError(f"unknown observation id(s): {', '.join(missing)} (see `aevolve observations`)")
        records = [by_id[i] for i in wanted]
    if failed is not None:
        records = [r for r in records if (r["feedback"]["success"] is False) == failed]
    if since is not None:
        start = since if isinstance(since, datetime) else parse_when(since)
        records = [r for r in records if parse_when(r["ts"]) >= start]
    return sorted(records, key=lambda r: (parse_when(r["ts"]), r["id"]))
