"""Memory shard families: where appended records go once a memory file is big.

A family is `memory/<stem>.jsonl` followed by `memory/<stem>.0001.jsonl`,
`memory/<stem>.0002.jsonl`, ... in the same folder (4 digits, more past 9999),
read as one sequence: the base file, then the shards in numeric order. Records
are appended to the last file of the family (its tail); when the tail would pass
`memory.shard_bytes`, a new shard is started. Existing records never move, so a
commit rewrites at most one shard-sized blob however long the family grows.

Pure functions of paths and sizes: no git, no state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aevolve._errors import InvalidInput

SETTING = "memory.shard_bytes"
_SHARD = re.compile(r"^(?P<stem>memory/(?:.+/)?[^/]+)\.(?P<number>[0-9]{4,})\.jsonl$")


def is_memory(path: str) -> bool:
    """A memory file: `memory/**/*.jsonl` (what validate checks as memory)."""
    return path.startswith("memory/") and path.endswith(".jsonl")


def split(path: str) -> tuple[str, int]:
    """(the family's base path, this file's number: 0 for the base) of a memory file.
    Only the canonical spelling is a shard (`x.0001.jsonl`, not `x.1.jsonl` or
    `x.00001.jsonl`, and never `x.0000.jsonl`): any other name is a family of its own."""
    found = _SHARD.match(path)
    if found:
        number = int(found["number"])
        if number >= 1 and found["number"] == f"{number:04d}":
            return found["stem"] + ".jsonl", number
    return path, 0


def shard_name(base: str, number: int) -> str:
    """The path of file `number` of the family of `base` (0: the base itself)."""
    return base if number == 0 else f"{base[:-len('.jsonl')]}.{number:04d}.jsonl"


def families(paths: Iterable[str]) -> dict[str, list[str]]:
    """Base path -> the family's files present in `paths`, in reading order (base
    first, then shards by number). A family whose base file is missing is keyed by
    the base path anyway."""
    numbers: dict[str, list[int]] = {}
    for path in paths:
        if is_memory(path):
            base, number = split(path)
            numbers.setdefault(base, []).append(number)
    return {base: [shard_name(base, n) for n in sorted(found)] for base, found in sorted(numbers.items())}


def ordered(paths: Iterable[str]) -> list[str]:
    """Memory files in reading order: family by family, each base first, then its shards."""
    return [p for members in families(paths).values() for p in members]


def family_of(path: str, paths: Iterable[str]) -> list[str]:
    """The files of `path`'s family present in `paths`, in reading order."""
    base, _ = split(path)
    return families(p for p in paths if is_memory(p) and split(p)[0] == base).get(base, [])


@dataclass(frozen=True)
class Run:
    path: str  # the file these records are appended to
    count: int  # how many of the records, in order


def place(base: str, tail: int, tail_size: int, sizes: Sequence[int], limit: int) -> list[Run]:
    """Where records of `sizes` bytes go, in order, when file `tail` of the family of
    `base` holds `tail_size` bytes: into the tail while it stays within `limit`, then
    into new shards `tail + 1`, ... A record is never split: one bigger than `limit`
    goes alone into a file of its own. `limit` 0 or less: everything goes to the tail."""
    runs: list[Run] = []
    number, size, count = tail, tail_size, 0
    for record in sizes:
        if limit > 0 and size > 0 and size + record > limit:
            if count:
                runs.append(Run(shard_name(base, number), count))
            number, size, count = number + 1, 0, 0
        size += record
        count += 1
    if count:
        runs.append(Run(shard_name(base, number), count))
    return runs


def shard_limit(config: dict, config_text: str | None = None) -> int:
    """`memory.shard_bytes` of an effective configuration (0: never shard); InvalidInput
    (exit 3) naming the setting, and its line when `config_text` is given, when it is
    not a whole number of bytes, 0 or more."""
    from aevolve import _config as config_mod

    default = config_mod.DEFAULTS["memory"]["shard_bytes"]
    section = config.get("memory")
    value = section.get("shard_bytes", default) if isinstance(section, dict) else default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    where = "aevolve.yaml"
    if config_text is not None:
        from aevolve._state.model import yaml_line

        line = yaml_line(config_text, "/memory/shard_bytes")
        where += f":{line}" if line else ""
    raise InvalidInput(f"{where}: {SETTING} must be a whole number of bytes, 0 or more (0: never shard), "
                       f"not {value!r}; fix it in aevolve.yaml")
