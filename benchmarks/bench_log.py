"""`aevolve log` over long evolution histories, beside `git log --notes=aevolve`.

Builds main with N evolution commits, each with a gate note (one `git fast-import`,
notes in the 2/38 fan-out aevolve writes), and times whole processes at each size:

    aevolve log --json          every entry, its evolver, evidence and gate score
    git log --notes=aevolve     the same commits with their notes printed

and prints the scaling exponent of each (time ~ size^k; target k <= 1.1).

    python benchmarks/bench_log.py            # 1,000 / 3,000 / 10,000 commits
    python benchmarks/bench_log.py --small    # 100 / 200 / 400 (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_state import print_scaling

ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "PAGER": "cat",
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def data(text: str) -> list[str]:
    return [f"data {len(text.encode())}", text]


def build(root: Path, commits: int) -> None:
    """main with `commits` evolution commits (memory appends), each noted with a gate report."""
    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(root)], check=True, env=ENV)
    stream: list[str] = []
    for i in range(commits):
        message = (f"evolve(memory): lesson {i}\n\nDiagnosis: d\n\nAevolve-Evolver: rules\n"
                   f"Aevolve-Proposal: p-{i}\nAevolve-Evidence: obs-{i}\n")
        stream += ["commit refs/heads/main", f"mark :{i + 1}",
                   f"committer bench <bench@localhost> {1_700_000_000 + i} +0000", *data(message)]
        stream += [f"M 100644 inline memory/lessons-{i % 100}.jsonl",
                   *data(json.dumps({"id": f"lesson-{i}", "content": f"lesson {i}"}) + "\n")]
    # one notes commit holding every gate report (fast-import fans the tree out as git does)
    stream += ["commit refs/notes/aevolve", "committer bench <bench@localhost> 1800000000 +0000",
               *data("gate notes\n")]
    for i in range(commits):
        report = {"version": 1, "candidate": "", "decision": "accept", "reasons": ["no regression"],
                  "cases": [], "summary": {"baseline_pass_rate": 0.5, "candidate_pass_rate": 0.75}}
        stream += [f"N inline :{i + 1}", *data(json.dumps(report) + "\n")]
    proc = subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input="\n".join(stream) + "\n",
                          text=True, capture_output=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=root, check=True, env=ENV)


def timed(argv: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of whole processes: on a
    loaded machine the CPU time still shows how the work grows."""
    import resource

    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100 / 200 / 400 commits")
    parser.add_argument("--repeat", type=int, default=None, help="runs per size (median; default 3, 1 with --small)")
    args = parser.parse_args()
    sizes = [100, 200, 400] if args.small else [1_000, 3_000, 10_000]
    repeat = args.repeat or (1 if args.small else 3)
    ours, git = [], []
    with tempfile.TemporaryDirectory(prefix="aevolve-bench-log-") as tmp:
        for size in sizes:
            root = Path(tmp) / f"history-{size}"
            build(root, size)
            ours.append(timed([sys.executable, "-m", "aevolve", "log", "--json"], root, repeat))
            git.append(timed(["git", "log", "--notes=aevolve"], root, repeat))
    print_scaling(f"aevolve log --json over N evolution commits with gate notes (wall, median of {repeat})",
                  "commits", sizes, [w for w, _ in ours], "git log --notes", [w for w, _ in git])
    print_scaling(f"aevolve log --json over N evolution commits with gate notes (CPU, median of {repeat})",
                  "commits", sizes, [c for _, c in ours], "git log --notes", [c for _, c in git])
    return 0


if __name__ == "__main__":
    sys.exit(main())
