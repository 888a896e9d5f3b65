"""Bounded growth: prune materialized trees and cached results, let git pack.

`collect` is `aevolve gc`: it removes materialized trees beyond the
`gc.keep_trees` most recently used and those unused for `gc.max_age_days`
(never one a running gate holds: `materialize.remove_tree`), cache rows by the
same rules (`results_cache.prune`), and packs git's loose objects (`pack_commands`).
`maintain` is what the command line runs after a writing command: a cheap count,
a prune only past twice the limits, and packing once LOOSE_LIMIT loose objects
piled up (git's own threshold is far too high for a repository that writes a few
objects per cycle). The limits are main's `aevolve.yaml`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from aevolve._config import DEFAULTS
from aevolve._git.repo import Repo

DAY_S = 86400.0
LOOSE_LIMIT = 100  # loose objects that make the upkeep pack them (git's gc.auto: 6700)
PACK_LIMIT = 10  # more packs make `git gc --auto` merge them (git's gc.autoPackLimit: 50)
REPACK = ["repack", "-d", "-l", "-q"]  # the loose objects into one new pack; -d deletes them
GC_AUTO = ["gc", "--auto", "--quiet"]
_SAMPLE = [f"{i:02x}" for i in range(0, 256, 4)]  # objects/00, 04, ... fc: a quarter of the folders
_HEX = frozenset("0123456789abcdef")
_MIN_ROW_BYTES = 64  # less than any cached row takes (its key alone is longer)


@dataclass(frozen=True)
class Limits:
    keep_trees: int
    max_cache_rows: int
    max_age_days: float

    @classmethod
    def of(cls, config: dict) -> Limits:
        """From a resolved configuration; a value of the wrong type keeps its default
        (validate reports it)."""
        gc, default = config.get("gc") or {}, DEFAULTS["gc"]

        def number(key: str, whole: bool) -> float:
            value = gc.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:  # NaN too
                return default[key]
            return default[key] if whole and not float(value).is_integer() else value

        return cls(int(number("keep_trees", True)), int(number("max_cache_rows", True)),
                   float(number("max_age_days", False)))


@dataclass
class GcResult:
    trees_removed: int = 0
    tree_bytes: int = 0
    trees_kept: int = 0
    trees_in_use: int = 0  # over the limits, but held by a running gate
    leftovers_removed: int = 0  # folders killed gates left behind
    rows_removed: int = 0
    cache_bytes: int = 0  # how much cache.sqlite shrank
    loose_before: int | None = None  # git's loose objects, before and after `git gc --auto`
    loose_after: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def limits(repo: Repo) -> Limits:
    """The gc limits of main's aevolve.yaml (the defaults without a main)."""
    from aevolve._config import resolve
    from aevolve._errors import RefNotFound
    from aevolve._git.repo import MAIN
    from aevolve._state.model import CONFIG_FILE, decode, load_yaml

    try:
        data = repo.read(repo.tree(MAIN), CONFIG_FILE)  # one blob: not State, which lists the whole tree
    except RefNotFound:
        data = None
    raw = load_yaml(decode(data, CONFIG_FILE), CONFIG_FILE) if data is not None else None
    return Limits.of(resolve(raw if isinstance(raw, dict) else {}))


def collect(repo: Repo, lim: Limits, *, now: float | None = None) -> GcResult:
    """`aevolve gc`: prune trees and cache rows to the limits, then pack every loose
    object and let `git gc --auto` consolidate packs (`pack_commands`)."""
    now = time.time() if now is None else now
    out = GcResult()
    prune_trees(repo, lim, now, out)
    prune_cache(repo, lim, now, out, vacuum=True)
    out.loose_before = loose_objects(repo)
    for args in pack_commands(repo, loose=out.loose_before):
        repo.run_git(["-c", "gc.autoDetach=false", *args], check=False)
    out.loose_after = loose_objects(repo)
    return out


def maintain(repo: Repo) -> GcResult | None:
    """After a writing command: prune only past twice a limit, then let git pack.
    None when nothing was pruned."""
    from aevolve._errors import AevolveError
    from aevolve._gate.materialize import list_trees
    from aevolve._gate.results_cache import count_rows
    from aevolve._state.cache import open_cache

    try:
        lim = limits(repo)
    except AevolveError:  # a broken aevolve.yaml: the commands that read it say so
        lim = Limits.of(DEFAULTS)
    out = None
    trees = repo.git_dir / "aevolve" / "trees"
    if trees.is_dir() and len(list_trees(repo)) > 2 * lim.keep_trees:
        out = GcResult()
        prune_trees(repo, lim, time.time(), out)
    if _cache_bytes(repo) > 2 * lim.max_cache_rows * _MIN_ROW_BYTES:  # else it cannot hold that many rows
        conn = open_cache(repo)
        try:
            over = count_rows(conn) > 2 * lim.max_cache_rows
        finally:
            conn.close()
        if over:
            out = out or GcResult()
            prune_cache(repo, lim, time.time(), out, vacuum=False)
    for args in pack_commands(repo):  # the user's gc.autoDetach applies
        repo.run_git(args, check=False)
    return out


def pack_commands(repo: Repo, *, loose: int | None = None) -> list[list[str]]:
    """The git commands that keep objects packed, [] when none could do anything.

    git's own `gc.auto` (6700 loose objects, estimated from objects/17 alone) let a
    state repository that writes ~10 objects per cycle keep thousands of loose
    objects for hundreds of cycles (19 MiB of .git where packs need 1). So, unless
    the user set `gc.auto`: `git repack -d -l` once LOOSE_LIMIT loose objects piled
    up (it packs only the loose ones, then deletes them: cheap), and `git gc --auto`
    with `gc.autoPackLimit` PACK_LIMIT (unless set) to merge those packs now and
    then, which also packs refs and expires reflogs. Below both limits git starts only
    when its sample folder objects/17 holds two loose objects (a lower gc.auto of the
    user's may apply); a lower gc.autoPackLimit applies from PACK_LIMIT on. With
    `loose` (an exact count, `aevolve gc`) any loose object is packed and git is
    always asked."""
    counts = object_counts(repo)
    if counts is None:
        return [GC_AUTO]  # objects live elsewhere: let git decide
    pending = counts.loose if loose is None else loose
    if loose is None and pending < LOOSE_LIMIT and counts.packs <= PACK_LIMIT:
        # git's sample folder: a lower gc.auto of the user's may apply. Our own few packs
        # start no git (that was a `git gc --auto` doing nothing after every command)
        return [GC_AUTO] if _loose_in(repo.common_dir / "objects" / "17") > 1 else []
    config = repo.config_list()
    commands = [] if "gc.auto" in config or pending < (1 if loose is not None else LOOSE_LIMIT) else [REPACK]
    limit = [] if "gc.autopacklimit" in config else ["-c", f"gc.autoPackLimit={PACK_LIMIT}"]
    return [*commands, [*limit, *GC_AUTO]]


@dataclass(frozen=True)
class ObjectCounts:
    loose: int  # estimated from 64 of the 256 folders of loose objects
    packs: int


def object_counts(repo: Repo) -> ObjectCounts | None:
    """Loose objects (estimated from a quarter of the folders: ±10% at the limit, ~0.4 ms;
    16 folders were off by half) and packs; None when GIT_OBJECT_DIRECTORY points elsewhere."""
    if "GIT_OBJECT_DIRECTORY" in os.environ:
        return None
    objects = repo.common_dir / "objects"
    loose = sum(_loose_in(objects / name) for name in _SAMPLE)
    return ObjectCounts(loose * (256 // len(_SAMPLE)), _packs(objects))


def _loose_in(folder) -> int:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    return sum(1 for n in names if len(n) in (38, 62) and set(n) <= _HEX)  # sha1 or sha256 ids


def _packs(objects) -> int:
    """Packs git would merge (not marked with a .keep file)."""
    try:
        names = set(os.listdir(objects / "pack"))
    except FileNotFoundError:
        return 0
    return sum(1 for name in names if name.endswith(".pack") and f"{name[:-5]}.keep" not in names)


def prune_trees(repo: Repo, lim: Limits, now: float, out: GcResult) -> None:
    from aevolve._gate.materialize import list_trees, remove_leftovers, remove_tree, storage_errors

    with storage_errors("the materialized trees under .git/aevolve/trees"):
        cutoff = now - lim.max_age_days * DAY_S
        for rank, copy in enumerate(list_trees(repo)):
            if rank < lim.keep_trees and copy.last_used >= cutoff:
                out.trees_kept += 1
                continue
            size = remove_tree(repo, copy)
            if size is None:
                out.trees_in_use += 1
                out.trees_kept += 1
            else:
                out.trees_removed += 1
                out.tree_bytes += size
        count, size = remove_leftovers(repo, now)
        out.leftovers_removed += count
        out.tree_bytes += size


def prune_cache(repo: Repo, lim: Limits, now: float, out: GcResult, *, vacuum: bool) -> None:
    from aevolve._gate.results_cache import prune
    from aevolve._state.cache import cache_path, open_cache

    path = cache_path(repo)
    if not path.exists():
        return
    before = _size(path)
    conn = open_cache(repo)
    try:
        out.rows_removed += prune(conn, lim.max_cache_rows, lim.max_age_days * DAY_S, now)
        if vacuum and not getattr(conn, "degraded", False):
            _vacuum(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    out.cache_bytes += max(0, before - _size(path))


def _vacuum(conn) -> None:
    """Give free pages back to the file system when they are a quarter of the file;
    a gate reading the cache meanwhile only makes it wait (then skip)."""
    pages = conn.execute("PRAGMA page_count").fetchone()
    free = conn.execute("PRAGMA freelist_count").fetchone()
    if pages and free and free[0] * 4 >= pages[0] > 0:
        conn.execute("PRAGMA busy_timeout = 2000")
        conn.execute("VACUUM")


def _cache_bytes(repo: Repo) -> int:
    from aevolve._state.cache import cache_path

    return _size(cache_path(repo))


def _size(path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except FileNotFoundError:
            pass
    return total


def loose_objects(repo: Repo) -> int | None:
    """git's count of loose objects (`git count-objects -v`)."""
    proc = repo.run_git(["count-objects", "-v"], check=False)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "count" and value.strip().isdigit():
            return int(value)
    return None
