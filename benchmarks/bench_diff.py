"""Benchmark: `aevolve diff` beside `git diff` on a big memory file.

Builds a state repository whose memory/episodic.jsonl holds 200,000 records
(commit A), then edits 1,000 of them (400 changed, 300 added, 300 removed;
commit B), and times whole processes: `aevolve diff A B` (text, --stat, json)
beside `git diff A B` and `git diff --stat A B`. Prints a table with the
ratio of each to `git diff` and each process's peak memory (its maximum
resident set, children included, from wait4). Target: `aevolve diff` within
3x of `git diff`, and at most its peak memory at 1,000,000 records.

Then the scaling tables (time and peak memory by number of records), and an
append-only change: one record appended to the biggest file, where `aevolve
diff` parses only the appended line (target: peak memory well below `git diff`).

    python benchmarks/bench_diff.py            # 200,000 records, 1,000 changes
    python benchmarks/bench_diff.py --small    # 20,000 records, 100 changes (seconds)
    python benchmarks/bench_diff.py --huge     # also 10,000,000 records (minutes, ~4 GB of memory)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "PAGER": "cat",
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def record(i: int, rng: random.Random, version: int = 0) -> str:
    words = " ".join(rng.choice(("refund", "order", "shipping", "invoice", "customer", "policy", "return", "days"))
                     for _ in range(12))
    return json.dumps({"id": f"m-{i:06d}", "content": f"{words} v{version}", "tags": ["billing", f"t{i % 50}"],
                       "score": round(rng.random(), 4)})


def build(root: Path, records: int, changes: int) -> tuple[str, str]:
    rng = random.Random(7)
    git(root, "init", "-q", "--initial-branch=main")
    (root / "memory").mkdir()
    (root / "prompts").mkdir()
    (root / "prompts/system.md").write_text("You are a support agent.\n")
    (root / "manifest.yaml").write_text("name: bench\nversion: 0.1.0\ncontract_version: \"1.0\"\n")
    lines = [record(i, rng) for i in range(records)]
    path = root / "memory/episodic.jsonl"
    path.write_text("\n".join(lines) + "\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "A: memory")
    a = git(root, "rev-parse", "HEAD")
    changed, removed, added = changes * 2 // 5, changes * 3 // 10, changes - changes * 2 // 5 - changes * 3 // 10
    picks = rng.sample(range(records), changed + removed)
    for i in picks[:changed]:
        lines[i] = record(i, rng, version=1)
    gone = set(picks[changed:])
    lines = [line for i, line in enumerate(lines) if i not in gone]
    lines += [record(records + i, rng) for i in range(added)]
    path.write_text("\n".join(lines) + "\n")
    git(root, "commit", "-qam", "B: 1,000 memory edits")
    return a, git(root, "rev-parse", "HEAD")


def timed(argv: list[str], cwd: Path, repeat: int) -> tuple[float, int, float]:
    """(median seconds, output bytes, peak memory in MB over the runs) of a whole process."""
    times, size, peak = [], 0, 0.0
    for _ in range(repeat):
        seconds, size, mb = run_once(argv, cwd)
        times.append(seconds)
        peak = max(peak, mb)
    return statistics.median(times), size, peak


def run_once(argv: list[str], cwd: Path) -> tuple[float, int, float]:
    """(seconds, output bytes, peak MB) of one run, through MEASURE (see there)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as result:
        proc = subprocess.run([sys.executable, "-c", MEASURE, result.name, *argv], cwd=cwd, env=ENV,
                              stdout=out, stderr=err)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed: {err.read().decode(errors='replace')}")
        seconds, maxrss = result.read().split()
        size = out.tell()
    kib = int(maxrss) / (1024 if sys.platform == "darwin" else 1)  # macOS counts bytes, Linux KiB
    return float(seconds), size, kib / 1024


# Runs argv[2:] and writes "seconds maxrss" to argv[1]. A child started straight from this
# benchmark would inherit its high-water mark (Linux counts the memory of the process that
# exec'd, and subprocess uses vfork): hundreds of MB once a big file was built here. This
# small launcher forks the measured process from itself; wait4 gives that child's own peak
# (its reaped children included: `git cat-file` under `aevolve diff`). Floor: ~10 MB.
MEASURE = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    f.write(f"{seconds} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


SKILL_BODY = "".join(f"Step {n}: check the order, the invoice and the shipping window before answering.\n"
                     for n in range(20))


def build_renames(root: Path, count: int) -> tuple[str, str]:
    """A: `count` skills sharing one template body; B: each moved to a new folder, one line edited."""
    git(root, "init", "-q", "--initial-branch=main")
    for i in range(count):
        folder = root / "skills" / f"skill-{i:04d}"
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(f"---\nname: skill-{i:04d}\ndescription: skill {i}\n---\n"
                                         f"# Skill {i}\nOnly skill {i} handles topic {i * 7919 % 10007}.\n"
                                         + SKILL_BODY)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "A: skills")
    a = git(root, "rev-parse", "HEAD")
    for i in range(count):
        old, new = root / "skills" / f"skill-{i:04d}", root / "skills" / f"moved-{i:04d}"
        old.rename(new)
        text = (new / "SKILL.md").read_text().replace("Step 3:", f"Step 3 (v{i}):")
        (new / "SKILL.md").write_text(text.replace(f"name: skill-{i:04d}", f"name: moved-{i:04d}"))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "B: every skill renamed")
    return a, git(root, "rev-parse", "HEAD")


@dataclass
class Scaled:
    """Seconds and peak MB of `aevolve diff A B` (ours) and of the git command (base) at
    each size; the biggest size's repository and its commit B."""

    ours: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    ours_mb: list[float] = field(default_factory=list)
    base_mb: list[float] = field(default_factory=list)
    root: Path = Path()
    b: str = ""


def scale(tmp: Path, label: str, sizes: list[int], build_one, git_argv: list[str], repeat: int) -> Scaled:
    out = Scaled()
    for size in sizes:
        out.root = Path(tmp) / f"{label}-{size}"
        out.root.mkdir()
        a, out.b = build_one(out.root, size)
        seconds, _, mb = timed([sys.executable, "-m", "aevolve", "diff", a, out.b], out.root, repeat)
        out.ours.append(seconds)
        out.ours_mb.append(mb)
        seconds, _, mb = timed([*git_argv, a, out.b], out.root, repeat)
        out.base.append(seconds)
        out.base_mb.append(mb)
    return out


def append_one(root: Path, b: str, records: int, repeat: int) -> list[tuple[str, float, int, float]]:
    """Commit C = B with one record appended; (name, seconds, output bytes, peak MB) of
    `git diff B C` and `aevolve diff B C`."""
    path = root / "memory/episodic.jsonl"
    with path.open("a") as f:
        f.write(record(records * 10, random.Random(11)) + "\n")
    git(root, "commit", "-qam", "C: one record appended")
    c = git(root, "rev-parse", "HEAD")
    runs = [("git diff B C", ["git", "diff", b, c]),
            ("aevolve diff B C", [sys.executable, "-m", "aevolve", "diff", b, c]),
            ("aevolve diff --stat B C", [sys.executable, "-m", "aevolve", "diff", "--stat", b, c])]
    return [(name, *timed(argv, root, repeat)) for name, argv in runs]


def print_memory(sizes: list[int], ours: list[float], base: list[float]) -> None:
    print("peak memory by records (0.5% changed): aevolve diff vs git diff (target at the biggest: <= 1.0x)")
    print(f"{'records':>12} {'ours MB':>9} {'git diff MB':>22} {'ratio':>7}")
    for size, mb, git_mb in zip(sizes, ours, base, strict=True):
        print(f"{size:>12,} {mb:>9.0f} {git_mb:>22.0f} {mb / max(git_mb, 1e-9):>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="20,000 records, 100 changes")
    parser.add_argument("--records", type=int)
    parser.add_argument("--changes", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--huge", action="store_true", help="also 10,000,000 records in the scaling table")
    args = parser.parse_args()
    records = args.records or (20_000 if args.small else 200_000)
    changes = args.changes or (100 if args.small else 1_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "state"
        root.mkdir()
        a, b = build(root, records, changes)
        aevolve = [sys.executable, "-m", "aevolve"]
        runs = [
            ("git diff A B", ["git", "diff", a, b]),
            ("git diff --stat A B", ["git", "diff", "--stat", a, b]),
            ("aevolve diff A B", [*aevolve, "diff", a, b]),
            ("aevolve diff --stat A B", [*aevolve, "diff", "--stat", a, b]),
            ("aevolve diff --format json A B", [*aevolve, "diff", "--format", "json", a, b]),
            ("python -c pass (start-up floor)", [sys.executable, "-c", "pass"]),
        ]
        results = [(name, *timed(argv, root, args.repeat)) for name, argv in runs]
        sizes = [500, 1_000, 2_000] if args.small else [100_000, 300_000, 1_000_000]
        sizes += [10_000_000] if args.huge and not args.small else []
        rec = scale(Path(tmp), "records", sizes, lambda r, n: build(r, n, max(10, n // 200)), ["git", "diff"],
                    1 if args.small else args.repeat)
        renames = [4, 8, 16] if args.small else [50, 200, 800]
        ren = scale(Path(tmp), "renames", renames, build_renames, ["git", "diff", "-M"],
                    1 if args.small else args.repeat)
        appended = append_one(rec.root, rec.b, sizes[-1], 1 if args.small else args.repeat)
    print(f"memory/episodic.jsonl: {records:,} records, {changes:,} changed between A and B "
          f"(median of {args.repeat} runs, whole processes)")
    print_runs(results)
    from bench_state import print_scaling

    print_scaling("memory records (0.5% changed): aevolve diff vs git diff", "records", sizes, rec.ours,
                  "git diff", rec.base)
    print_memory(sizes, rec.ours_mb, rec.base_mb)
    print_scaling("skill renames (shared template bodies): aevolve diff vs git diff -M", "renames", renames,
                  ren.ours, "git diff -M", ren.base)
    print(f"append-only: 1 record appended to {sizes[-1]:,} records (target: peak memory well below git diff)")
    print_runs(appended)


def print_runs(results: list[tuple[str, float, int, float]]) -> None:
    """The table of whole-process runs, each beside the first (a git command)."""
    base = results[0][1]
    print(f"{'command':<34} {'seconds':>8} {'peak MB':>8} {'x git diff':>11} {'output bytes':>13}")
    for name, seconds, size, mb in results:
        print(f"{name:<34} {seconds:>8.3f} {mb:>8.0f} {seconds / base:>10.2f}x {size:>13,}")


if __name__ == "__main__":
    main()
