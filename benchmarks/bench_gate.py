"""Gate benchmarks: overhead per case, parallel speed-up, re-gate of an unchanged candidate.

    python benchmarks/bench_gate.py [--small]

Targets (DESIGN/issue 4): overhead < 20 ms per case beyond the runner's own time;
near-linear speed-up up to `jobs` with a sleeping runner; zero runner starts when
an unchanged candidate is gated again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNNER = """\
import json, os, sys, time
with open(sys.argv[1], "a") as fh:
    fh.write(os.environ["AEVOLVE_CASE_ID"] + "\\n")
data = json.load(sys.stdin)
time.sleep(float(sys.argv[2]))
print(data["q"])
"""


def make_repo(root: Path, cases: int, sleep: float) -> tuple[Path, Path]:
    from aevolve._state.init import init_repo

    root.mkdir(parents=True)
    runner, log = root / "runner.py", root / "runs.log"
    runner.write_text(RUNNER)
    state = root / "state"
    (state / "evals").mkdir(parents=True)
    (state / "memory").mkdir()
    (state / "aevolve.yaml").write_text(
        "version: 1\ngate:\n"
        f"  runner: {json.dumps([sys.executable, str(runner), str(log), str(sleep)])}\n"
        "  timeout: 30\n  jobs: 1\n"
    )
    (state / "memory/facts.jsonl").write_text('{"id": "m1", "content": "x"}\n')
    (state / "evals/suite.yaml").write_text("".join(
        f"- id: case-{i}\n  input: {{q: answer-{i}}}\n  assert:\n    - {{type: equals, value: answer-{i}}}\n"
        for i in range(cases)))
    init_repo(state)
    return state, log


def candidate(repo, name: str) -> str:
    parent = repo.resolve("main")
    tree = repo.build_tree(parent.tree, {"memory/facts.jsonl": f'{{"id": "m1", "content": "{name}"}}\n'.encode()})
    commit = repo.commit(tree, [str(parent.id)], f"evolve: {name}\n")
    repo.create_ref(f"refs/heads/{name}", commit)
    return str(commit)


def same_tree(repo) -> str:
    """A commit on main with main's own tree: both sides share one run per case."""
    parent = repo.resolve("main")
    return str(repo.commit(parent.tree.id, [str(parent.id)], "evolve: nothing\n"))


def count(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def bench_overhead(tmp: Path, cases: int) -> list[tuple]:
    from aevolve._gate.run import gate
    from aevolve._git.repo import Repo

    state, _ = make_repo(tmp / "overhead", cases, 0.0)
    repo = Repo.open(state)
    argv = json.loads((state / "aevolve.yaml").read_text().split("runner: ")[1].split("\n")[0])
    cand = same_tree(repo)
    gate(repo, cand, jobs=1, write_note=False)  # warm up: materialize, imports

    def direct_ms() -> float:
        t0 = time.perf_counter()
        for i in range(cases):
            subprocess.run(argv, input=json.dumps({"q": f"answer-{i}"}).encode(), capture_output=True,
                           env={**os.environ, "AEVOLVE_CASE_ID": f"case-{i}"}, check=True)
        return (time.perf_counter() - t0) / cases * 1000

    # plain runs before and after the gate, averaged: the machine's load drifts
    before = direct_ms()
    t0 = time.perf_counter()
    report = gate(repo, cand, jobs=1, use_cache=False, write_note=False)  # same tree: one run per case
    ours = (time.perf_counter() - t0) / cases * 1000
    direct = (before + direct_ms()) / 2
    assert report.timings["runs_started"] == cases
    return [("overhead per case (trivial runner, jobs=1)", f"{direct:.1f} ms", f"{ours:.1f} ms",
             f"{ours / direct:.2f}x", f"{ours - direct:+.1f} ms/case (target < 20)")]


def bench_parallel(tmp: Path, cases: int, jobs_list: list[int], sleep: float = 0.2) -> list[tuple]:
    from aevolve._gate.run import gate
    from aevolve._git.repo import Repo

    state, _ = make_repo(tmp / "parallel", cases, sleep)
    repo = Repo.open(state)
    rows, serial = [], None
    cand = same_tree(repo)
    for jobs in jobs_list:
        t0 = time.perf_counter()
        gate(repo, cand, jobs=jobs, use_cache=False, write_note=False)
        took = time.perf_counter() - t0
        serial = serial or took
        ideal = serial / min(jobs, cases)
        rows.append((f"{cases} cases x {sleep:g} s sleep, jobs={jobs}", f"{ideal:.2f} s ideal", f"{took:.2f} s",
                     f"{serial / took:.2f}x speed-up", f"{ideal / took:.0%} of linear"))
    return rows


def bench_regate(tmp: Path, cases: int) -> list[tuple]:
    from aevolve._gate.run import gate
    from aevolve._git.repo import Repo

    state, log = make_repo(tmp / "regate", cases, 0.0)
    repo = Repo.open(state)
    cand = candidate(repo, "evolve-one")
    t0 = time.perf_counter()
    gate(repo, cand, jobs=2)
    first, first_runs = time.perf_counter() - t0, count(log)
    t0 = time.perf_counter()
    gate(repo, cand, jobs=2)
    again, again_runs = time.perf_counter() - t0, count(log) - first_runs
    return [(f"re-gate unchanged candidate ({cases} cases)", f"{first:.2f} s, {first_runs} starts",
             f"{again:.3f} s", f"{first / again:.0f}x faster", f"{again_runs} runner starts (target 0)")]


def bench_cases_per_file(tmp: Path, sizes: list[int]) -> tuple[list[tuple], list[tuple]]:
    """`aevolve gate` (whole process) with N cases in one file, then again with every
    run cached, beside the runner started N times directly and `git cat-file` of the file.
    Returns the summary row and the two scaling tables (print_scaling's arguments)."""
    from aevolve._git.repo import Repo

    first, cached, direct, plain = [], [], [], []
    for n in sizes:
        state, _ = make_repo(tmp / f"cases-{n}", n, 0.0)
        repo = Repo.open(state)
        cand = same_tree(repo)
        repo.create_ref("refs/heads/evolve/same", cand)
        argv = [sys.executable, "-m", "aevolve", "gate", "evolve/same", "--jobs", "2", "--json"]
        for out in (first, cached):
            t0 = time.perf_counter()
            proc = subprocess.run(argv, cwd=state, capture_output=True)
            out.append(time.perf_counter() - t0)
            if proc.returncode not in (0, 100):
                raise SystemExit(f"gate failed: {proc.stderr.decode()[-2000:]}")
        runner = json.loads((state / "aevolve.yaml").read_text().split("runner: ")[1].split("\n")[0])
        t0 = time.perf_counter()
        for i in range(n):
            subprocess.run(runner, input=json.dumps({"q": f"answer-{i}"}).encode(), capture_output=True,
                           env={**os.environ, "AEVOLVE_CASE_ID": f"case-{i}"}, check=True)
        direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["git", "cat-file", "-p", "main:evals/suite.yaml"], cwd=state, capture_output=True, check=True)
        plain.append(time.perf_counter() - t0)
    return [
        ("cases in one file: aevolve gate (jobs=2, one run per case) vs the runner started directly (serial)",
         "cases", sizes, first, "runner x N", direct),
        ("cases in one file: re-gate with every run cached vs git cat-file of the file",
         "cases", sizes, cached, "git cat-file", plain),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run with few cases")
    args = parser.parse_args(argv)
    cases = 5 if args.small else 50
    par_cases, jobs_list, sleep = (4, [1, 2], 0.05) if args.small else (16, [1, 2, 4, 8], 0.2)
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_overhead(Path(tmp), cases) + bench_parallel(Path(tmp), par_cases, jobs_list, sleep) \
            + bench_regate(Path(tmp), cases)
        scaling = bench_cases_per_file(Path(tmp), [4, 8, 16] if args.small else [10, 100, 1_000])
        from aevolve._gate.materialize import remove

        for folder in Path(tmp).glob("*/state/.git/aevolve/trees"):
            remove(folder)  # read-only copies: make them deletable
    header = ("measure", "baseline", "aevolve gate", "ratio", "note")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    from bench_state import print_scaling

    for table in scaling:
        print_scaling(*table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
