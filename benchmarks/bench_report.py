"""`aevolve report` on long synthetic histories, beside `git log --notes` on the same history.

    python benchmarks/bench_report.py            # 100, 1,000 and 5,000 promotions
    python benchmarks/bench_report.py --small    # 100 promotions, one run (a smoke run)

Each history is written in process (pygit2 objects, one notes commit holding every
gate note): a root state, then N promoted evolver commits on main, each with a gate
note of 20 tagged cases (latency and cost per case), and one rejected proposal for
every three promotions (a note, and an evolve/* branch for every other one).

Rows, whole processes, wall time (median of --runs):
  git log --notes     `git log --notes=refs/notes/aevolve main`: every commit and note printed
  aevolve report      `aevolve report -o report.html` (HTML), and `--format json`
The ratio is ours over git's. Target: 1,000 promotions in a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = 20
TAGS = ("billing", "shipping", "account", "safety")
EVOLVERS = ("rules", "openai", "patch")
STATE = {
    "manifest.yaml": b"name: bench\nversion: 1.0.0\nevolvable_layers: [prompts, skills, tools, memory]\n",
    "prompts/system.md": b"You are a benchmark agent.\n",
    "evals/basic.yaml": b"- id: case-00\n  input: {q: 1}\n  assert: [{type: contains, value: x}]\n",
}


def _side(passing: set[int], rng: random.Random) -> list[dict]:
    return [{"runs": 1, "passes": int(k in passing), "errors": 0, "pass_rate": float(k in passing),
             "latency_ms": round(rng.uniform(80, 400), 1), "cost": round(rng.uniform(0.0005, 0.004), 6)}
            for k in range(CASES)]


def _report(candidate: str, baseline: str, decision: str, before: set[int], after: set[int],
            rng: random.Random) -> bytes:
    base, cand = _side(before, rng), _side(after, rng)
    cases = [{"id": f"case-{k:02d}", "tags": [TAGS[k % len(TAGS)]], "repeat": 1, "threshold": 1.0,
              "baseline": base[k], "candidate": cand[k],
              "verdict": "regression" if k in before - after else ("improvement" if k in after - before else "pass"),
              "regressed": k in before - after} for k in range(CASES)]
    gain = (len(after) - len(before)) / CASES
    reason = ("no regressions" if decision == "accept"
              else f"1 case(s) pass on the baseline but fail on the candidate: case-{min(before - after):02d}")
    return json.dumps({"version": 1, "candidate": candidate, "baseline": baseline, "decision": decision,
                       "reasons": [reason], "cases": cases,
                       "summary": {"cases": CASES, "baseline_pass_rate": len(before) / CASES,
                                   "candidate_pass_rate": len(after) / CASES, "gain": gain}}).encode()


def _message(i: int, parent: str, title: str, evolver: str) -> str:
    from aevolve._propose.rationale import Rationale

    return Rationale(title=title, layer="skills", diagnosis=f"Task {i} failed: the skill missed step {i}.",
                     change=f"Adds step {i} to skills/skill-{i % 100:03d}/SKILL.md.",
                     expected_effect="The failing case passes; nothing else changes.", evidence=[f"obs-{i}"],
                     proposal_id=f"p-{i:06d}", evolver=evolver, base=parent).message()


def build_history(root: Path, promotions: int, seed: int = 7) -> dict:
    """A state repository at `root` with `promotions` gated commits on main and rejected
    proposals beside them; returns counts and the commits of main, oldest first."""
    from aevolve._git.repo import Repo

    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(root)], check=True)
    repo = Repo.open(root)
    rng = random.Random(seed)
    tree = repo.build_tree(None, STATE)
    main = [str(repo.commit(tree, [], "aevolve: adopt agent state\n"))]
    passing = set(range(CASES // 2))
    notes: dict[str, bytes] = {}
    rejected = 0
    for i in range(1, promotions + 1):
        parent, parent_tree = main[-1], repo.tree(main[-1])
        if i % 3 == 0:  # a proposal that breaks a passing case: rejected, kept beside main
            bad = repo.build_tree(parent_tree, {f"skills/skill-{i % 100:03d}/SKILL.md": f"broken {i}\n".encode()})
            sha = str(repo.commit(bad, [parent], _message(i, parent, f"rewrite skill {i % 100}", EVOLVERS[i // 3 % 3])))
            broken = passing - {min(passing)} if passing else passing
            notes[sha] = _report(sha, parent, "reject", passing, broken, rng)
            if rejected % 2 == 0:
                repo.git.references.create(f"refs/heads/evolve/bench-{i:06d}", sha)
            rejected += 1
        after = set(passing)
        failing = sorted(set(range(CASES)) - passing)
        if failing and rng.random() < 0.5:
            after.add(failing[0])
        elif not failing and rng.random() < 0.3:  # a case judged anew: the suite keeps some headroom
            after.discard(rng.randrange(CASES))
        new_tree = repo.build_tree(parent_tree, {f"skills/skill-{i % 100:03d}/SKILL.md": f"step {i}\n".encode()})
        sha = str(repo.commit(new_tree, [parent], _message(i, parent, f"learn step {i}", EVOLVERS[i % 3])))
        notes[sha] = _report(sha, parent, "accept", passing, after, rng)
        passing = after
        main.append(sha)
    notes_tree = repo.build_tree(None, notes)
    notes_commit = repo.commit(notes_tree, [], "aevolve: notes\n")
    repo.git.references.create("refs/notes/aevolve", notes_commit)
    repo.git.references.create("refs/heads/main", main[-1], force=True)
    return {"main": main, "rejected": rejected, "notes": len(notes)}


def aevolve_argv() -> list[str]:
    script = Path(sys.executable).parent / "aevolve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aevolve"]


def timed(argv: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return statistics.median(times)


def measure(base: Path, promotions: int, runs: int) -> tuple:
    root = base / f"history-{promotions}"
    start = time.perf_counter()
    built = build_history(root, promotions)
    build_s = time.perf_counter() - start
    git_s = timed(["git", "log", "--notes=refs/notes/aevolve", "main"], root, runs)
    html_s = timed([*aevolve_argv(), "report", "-o", str(base / "report.html")], root, runs)
    size = (base / "report.html").stat().st_size
    json_s = timed([*aevolve_argv(), "report", "--format", "json", "-o", str(base / "report.json")], root, runs)
    shutil.rmtree(root)
    return promotions, built["rejected"], build_s, git_s, html_s, json_s, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100 promotions, one run (a smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="promotions per history")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3; 1 with --small)")
    parser.add_argument("--workdir", type=Path, default=None, help="build the histories here (default: a temp dir)")
    args = parser.parse_args()
    sizes = args.sizes or ([100] if args.small else [100, 1_000, 5_000])
    runs = args.runs or (1 if args.small else 3)
    base = Path(tempfile.mkdtemp(prefix="aevolve-bench-report-", dir=args.workdir))
    try:
        home = base / "home"
        home.mkdir()
        os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
                           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})
        rows = [measure(base, n, runs) for n in sizes]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nsynthetic histories: {CASES} cases per gate note, a rejected proposal per 3 promotions; "
          f"median of {runs} run(s) (whole processes, wall time)\n")
    header = (f"{'promotions':>10} {'rejected':>8} {'built s':>8}  {'git log --notes s':>17}  {'report html s':>13} "
              f"{'ratio':>7}  {'report json s':>13} {'ratio':>7}  {'html size':>9}")
    print(header)
    print("-" * len(header))
    for n, rejected, build_s, git_s, html_s, json_s, size in rows:
        print(f"{n:>10,} {rejected:>8,} {build_s:8.2f}  {git_s:17.3f}  {html_s:13.3f} {html_s / git_s:6.1f}x  "
              f"{json_s:13.3f} {json_s / git_s:6.1f}x  {size / 1e6:7.2f}MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
