"""Bounded growth: prune materialized trees and cached results, let git pack.

`collect` is `aevolve gc`: it removes materialized trees beyond the
`gc.keep_trees` most recently used and those unused for `gc.max_age_days`
(never one a running gate holds: `materialize.remove_tree`), cache rows by the
same rules (`results_cache.prune`), and packs git's loose objects (`pack_commands`).
It also drops runs notes (`refs/notes/aevolve-runs`) no gate can reuse any more
(`prune_runs`). `maintain` is what the command line runs after a writing command:
a cheap count, a prune only past twice the limits (the runs notes at most once a
day), and packing once LOOSE_LIMIT loose objects piled up (git's own threshold is
far too high for a repository that writes a few objects per cycle). The limits
are main's `aevolve.yaml`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

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
RUNS_ATTEMPTS = 20  # compare-and-swaps of the runs ref a prune tries while gates write notes
RUNS_STAMP = "runs-gc"  # .git/aevolve/runs-gc: its mtime is the upkeep's last prune of the runs notes


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
    runs_notes_removed: int = 0  # notes on refs/notes/aevolve-runs dropped (a dry run: that would be)
    runs_bytes: int = 0  # the size of those notes
    runs_notes_kept: int = 0
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)  # notes no gate can read, a prune that gave up

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


def collect(repo: Repo, lim: Limits, *, now: float | None = None, dry_run: bool = False) -> GcResult:
    """`aevolve gc`: prune trees, cache rows and runs notes to the limits, then pack
    every loose object and let `git gc --auto` consolidate packs (`pack_commands`).
    `dry_run` counts what would go and writes nothing."""
    now = time.time() if now is None else now
    out = GcResult(dry_run=dry_run)
    if dry_run:
        plan_trees(repo, lim, now, out)
        out.rows_removed = cache_rows_over(repo, lim, now)
        prune_runs(repo, lim, now, out, dry_run=True)
        out.loose_before = loose_objects(repo)
        return out
    prune_trees(repo, lim, now, out)
    prune_cache(repo, lim, now, out, vacuum=True)
    prune_runs(repo, lim, now, out)
    out.loose_before = loose_objects(repo)
    for args in pack_commands(repo, loose=out.loose_before):
        repo.run_git(["-c", "gc.autoDetach=false", *args], check=False)
    out.loose_after = loose_objects(repo)
    return out


def maintain(repo: Repo) -> GcResult | None:
    """After a writing command: prune only past twice a limit, then let git pack.
    None when nothing was pruned."""
    from aevolve._errors import AevolveError

    try:
        lim = limits(repo)
    except AevolveError:  # a broken aevolve.yaml: the commands that read it say so
        lim = Limits.of(DEFAULTS)
    out = None
    if _over_trees(repo, lim):
        out = GcResult()
        prune_trees(repo, lim, time.time(), out)
    if _cache_bytes(repo) > 2 * lim.max_cache_rows * _MIN_ROW_BYTES:  # else it cannot hold that many rows
        from aevolve._gate.results_cache import count_rows
        from aevolve._state.cache import open_cache

        conn = open_cache(repo)
        try:
            over = count_rows(conn) > 2 * lim.max_cache_rows
        finally:
            conn.close()
        if over:
            out = out or GcResult()
            prune_cache(repo, lim, time.time(), out, vacuum=False)
    if _runs_due(repo):
        runs = GcResult()
        prune_runs(repo, lim, time.time(), runs)
        _stamp(repo)
        if runs.runs_notes_removed:
            out = out or GcResult()
            out.runs_notes_removed, out.runs_bytes = runs.runs_notes_removed, runs.runs_bytes
    for args in pack_commands(repo):  # the user's gc.autoDetach applies
        repo.run_git(args, check=False)
    return out


def _over_trees(repo: Repo, lim: Limits) -> bool:
    """More than twice gc.keep_trees materialized trees (a folder count, before any import)."""
    trees = repo.git_dir / "aevolve" / "trees"
    if not trees.is_dir() or sum(1 for _ in os.scandir(trees)) <= 2 * lim.keep_trees:
        return False  # fewer entries than that (stale and temporary folders included): fewer copies
    from aevolve._gate.materialize import list_trees

    return len(list_trees(repo)) > 2 * lim.keep_trees


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


# -- dry run ----------------------------------------------------------------------------


def plan_trees(repo: Repo, lim: Limits, now: float, out: GcResult) -> None:
    """What prune_trees would remove (a tree a running gate holds counts too: gc would skip it)."""
    from aevolve._gate.materialize import folder_size, list_trees, trees_dir

    if not trees_dir(repo).is_dir():
        return
    cutoff = now - lim.max_age_days * DAY_S
    for rank, copy in enumerate(list_trees(repo)):
        if rank < lim.keep_trees and copy.last_used >= cutoff:
            out.trees_kept += 1
        else:
            out.trees_removed += 1
            out.tree_bytes += folder_size(copy.path)


def cache_rows_over(repo: Repo, lim: Limits, now: float) -> int:
    """How many rows `results_cache.prune` would delete, read without writing the file."""
    import sqlite3

    from aevolve._gate.results_cache import TABLES
    from aevolve._state.cache import cache_path

    path = cache_path(repo)
    if not path.exists():
        return 0
    cutoff, total = now - lim.max_age_days * DAY_S, 0
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        for table in TABLES:
            try:
                old, count = conn.execute(f"SELECT TOTAL(used < ?), COUNT(*) FROM {table}", (cutoff,)).fetchone()
            except sqlite3.Error:  # no such table yet, an older cache without `used`, a corrupt file
                continue
            total += int(old) + max(0, count - int(old) - lim.max_cache_rows)
    finally:
        conn.close()
    return total


# -- runs notes (refs/notes/aevolve-runs) --------------------------------------------------


@dataclass(frozen=True)
class RunsNote:
    tree: str  # the annotated tree
    path: str  # in the notes tree (fanned out or flat)
    oid: str
    size: int


@dataclass
class RunsPlan:
    drop: list[RunsNote] = field(default_factory=list)
    kept: int = 0
    warnings: list[str] = field(default_factory=list)


def prune_runs(repo: Repo, lim: Limits, now: float, out: GcResult, *, dry_run: bool = False) -> None:
    """Drop the runs notes no gate will reuse (`plan_runs`) in one notes commit, moved by
    compare-and-swap: a gate that wrote a note meanwhile makes the plan start over from
    its commit, so its runs are never lost. Local only: sync may bring a dropped note
    back from a remote that still has it, and the next gc drops it again."""
    from aevolve._errors import RefMoved
    from aevolve._gate.shared_runs import RUNS_REF

    for attempt in range(RUNS_ATTEMPTS):
        tip = repo.ref_target(RUNS_REF)
        if tip is None:
            return
        plan = plan_runs(repo, tip, lim, now, verb="would be dropped" if dry_run else "dropped")
        if not dry_run and plan.drop:
            tree = repo.build_tree(repo.tree(tip), {note.path: None for note in plan.drop})
            message = f"aevolve: gc drops the runs notes of {len(plan.drop)} tree(s)\n"
            try:
                repo.update_ref(RUNS_REF, str(repo.commit(tree, [tip], message)), tip)
            except RefMoved:
                time.sleep(min(0.2, 0.005 * (attempt + 1)))
                continue
        out.runs_notes_removed += len(plan.drop)
        out.runs_bytes += sum(note.size for note in plan.drop)
        out.runs_notes_kept += plan.kept
        out.warnings += plan.warnings
        return
    out.warnings.append(f"{RUNS_REF} kept moving while gc pruned it ({RUNS_ATTEMPTS} tries); "
                        "nothing was dropped, run `aevolve gc` again")


def plan_runs(repo: Repo, tip: str, lim: Limits, now: float, *, verb: str = "dropped") -> RunsPlan:
    """Which runs notes of the notes commit `tip` go. A note stays while its tree is one a
    gate will look up again (main's last `gc.keep_trees` first-parent commits, a live
    evolve/* tip, local or remote-tracking) or while a batch was added to it within
    `gc.max_age_days`. A note no gate can read (not JSON, no batch, over the size a gate
    reads) goes whatever its tree, with a warning naming the tree."""
    from aevolve._gate.shared_runs import MAX_NOTE_BYTES, parse

    plan, live = RunsPlan(), live_trees(repo, lim.keep_trees)
    cutoff = now - lim.max_age_days * DAY_S
    history: dict[str, float] | None = None
    for note in runs_notes(repo, tip):
        if note.size > MAX_NOTE_BYTES:
            plan.drop.append(note)
            plan.warnings.append(f"the runs note of tree {note.tree} is {note.size} bytes, more than a gate reads "
                                 f"({MAX_NOTE_BYTES}): {verb}")
            continue
        found = parse(repo.blob(note.oid))
        if not found:
            plan.drop.append(note)
            plan.warnings.append(f"the runs note of tree {note.tree} holds no batch of runs (not JSON, or "
                                 f"edited by hand): {verb}")
            continue
        if note.tree in live:
            plan.kept += 1
            continue
        newest, undated = _newest(found, now)
        if undated:  # made before batches carried a time: when the note was last written
            history = _note_times(repo, tip) if history is None else history
            newest = max(newest, history.get(note.tree, now))
        if newest >= cutoff:
            plan.kept += 1
        else:
            plan.drop.append(note)
    return plan


def _newest(batches: list[dict], now: float) -> tuple[float, bool]:
    """(the newest `made` of the batches, 0 for none; whether one has no usable `made`)."""
    from aevolve._gate.shared_runs import made_at

    times = [made_at(batch, now) for batch in batches]
    return max((t for t in times if t is not None), default=0.0), any(t is None for t in times)


def runs_notes(repo: Repo, tip: str) -> list[RunsNote]:
    """Every note of the notes commit `tip`, with its size, whatever the fan-out; one
    `git ls-tree -l` (sizes without reading a blob: a hostile note may be huge)."""
    out = []
    listing = repo.run_git(["ls-tree", "-r", "-l", "-z", "--full-tree", str(repo.tree(tip).id)], input=b"").stdout
    for record in listing.split(b"\0"):
        meta, _, raw = record.partition(b"\t")
        fields, path = meta.split(), raw.decode("utf-8", "replace")
        tree = path.replace("/", "")
        if len(fields) == 4 and fields[1] == b"blob" and len(tree) in (40, 64) and set(tree) <= _HEX:
            out.append(RunsNote(tree, path, fields[2].decode(), int(fields[3])))
    return out


def live_trees(repo: Repo, keep: int) -> set[str]:
    """Trees a gate will look up again: those of main's last `keep` first-parent commits
    (and of each remote-tracking main), and of every evolve/* tip, local or remote-tracking."""
    from aevolve._git.repo import MAIN

    mains, tips = [MAIN], list(repo.refs("refs/heads/evolve/").values())
    for name, target in repo.refs("refs/remotes/").items():
        _remote, _, branch = name.removeprefix("refs/remotes/").partition("/")
        if branch == "main":
            mains.append(name)
        elif branch.startswith("evolve/"):
            tips.append(target)
    trees = {tree for tip in tips if (tree := _tree_of(repo, tip)) is not None}
    for ref in mains:
        commit = _commit(repo, repo.ref_target(ref))
        for _ in range(keep):
            if commit is None:
                break
            trees.add(str(commit.tree_id))
            commit = _commit(repo, str(commit.parent_ids[0])) if commit.parent_ids else None
    return trees


def _commit(repo: Repo, oid: str | None):
    from aevolve._errors import AevolveError

    if oid is None:
        return None
    try:
        return repo.resolve(oid)
    except AevolveError:  # a ref to a missing object (a shallow clone's edge): nothing to keep
        return None


def _tree_of(repo: Repo, oid: str) -> str | None:
    commit = _commit(repo, oid)
    return str(commit.tree_id) if commit is not None else None


def _note_times(repo: Repo, tip: str) -> dict[str, float]:
    """Tree -> when the runs ref's history last added or changed its note (the commit time),
    for batches made before they carried `made`. One `git log` over the runs ref."""
    proc = repo.run_git(["log", "--no-renames", "--diff-filter=AM", "--name-only", "--format=@%ct", tip], check=False)
    times: dict[str, float] = {}
    when = 0.0
    for line in proc.stdout.splitlines():
        if line.startswith("@"):
            when = float(line[1:]) if line[1:].isdigit() else 0.0
        elif line.strip():
            name = line.strip().replace("/", "")
            times[name] = max(times.get(name, 0.0), when)
    return times


def _runs_due(repo: Repo) -> bool:
    """The upkeep prunes the runs notes at most once a day (their age counts in days)."""
    from aevolve._gate.shared_runs import RUNS_REF

    if repo.ref_target(RUNS_REF) is None:
        return False
    try:
        return time.time() - os.stat(repo.common_dir / "aevolve" / RUNS_STAMP).st_mtime >= DAY_S
    except FileNotFoundError:
        return True


def _stamp(repo: Repo) -> None:
    path = repo.common_dir / "aevolve" / RUNS_STAMP
    path.parent.mkdir(exist_ok=True)
    path.touch()
