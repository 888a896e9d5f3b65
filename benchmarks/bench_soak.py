#!/usr/bin/env python3
"""Soak: hundreds of observe -> propose -> gate -> promote cycles on one repository.

Each cycle observes a new batch (one failed task with its expected answer, one
success) on the demo's sample agent, proposes with the `rules` evolver (it
learns that lesson), gates the branch with the real runner and promotes it,
all through the Python API in one process. When aevolve has a `gc` command it
runs every --gc-every cycles, as the command line's own maintenance would.

Printed: seconds per cycle at the start, the middle and the end (mean of a
window of cycles), `.git` and `.git/aevolve` sizes, loose objects and
materialized trees at three checkpoints, and the ratio end/start. Both time
and size should stay flat: a ratio near 1.

Usage: python benchmarks/bench_soak.py [--small] [--cycles N] [--gc-every N] [--workdir DIR] [--keep]
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


@dataclass
class Checkpoint:
    cycle: int
    git_bytes: int
    aevolve_bytes: int
    loose_objects: int
    trees: int


@dataclass
class Soak:
    seconds: list[float] = field(default_factory=list)  # per cycle
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


def loose_objects(root: Path) -> int:
    out = subprocess.run(["git", "count-objects", "-v"], cwd=root, capture_output=True, text=True, check=True).stdout
    return int(dict(line.split(": ") for line in out.splitlines())["count"])


def checkpoint(root: Path, cycle: int) -> Checkpoint:
    trees = root / ".git" / "aevolve" / "trees"
    count = sum(1 for _ in trees.iterdir()) if trees.is_dir() else 0
    return Checkpoint(cycle, folder_bytes(root / ".git"), folder_bytes(root / ".git" / "aevolve"),
                      loose_objects(root), count)


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


def one_cycle(repo, root: Path, cycle: int, scratch: Path) -> bool:
    """observe -> propose -> gate -> promote; False when the gate rejected."""
    import aevolve

    records = batch(cycle)
    source = scratch / "batch.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    aevolve.observe(repo, [source])
    proposal = aevolve.propose(repo, evolver="rules", observation_ids=[r["id"] for r in records])
    if proposal.branch is None:
        raise SystemExit(f"cycle {cycle}: the rules evolver proposed nothing: {proposal.reason}")
    if not aevolve.gate(repo, proposal.branch).accepted:
        return False
    aevolve.promote(repo, proposal.branch)
    return True


def soak(root: Path, cycles: int, gc_every: int, marks: set[int]) -> Soak:
    import aevolve
    from aevolve._demo import build_sample

    root.mkdir(parents=True)
    build_sample(root)
    aevolve.init(root)
    repo = aevolve.Repo.open(root)
    gc = gc_every > 0 and has_gc()
    result = Soak()
    for cycle in range(1, cycles + 1):
        t0 = time.perf_counter()
        if not one_cycle(repo, root, cycle, root.parent):
            result.rejected += 1
        if gc and cycle % gc_every == 0:
            run_gc(root)
            result.gc_runs += 1
        result.seconds.append(time.perf_counter() - t0)
        if cycle in marks:
            result.checkpoints.append(checkpoint(root, cycle))
        if cycle % 50 == 0:
            print(f"  cycle {cycle}: {result.seconds[-1]:.2f} s", file=sys.stderr, flush=True)
    return result


def windows(cycles: int) -> list[tuple[int, int]]:
    """(first, last) cycle of the start, middle and end windows: 1-50, 226-275, 451-500 for 500."""
    width = max(1, min(50, cycles // 5))
    middle = max(1, (cycles - width) // 2 + 1)
    return [(1, width), (middle, middle + width - 1), (cycles - width + 1, cycles)]


def human(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"


def ratio(start: float, end: float) -> str:
    return f"{end / start:.2f}x" if start else "-"


def print_table(result: Soak, cycles: int) -> None:
    spans = windows(cycles)
    means = [statistics.mean(result.seconds[a - 1:b]) for a, b in spans]
    points = result.checkpoints
    rows = [("measure", *(f"cycle {p.cycle}" for p in points), "end/start")]
    rows.append(("seconds per cycle (" + ", ".join(f"{a}-{b}" for a, b in spans) + ")",
                 *(f"{m:.3f} s" for m in means), ratio(means[0], means[-1])))
    for label, get, fmt in (
        (".git size", lambda p: p.git_bytes, human),
        (".git/aevolve size", lambda p: p.aevolve_bytes, human),
        ("loose objects", lambda p: p.loose_objects, str),
        ("materialized trees", lambda p: p.trees, str),
    ):
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
    parser.add_argument("--gc-every", type=int, default=10, help="run `aevolve gc` every N cycles (0: never)")
    parser.add_argument("--workdir", type=Path, default=None, help="build the repository here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the built repository")
    args = parser.parse_args(argv)
    cycles = args.cycles or (5 if args.small else 500)
    if cycles < 2:
        parser.error("--cycles must be at least 2")
    marks = {max(1, cycles // 10), max(1, cycles // 2), cycles}
    base = Path(tempfile.mkdtemp(prefix="aevolve-soak-", dir=args.workdir))
    try:
        home = base / "home"  # isolated from the user's git config, as the test suite is
        home.mkdir()
        os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
                           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})
        t0 = time.perf_counter()
        result = soak(base / "state", cycles, args.gc_every, marks)
        gc_note = (f"`aevolve gc` every {args.gc_every} cycles ({result.gc_runs} runs)" if result.gc_runs
                   else "no `aevolve gc` (not available or --gc-every 0)")
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
