#!/usr/bin/env python3
"""Soak: hundreds of observe -> propose -> gate -> promote cycles on one repository.

Each cycle observes a new batch (one failed task with its expected answer, one
success) on the demo's sample agent, proposes with the `rules` evolver (it
learns that lesson), gates the branch with the real runner and promotes it,
all through the Python API in one process. After each of the four steps it runs
the upkeep the command line runs after a writing command (`gc.maintain`: prune
past twice the limits, pack git's objects); `aevolve gc` runs every --gc-every
cycles when asked. git's gc.autoDetach is off so packing is timed in the cycle.

The state legitimately grows (one lesson per cycle), so sizes are printed beside
a baseline measured in the same run, and "flat" is judged on the ratios:

- `.git` without `aevolve/` beside a `git clone --mirror` of the repository
  after a plain `git gc` (the same history, as small as git keeps it);
- `.git/aevolve` (materialized trees, cache.sqlite) beside the state itself
  (`git archive main` bytes): it keeps gc.keep_trees to twice that copies of
  the state, and cached runs (a few per gated tree, up to gc.max_cache_rows),
  so each part is also shown against what explains it.

Printed at three checkpoints: seconds per cycle (mean of a window of cycles),
those sizes and ratios, loose objects, packs, materialized trees and cached
runs; the last column is end/start. Flat is a ratio near 1.

Usage: python benchmarks/bench_soak.py [--small] [--cycles N] [--gc-every N] [--no-upkeep]
                                       [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_state import isolate_git


@dataclass
class Checkpoint:
    cycle: int
    git_bytes: int
    aevolve_bytes: int
    mirror_bytes: int  # a `git clone --mirror` of the repository after `git gc`
    state_bytes: int  # `git archive main`
    loose_objects: int
    packs: int
    trees: int
    tree_bytes: int  # the materialized trees
    cached_runs: int
    cache_bytes: int  # cache.sqlite and its WAL

    @property
    def git_only(self) -> int:
        """.git without aevolve/ (what git itself keeps)."""
        return self.git_bytes - self.aevolve_bytes


@dataclass
class Soak:
    seconds: list[float] = field(default_factory=list)  # per cycle
    cpu: list[float] = field(default_factory=list)  # CPU seconds per cycle, with the git and runner children
    checkpoints: list[Checkpoint] = field(default_factory=list)
    rejected: int = 0
    gc_runs: int = 0


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (apparent sizes, links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def object_counts(root: Path) -> dict[str, int]:
    out = subprocess.run(["git", "count-objects", "-v"], cwd=root, capture_output=True, text=True, check=True).stdout
    return {key: int(value) for key, value in (line.split(": ") for line in out.splitlines())}


def git(*args, cwd: Path) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def mirror_bytes(root: Path) -> int:
    """The same history as small as plain git keeps it: every ref mirrored, then `git gc`."""
    mirror = root.parent / "mirror.git"
    try:
        git("clone", "-q", "--mirror", "--no-local", str(root), str(mirror), cwd=root.parent)
        git("gc", "-q", cwd=mirror)
        return folder_bytes(mirror)
    finally:
        shutil.rmtree(mirror, ignore_errors=True)


def cached_runs(root: Path) -> int:
    import sqlite3

    path = root / ".git" / "aevolve" / "cache.sqlite"
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM gate_runs").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def checkpoint(root: Path, cycle: int) -> Checkpoint:
    aevolve = root / ".git" / "aevolve"
    trees = aevolve / "trees"
    count = sum(1 for p in trees.iterdir() if "." not in p.name) if trees.is_dir() else 0
    cache = sum(p.stat().st_size for p in aevolve.glob("cache.sqlite*"))
    objects = object_counts(root)
    return Checkpoint(cycle, folder_bytes(root / ".git"), folder_bytes(aevolve), mirror_bytes(root),
                      len(git("archive", "main", cwd=root)), objects["count"], objects["packs"], count,
                      folder_bytes(trees), cached_runs(root), cache)


def batch(cycle: int) -> list[dict]:
    """One failed task the rules evolver can learn from, and one success."""
    ts = f"2026-11-{1 + cycle % 28:02d}T{cycle % 24:02d}:00:00Z"
    return [
        {"id": f"soak-{cycle}-fail", "task": f"Where is parcel number {cycle} right now?", "output": "I don't know.",
         "feedback": {"success": False, "expected": f"Parcel {cycle} is in the depot."}, "ts": ts},
        {"id": f"soak-{cycle}-ok", "task": "Are the stores open on Saturday?",
         "output": "Our stores are open 9am to 6pm, Monday to Saturday.", "feedback": {"success": True}, "ts": ts},
    ]


def has_gc() -> bool:
    from aevolve.cli import COMMANDS

    return "gc" in COMMANDS


def run_gc(root: Path) -> None:
    """`aevolve gc` in this process (its output is not part of the table)."""
    from aevolve.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            main(["-C", str(root), "gc"])
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise SystemExit(f"aevolve gc failed ({exc.code}): {err.getvalue()}") from None


def one_cycle(repo, root: Path, cycle: int, scratch: Path, upkeep: bool = True) -> bool:
    """observe -> propose -> gate -> promote, each followed by the command line's upkeep;
    False when the gate rejected."""
    import aevolve
    from aevolve._gate.gc import maintain

    def after() -> None:
        if upkeep:
            maintain(repo)

    records = batch(cycle)
    source = scratch / "batch.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    aevolve.observe(repo, [source])
    after()
    proposal = aevolve.propose(repo, evolver="rules", observation_ids=[r["id"] for r in records])
    if proposal.branch is None:
        raise SystemExit(f"cycle {cycle}: the rules evolver proposed nothing: {proposal.reason}")
    after()
    accepted = aevolve.gate(repo, proposal.branch).accepted
    after()
    if not accepted:
        return False
    aevolve.promote(repo, proposal.branch)
    after()
    return True


def soak(root: Path, cycles: int, gc_every: int, marks: set[int], upkeep: bool = True) -> Soak:
    import aevolve
    from aevolve._demo import build_sample

    root.mkdir(parents=True)
    build_sample(root)
    aevolve.init(root)
    repo = aevolve.Repo.open(root)
    gc = gc_every > 0 and has_gc()
    result = Soak()
    for cycle in range(1, cycles + 1):
        t0, c0 = time.perf_counter(), cpu_seconds()
        if not one_cycle(repo, root, cycle, root.parent, upkeep):
            result.rejected += 1
        if gc and cycle % gc_every == 0:
            run_gc(root)
            result.gc_runs += 1
        result.seconds.append(time.perf_counter() - t0)
        result.cpu.append(cpu_seconds() - c0)
        if cycle in marks:
            result.checkpoints.append(checkpoint(root, cycle))
        if cycle % 50 == 0:
            print(f"  cycle {cycle}: {result.seconds[-1]:.2f} s", file=sys.stderr, flush=True)
    return result


def cpu_seconds() -> float:
    """User and system CPU time of this process and its finished children: the work
    done, which a loaded machine does not inflate the way it does wall time."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def windows(cycles: int) -> list[tuple[int, int]]:
    """(first, last) cycle of the start, middle and end windows: 1-50, 226-275, 451-500 for 500."""
    width = max(1, min(50, cycles // 5))
    middle = max(1, (cycles - width) // 2 + 1)
    return [(1, width), (middle, middle + width - 1), (cycles - width + 1, cycles)]


def human(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"


def ratio(start: float, end: float) -> str:
    return f"{end / start:.2f}x" if start else "-"


def times(value: float) -> str:
    return f"{value:.2f}x"


ROWS = (  # label, value of a checkpoint, format
    (".git size", lambda p: p.git_bytes, human),
    (".git without aevolve/", lambda p: p.git_only, human),
    ("  same history, git gc'd mirror", lambda p: p.mirror_bytes, human),
    ("  ours / mirror", lambda p: p.git_only / p.mirror_bytes, times),
    (".git/aevolve size", lambda p: p.aevolve_bytes, human),
    ("  state (git archive main)", lambda p: p.state_bytes, human),
    ("  ours / state", lambda p: p.aevolve_bytes / p.state_bytes, times),
    ("  trees / (trees x state)", lambda p: p.tree_bytes / max(1, p.trees * p.state_bytes), times),
    ("  cache.sqlite", lambda p: p.cache_bytes, human),
    ("  cache bytes per cached run", lambda p: round(p.cache_bytes / max(1, p.cached_runs)), str),
    ("loose objects", lambda p: p.loose_objects, str),
    ("packs", lambda p: p.packs, str),
    ("materialized trees", lambda p: p.trees, str),
    ("cached runs", lambda p: p.cached_runs, str),
)


def print_table(result: Soak, cycles: int) -> None:
    spans = windows(cycles)
    means = [statistics.mean(result.seconds[a - 1:b]) for a, b in spans]
    points = result.checkpoints
    rows = [("measure", *(f"cycle {p.cycle}" for p in points), "end/start")]
    rows.append(("seconds per cycle (" + ", ".join(f"{a}-{b}" for a, b in spans) + ")",
                 *(f"{m:.3f} s" for m in means), ratio(means[0], means[-1])))
    cpu = [statistics.mean(result.cpu[a - 1:b]) for a, b in spans]
    rows.append(("  CPU seconds per cycle", *(f"{m:.3f} s" for m in cpu), ratio(cpu[0], cpu[-1])))
    for label, get, fmt in ROWS:
        values = [get(p) for p in points]
        rows.append((label, *(fmt(v) for v in values), ratio(values[0], values[-1])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(cells)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def remove_tree(path: Path) -> None:
    """Remove `path`, materialized read-only copies included."""
    for dirpath, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, stat.S_IRWXU)  # read-only folders cannot lose their files
    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="5 cycles (a smoke run)")
    parser.add_argument("--cycles", type=int, help="number of cycles (default 500)")
    parser.add_argument("--gc-every", type=int, default=0, help="run `aevolve gc` every N cycles (0: never)")
    parser.add_argument("--no-upkeep", action="store_true",
                        help="skip the automatic upkeep the command line runs after each writing command")
    parser.add_argument("--workdir", type=Path, default=None, help="build the repository here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the built repository")
    args = parser.parse_args(argv)
    cycles = args.cycles or (5 if args.small else 500)
    if cycles < 2:
        parser.error("--cycles must be at least 2")
    marks = {max(1, cycles // 10), max(1, cycles // 2), cycles}
    base = Path(tempfile.mkdtemp(prefix="aevolve-soak-", dir=args.workdir))
    try:
        home = isolate_git(base)
        git("config", "--global", "gc.autoDetach", "false", cwd=home)  # packing in the foreground: timed
        t0 = time.perf_counter()
        result = soak(base / "state", cycles, args.gc_every, marks, upkeep=not args.no_upkeep)
        gc_note = (f"`aevolve gc` every {args.gc_every} cycles ({result.gc_runs} runs)" if result.gc_runs
                   else "no `aevolve gc` (--gc-every 0)")
        gc_note += "; no automatic upkeep" if args.no_upkeep else "; the automatic upkeep after each step"
        print(f"soak: {cycles} cycles of observe -> propose (rules) -> gate -> promote on the demo agent in "
              f"{time.perf_counter() - t0:.0f} s; {cycles - result.rejected} promoted, {result.rejected} rejected; "
              f"{gc_note}")
        print_table(result, cycles)
    finally:
        if args.keep:
            print(f"kept {base / 'state'}")
        else:
            remove_tree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
