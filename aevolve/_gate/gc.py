"""Bounded growth: prune materialized trees and cached results, let git pack.

`collect` is `aevolve gc`: it removes materialized trees beyond the
`gc.keep_trees` most recently used and those unused for `gc.max_age_days`
(never one a running gate holds: `materialize.remove_tree`), cache rows by the
same rules (`results_cache.prune`), and runs `git gc --auto`. `maintain` is what
the command line runs after a writing command: a cheap count, a prune only past
twice the limits, and `git gc --auto --quiet` (git decides; it is cheap when
there is nothing to do). The limits are main's `aevolve.yaml`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from aevolve._config import DEFAULTS
from aevolve._git.repo import Repo

DAY_S = 86400.0
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
    """`aevolve gc`: prune trees and cache rows to the limits, then `git gc --auto`."""
    now = time.time() if now is None else now
    out = GcResult()
    prune_trees(repo, lim, now, out)
    prune_cache(repo, lim, now, out, vacuum=True)
    out.loose_before = loose_objects(repo)
    repo.run_git(["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"], check=False)
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
    if git_may_gc(repo):  # saves forking git after nearly every command
        repo.run_git(["gc", "--auto", "--quiet"], check=False)  # the user's gc.autoDetach applies
    return out


def git_may_gc(repo: Repo) -> bool:
    """Could `git gc --auto` do anything? It runs when objects/17 holds more loose objects
    than gc.auto/256 (at least 1) or there are gc.autoPackLimit packs (default 50):
    with at most one loose object there and at most one pack it cannot (unless
    gc.autoPackLimit is 1). Saves forking git after nearly every command."""
    objects = repo.common_dir / "objects"
    if "GIT_OBJECT_DIRECTORY" in os.environ:
        return True  # objects live elsewhere: let git decide
    try:
        packs = sum(1 for name in os.listdir(objects / "pack") if name.endswith(".pack"))
    except FileNotFoundError:
        packs = 0
    try:
        names = os.listdir(objects / "17")
    except FileNotFoundError:
        names = []
    hexdigits = set("0123456789abcdef")
    loose = sum(1 for n in names if len(n) in (38, 62) and set(n) <= hexdigits)  # sha1 or sha256 ids
    return loose > 1 or packs > 1


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
