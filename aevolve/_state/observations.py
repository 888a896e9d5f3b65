"""Observations: what the deployed agent did and how it went.

They live on `refs/aevolve/observations`, an ordinary commit chain whose tree
holds JSONL batches (`batches/<yyyymmdd>-<hash>.jsonl`). Ingesting appends one
batch by compare-and-swap on that ref, retrying when another process won, so
parallel `aevolve observe` runs never lose data. `main`, the index and the
working tree are never touched.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aevolve._errors import InvalidInput, RefMoved, UsageError
from aevolve._git.repo import OBSERVATIONS_REF, Repo
from aevolve._state import schemas
from aevolve._state.jsonl import lines, problem, read_jsonl

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


def _read_source(source) -> tuple[str, bytes]:
    if str(source) == "-":
        return "<stdin>", sys.stdin.buffer.read()
    path = Path(source)
    try:
        return str(source), path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{source}: is a folder; give JSONL files") from None


def parse_source(name: str, data: bytes) -> list[dict]:
    """The observations of one JSONL input; any bad line raises InvalidInput for the whole file."""
    problems = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{name}:{line}: not valid UTF-8; nothing of {name} was ingested") from None
    records = []
    for entry in lines(text):
        why = problem(entry)
        if why or entry.record is None:
            problems.append(f"{name}:{entry.number}: {why}")
            continue
        errs = schemas.errors("observation", entry.record)
        for issue in errs:
            problems.append(f"{name}:{entry.number}: {issue.pointer or '/'}: {issue.message}")
        if not errs:
            records.append(entry.record)
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InvalidInput(f"{name} is not valid observation JSONL; nothing of it was ingested:\n{shown}{more}",
                           problems)
    return records


# -- the stored chain ----------------------------------------------------------------


_BATCH_CACHE: dict[str, list[dict]] = {}  # blob id -> records; batches never change


def _batches(repo: Repo, commit: str | None) -> list[tuple[str, list[dict]]]:
    """(batch name, records) of every batch at `commit`, in name order."""
    if commit is None:
        return []
    tree = repo.tree(commit)
    if BATCH_DIR not in tree:
        return []
    out = []
    for batch in sorted(repo.walk(repo.tree(tree[BATCH_DIR].id)), key=lambda f: f.path):
        if batch.oid not in _BATCH_CACHE:
            text = repo.blob(batch.oid).decode("utf-8")
            _BATCH_CACHE[batch.oid] = [r for _, r in read_jsonl(text, f"{BATCH_DIR}/{batch.path}")]
        out.append((batch.path, _BATCH_CACHE[batch.oid]))
    return out


def _stored(repo: Repo, commit: str | None) -> dict[str, str]:
    """id -> canonical JSON of every stored observation."""
    return {r["id"]: canonical(r) for _, records in _batches(repo, commit) for r in records}


def observe(repo: Repo | str | Path, sources: list, *, attempts: int = 200) -> ObserveResult:
    """Ingest observation JSONL files (`'-'` = stdin) into refs/aevolve/observations.

    Every input is validated first: one bad line anywhere and nothing is ingested.
    """
    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    if not sources:
        raise UsageError("give at least one observation file (or - for stdin)")
    incoming: list[dict] = []
    for source in sources:
        incoming.extend(parse_source(*_read_source(source)))
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
        try:
            repo.update_ref(OBSERVATIONS_REF, new, old)
        except RefMoved:
            time.sleep(random.uniform(0, min(0.2, 0.01 * (attempt + 1))))
            continue
        result.added, result.ids, result.commit = len(fresh), list(fresh), str(new)
        return result
    raise RefMoved(f"{OBSERVATIONS_REF} kept moving; nothing was ingested, retry")


# -- querying ------------------------------------------------------------------------


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
    records = [r for _, batch in _batches(repo, repo.ref_target(OBSERVATIONS_REF)) for r in batch]
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
