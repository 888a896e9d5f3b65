"""Benchmark: `aevolve diff` beside `git diff` on a big memory file.

Builds a state repository whose memory/episodic.jsonl holds 200,000 records
(commit A), then edits 1,000 of them (400 changed, 300 added, 300 removed;
commit B), and times whole processes: `aevolve diff A B` (text, --stat, json)
beside `git diff A B` and `git diff --stat A B`. Prints a table with the
ratio of each to `git diff`. Target: `aevolve diff` within 3x of `git diff`.

    python benchmarks/bench_diff.py            # 200,000 records, 1,000 changes
    python benchmarks/bench_diff.py --small    # 20,000 records, 100 changes (seconds)
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
import time
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


def timed(argv: list[str], cwd: Path, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode(errors='replace')}")
        size = len(proc.stdout)
    return statistics.median(times), size


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


def scale(tmp: Path, label: str, sizes: list[int], build_one, git_argv: list[str], repeat: int) -> tuple:
    """Time `aevolve diff A B` and the git command at each size."""
    ours, base = [], []
    for size in sizes:
        root = Path(tmp) / f"{label}-{size}"
        root.mkdir()
        a, b = build_one(root, size)
        ours.append(timed([sys.executable, "-m", "aevolve", "diff", a, b], root, repeat)[0])
        base.append(timed([*git_argv, a, b], root, repeat)[0])
    return ours, base


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
    base = results[0][1]
    print(f"memory/episodic.jsonl: {records:,} records, {changes:,} changed between A and B "
          f"(median of {args.repeat} runs, whole processes)")
    print(f"{'command':<34} {'seconds':>8} {'x git diff':>11} {'output bytes':>13}")
    for name, seconds, size in results:
        print(f"{name:<34} {seconds:>8.3f} {seconds / base:>10.2f}x {size:>13,}")
    from bench_state import print_scaling

    print_scaling("memory records (0.5% changed): aevolve diff vs git diff", "records", sizes, *rec[:1],
                  "git diff", rec[1])
    print_scaling("skill renames (shared template bodies): aevolve diff vs git diff -M", "renames", renames,
                  ren[0], "git diff -M", ren[1])


if __name__ == "__main__":
    main()
