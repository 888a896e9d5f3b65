#!/usr/bin/env python3
"""Benchmark the state layer on a large synthetic state, ours beside plain git.

Builds (with pygit2 object writes, not thousands of commits) a state repository
of 10,000 skills and a 200,000-line memory file, checks it out, then prints the
median wall time of whole processes, each beside comparable git work measured
in the same run:

  (a) `aevolve validate` of the working tree, cold (no cache) and incremental
      (one skill changed, cache warm)            vs `git status`
  (b) one commit with one changed file built without the working tree: a
      python process using aevolve._git.repo (the code path `aevolve propose` uses)
                                                 vs git plumbing with a
      temporary index (read-tree / hash-object / update-index --cacheinfo /
      write-tree / commit-tree / update-ref)
  (c) `aevolve --help` start-up                  vs `git --version`

Usage: python benchmarks/bench_state.py [--small] [--runs N] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BRANCH = "refs/heads/bench"
CHANGED_SKILL = "skills/skill-00042/SKILL.md"

COMMIT_SNIPPET = """
import sys
from aevolve._git.repo import Repo
repo = Repo.open(sys.argv[1])
old = repo.ref_target(sys.argv[2])
tree = repo.build_tree(repo.git[old].tree, {sys.argv[3]: sys.stdin.buffer.read()})
repo.update_ref(sys.argv[2], repo.commit(tree, [old], "bench: change one file\\n"), old)
"""


def skill_text(i: int, variant: str = "") -> bytes:
    return (
        f"---\nname: skill-{i:05d}\ndescription: Synthetic skill number {i}{variant}, "
        f"used to measure validation at scale.\nkeywords: [bench, s{i % 97}]\n---\n\n"
        f"# Skill {i}\n\nWhen the task mentions topic {i}, check the inputs twice, then answer.\n"
    ).encode()


def build_state(root: Path, skills: int, lines: int) -> None:
    """A state repo at `root` with main checked out; objects written directly with pygit2."""
    import pygit2

    from aevolve._config import TEMPLATE
    from aevolve._git.repo import BLOB, TREE

    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    repo = pygit2.Repository(str(root))

    skills_tb = repo.TreeBuilder()
    for i in range(skills):
        folder = repo.TreeBuilder()
        folder.insert("SKILL.md", repo.create_blob(skill_text(i)), BLOB)
        skills_tb.insert(f"skill-{i:05d}", folder.write(), TREE)

    memory = "".join(
        json.dumps({"id": f"m-{n:06d}", "content": f"Observation {n}: answer with the verified id.",
                    "tags": ["bench", f"t{n % 13}"]}) + "\n"
        for n in range(lines)
    ).encode()

    def tree(entries: dict) -> pygit2.Oid:
        tb = repo.TreeBuilder()
        for name, value in entries.items():
            if isinstance(value, pygit2.Oid):
                tb.insert(name, value, TREE)
            else:
                tb.insert(name, repo.create_blob(value), BLOB)
        return tb.write()

    root_tree = tree({
        "aevolve.yaml": TEMPLATE.encode(),
        "manifest.yaml": b"name: bench-agent\nversion: 0.1.0\ncontract_version: '1.0'\n"
                         b"evolvable_layers: [prompts, skills, tools, memory]\n",
        "prompts": tree({"system.md": b"You are a synthetic agent used for benchmarks.\n"}),
        "tools": tree({"registry.yaml": b"tools:\n  - name: bash\n    description: Run bash.\n    file: bash.py\n"}),
        "memory": tree({"episodic.jsonl": memory}),
        "skills": skills_tb.write(),
    })
    sig = pygit2.Signature("bench", "bench@localhost")
    commit = repo.create_commit("refs/heads/main", sig, sig, "synthetic state\n", root_tree, [])
    repo.references.create(BRANCH, commit)
    subprocess.run(["git", "-C", str(root), "reset", "-q", "--hard", "main"], check=True)
    # settle the index's stat data so neither tool re-hashes unchanged files
    subprocess.run(["git", "-C", str(root), "update-index", "-q", "--refresh"], check=False)
    subprocess.run(["git", "-C", str(root), "status", "--porcelain"], check=True, capture_output=True)


def run(argv: list[str], cwd: Path, data: bytes | None = None, env: dict | None = None,
        ok: tuple = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, input=data, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed


def median(times: list[float]) -> float:
    return statistics.median(times)


# -- scaling: every benchmark measures at three or more sizes and fits an exponent -------
SCALING_TARGET = 1.1  # time ~ size^k: k <= 1.1 is linear within noise


def exponent(sizes: list[float], seconds: list[float]) -> float:
    """The least-squares slope of log(time) against log(size): 1 is linear, 2 quadratic."""
    import math

    xs, ys = [math.log(s) for s in sizes], [math.log(max(t, 1e-6)) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def print_scaling(title: str, unit: str, sizes: list[int], ours: list[float], base_name: str,
                  base: list[float]) -> float:
    """One scaling table: seconds at each size for ours and the baseline, and each exponent.
    Returns our exponent."""
    k_ours, k_base = exponent(sizes, ours), exponent(sizes, base)
    print(title)
    print(f"{unit:>12} {'ours s':>9} {base_name + ' s':>22} {'ratio':>7}")
    for size, t_ours, t_base in zip(sizes, ours, base, strict=True):
        print(f"{size:>12,} {t_ours:>9.3f} {t_base:>22.3f} {t_ours / max(t_base, 1e-9):>6.1f}x")
    verdict = "met" if k_ours <= SCALING_TARGET else "MISSED"
    print(f"{'exponent':>12} {k_ours:>9.2f} {k_base:>22.2f}   (target <= {SCALING_TARGET}: {verdict})")
    return k_ours


def isolate_git(base: Path) -> Path:
    """A HOME of its own under `base` (the user's git config must not change what is
    measured, as in the test suite), and a fixed author; the HOME folder."""
    home = base / "home"
    home.mkdir()
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
                       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})
    return home


def aevolve_argv() -> list[str]:
    """The installed console script (no shell shim in between), else `python -m aevolve`."""
    script = Path(sys.executable).parent / "aevolve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aevolve"]


def use_bytecode(base: Path) -> None:
    """Let the measured processes keep compiled bytecode, as an installed aevolve has
    (pip compiles it): with PYTHONDONTWRITEBYTECODE set, every run would also compile
    every module it imports (~80 ms of a `propose`), which no user pays."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(base / "pycache"))  # not into the source tree


def git_plumbing_commit(root: Path, path: str, data: bytes) -> float:
    """One commit of one changed file through a temporary index, as a script would do it."""
    index = root / ".git" / "bench-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    start = time.perf_counter()

    def git(*args, inp=None):
        return subprocess.run(["git", *args], cwd=root, env=env, input=inp, capture_output=True,
                              check=True).stdout.decode().strip()

    old = git("rev-parse", BRANCH)
    git("read-tree", old)
    blob = git("hash-object", "-w", "--stdin", inp=data)
    git("update-index", "--cacheinfo", f"100644,{blob},{path}")
    tree = git("write-tree")
    new = git("commit-tree", tree, "-p", old, "-m", "bench: change one file")
    git("update-ref", BRANCH, new, old)
    elapsed = time.perf_counter() - start
    index.unlink()
    return elapsed


def measure(root: Path, runs: int) -> list[tuple]:
    av = aevolve_argv()
    py = sys.executable
    cache = root / ".git" / "aevolve"
    rows = []

    def clear_cache():
        shutil.rmtree(cache, ignore_errors=True)

    git_status = []
    cold = []
    run([*av, "validate"], root)  # not timed: compiles the bytecode a real install already has
    for _ in range(runs):
        clear_cache()
        cold.append(run([*av, "validate"], root))
    run([*av, "validate"], root)  # warm the cache

    incremental = []
    target = root / CHANGED_SKILL
    for n in range(runs * 2):
        target.write_bytes(skill_text(42, f" (edit {n % 2})"))
        incremental.append(run([*av, "validate"], root))
        target.write_bytes(skill_text(42, f" (edit {(n + 1) % 2})"))
        git_status.append(run(["git", "status", "--porcelain"], root))
    gs = median(git_status)
    rows.append(("validate, cold cache", f"{' '.join(Path(a).name for a in av)} validate", median(cold),
                 "git status", gs, None))
    rows.append(("validate, 1 skill changed (warm)", "aevolve validate", median(incremental),
                 "git status", gs, 2.0))
    floor = [run([*av, "validate", "--help"], root) for _ in range(runs * 2)]
    rows.append(("  (command floor: python + click)", "aevolve validate --help", median(floor),
                 "git status", gs, None))

    ours_commit, git_commit = [], []
    for n in range(runs * 2):
        data = skill_text(7, f" (commit {n})")
        ours_commit.append(run([py, "-c", COMMIT_SNIPPET, str(root), BRANCH, "skills/skill-00007/SKILL.md"],
                               root, data=data))
        git_commit.append(git_plumbing_commit(root, "skills/skill-00007/SKILL.md", data + b"git"))
    rows.append(("one-file commit, no worktree", "python -c <aevolve._git.repo snippet>", median(ours_commit),
                 "7 git plumbing calls, temp index", median(git_commit), 1.5))

    help_t, version_t, floor = [], [], []
    probe = subprocess.run([*av, "--help"], cwd=root, capture_output=True, text=True)
    if probe.returncode != 0:  # measured anyway; say so rather than hide it
        print(f"note: `aevolve --help` exits {probe.returncode}: {probe.stderr.strip().splitlines()[-1]}")
    for _ in range(runs * 3):
        help_t.append(run([*av, "--help"], root, ok=(probe.returncode,)))
        version_t.append(run(["git", "--version"], root))
        floor.append(run([py, "-c", "pass"], root))
    rows.append(("start-up", "aevolve --help", median(help_t), "git --version", median(version_t), None))
    rows.append(("  (interpreter floor)", "python -c pass", median(floor), "git --version", median(version_t), None))
    return rows


def measure_scaling(base: Path, sizes: list[int], runs: int) -> None:
    """validate (cold, and warm after one skill changed) and `git status` at each number of skills."""
    av = aevolve_argv()
    cold, warm, status = [], [], []
    for skills in sizes:
        root = base / f"scale-{skills}"
        build_state(root, skills, 1_000)
        times = []
        for _ in range(runs):
            shutil.rmtree(root / ".git" / "aevolve", ignore_errors=True)
            times.append(run([*av, "validate"], root))
        cold.append(median(times))
        target, times, git_times = root / CHANGED_SKILL.replace("00042", "00007"), [], []
        for n in range(runs * 2):
            target.write_bytes(skill_text(7, f" (edit {n % 2})"))
            times.append(run([*av, "validate"], root))
            git_times.append(run(["git", "status", "--porcelain"], root))
        warm.append(median(times))
        status.append(median(git_times))
        shutil.rmtree(root, ignore_errors=True)
    print_scaling("validate, cold cache, by number of skills", "skills", sizes, cold, "git status", status)
    print_scaling("validate, one skill changed (warm cache), by number of skills", "skills", sizes, warm,
                  "git status", status)


def print_table(rows: list[tuple], skills: int, lines: int, runs: int, help_time: float) -> None:
    print(f"\nsynthetic state: {skills:,} skills, {lines:,}-line memory file; median of {runs}-{runs * 3} runs "
          f"(whole processes, wall time)\n")
    header = f"{'measurement':34} {'ours':34} {'s':>8}  {'baseline':32} {'s':>8}  {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    for name, ours, t_ours, base, t_base, target in rows:
        ratio = t_ours / t_base if t_base else float("inf")
        goal = f"<= {target}x {'met' if ratio <= target else 'MISSED'}" if target else ""
        print(f"{name:34} {ours:34} {t_ours:8.3f}  {base:32} {t_base:8.3f}  {ratio:6.1f}x  {goal}")
    print(f"\naevolve --help absolute: {help_time:.3f} s (target < 0.15 s: {'met' if help_time < 0.15 else 'MISSED'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run: 200 skills, 5,000 lines")
    parser.add_argument("--skills", type=int, default=None)
    parser.add_argument("--lines", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3; 1 with --small)")
    parser.add_argument("--workdir", type=Path, default=None, help="build the repository here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the built repository")
    parser.add_argument("--scaling", type=int, nargs="+", help="numbers of skills for the scaling tables")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling tables")
    args = parser.parse_args()
    skills = args.skills or (200 if args.small else 10_000)
    lines = args.lines or (5_000 if args.small else 200_000)
    runs = args.runs or (1 if args.small else 3)

    base = Path(tempfile.mkdtemp(prefix="aevolve-bench-", dir=args.workdir))
    root = base / "state"
    try:
        isolate_git(base)
        use_bytecode(base)
        start = time.perf_counter()
        build_state(root, skills, lines)
        print(f"built {root} in {time.perf_counter() - start:.1f} s")
        rows = measure(root, runs)
        print_table(rows, skills, lines, runs, next(r[2] for r in rows if r[1] == "aevolve --help"))
        if not args.no_scaling:
            measure_scaling(base, args.scaling or ([100, 200, 400] if args.small else [1_000, 10_000, 50_000]), runs)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
