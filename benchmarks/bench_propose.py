"""Propose overhead (rules evolver, no LLM) on a large state, beside plain git plumbing.

    python benchmarks/bench_propose.py            # 10,000-skill state
    python benchmarks/bench_propose.py --small    # 200 skills, a smoke run

Rows:
  git plumbing        temporary index: read-tree, hash-object, update-index,
                      write-tree, commit-tree, update-ref (the same one-file append)
  aevolve propose     `aevolve propose --evolver rules --json`, whole process
  propose() API       the Python call in a warm process (no interpreter start-up)
Each proposal appends the same lessons to memory/lessons.jsonl; the branch is
deleted between runs (not timed) so every run does the full work.
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

SKILL = (
    "---\nname: skill-{i:05d}\ndescription: Skill number {i} of the benchmark state.\n---\n"
    "\n# Skill {i}\nDo step {i}.\n"
)


def git(cwd, *args, input=None, env=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def build_state(root: Path, skills: int) -> None:
    """A state repo with `skills` skills, written with one `git fast-import`."""
    git(root.parent, "init", "-q", "--initial-branch=main", str(root))
    files = {
        "manifest.yaml": "name: bench\nversion: 1.0.0\nevolvable_layers: [prompts, skills, tools, memory]\n",
        "prompts/system.md": "You are a benchmark agent.\n",
        "memory/episodic.jsonl": "".join(
            json.dumps({"id": f"m-{i}", "content": f"fact {i}"}) + "\n" for i in range(100)
        ),
        "evals/basic.yaml": "- id: a\n  input: {q: 1}\n  assert: [{type: contains, value: x}]\n",
    }
    for i in range(skills):
        files[f"skills/skill-{i:05d}/SKILL.md"] = SKILL.format(i=i)
    stream = ["commit refs/heads/main", "committer Bench <b@example.com> 1700000000 +0000", "data 6", "state", ""]
    for path, text in files.items():
        data = text.encode()
        stream += [f"M 100644 inline {path}", f"data {len(data)}", text]
    proc = subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input="\n".join(stream) + "\n",
                          text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    git(root, "reset", "-q", "--hard", "main")


def observations(root: Path) -> list[dict]:
    records = [{"id": f"obs-{i}", "task": f"question {i}", "output": "wrong",
                "feedback": {"success": False, "expected": f"answer {i}"}, "ts": "2025-01-01T00:00:00Z"}
               for i in range(5)]
    (root.parent / "obs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    subprocess.run([sys.executable, "-m", "aevolve", "observe", str(root.parent / "obs.jsonl")], cwd=root,
                   check=True, capture_output=True)
    return records


def drop_branches(root: Path) -> None:
    for ref in git(root, "for-each-ref", "--format=%(refname)", "refs/heads/evolve/").split():
        git(root, "update-ref", "-d", ref)


def time_git_plumbing(root: Path, records: list[dict], index: Path) -> float:
    lines = "".join(
        json.dumps({"id": f"lesson-{r['id']}", "content": r["feedback"]["expected"]}) + "\n" for r in records
    )
    env = {"GIT_INDEX_FILE": str(index)}
    start = time.perf_counter()
    git(root, "read-tree", "main", env=env)
    blob = git(root, "hash-object", "-w", "--stdin", input=lines)
    git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},memory/lessons.jsonl", env=env)
    tree = git(root, "write-tree", env=env)
    commit = git(root, "commit-tree", tree, "-p", "main", "-m", "evolve(memory): lessons", env=env)
    git(root, "update-ref", "refs/heads/evolve/plumbing", commit, "0" * 40)
    elapsed = time.perf_counter() - start
    git(root, "update-ref", "-d", "refs/heads/evolve/plumbing")
    return elapsed


def time_cli(root: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "aevolve", "propose", "--evolver", "rules", "--json"], cwd=root,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or json.loads(proc.stdout)["nothing_to_do"]:
        raise SystemExit(f"propose failed: {proc.stderr or proc.stdout}")
    drop_branches(root)
    return elapsed


def time_api(root: Path) -> float:
    from aevolve._propose.run import propose

    start = time.perf_counter()
    result = propose(root, evolver="rules")
    elapsed = time.perf_counter() - start
    assert result.commit, result.reason
    drop_branches(root)
    return elapsed


def add_branches(root: Path, count: int) -> None:
    """`count` rejected evolve/* branches on main (one commit each, a gate note each), one fast-import."""
    main = git(root, "rev-parse", "main")
    stream: list[str] = []
    for i in range(count):
        message, line = f"evolve(memory): old idea {i}\n", json.dumps({"id": f"idea-{i}", "content": f"idea {i}"})
        stream += [f"commit refs/heads/evolve/old-{i:05d}", f"mark :{i + 1}",
                   f"committer Bench <b@example.com> {1_700_000_001 + i} +0000",
                   f"data {len(message)}", message, f"from {main}",
                   f"M 100644 inline memory/ideas-{i:05d}.jsonl", f"data {len(line) + 1}", line]
    note = json.dumps({"version": 1, "decision": "reject", "reasons": ["1 case(s) regressed: a"], "cases": []})
    stream += ["commit refs/notes/aevolve", "committer Bench <b@example.com> 1800000000 +0000", "data 6", "notes"]
    if git(root, "for-each-ref", "refs/notes/aevolve"):
        stream.append("from refs/notes/aevolve^0")
    for i in range(count):
        stream += [f"N inline :{i + 1}", f"data {len(note) + 1}", note]
    proc = subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input="\n".join(stream) + "\n",
                          text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)


def time_cli_keeping_branches(root: Path) -> float:
    """One `aevolve propose` process; only the branch it made is deleted afterwards."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "aevolve", "propose", "--evolver", "rules", "--json"], cwd=root,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    doc = json.loads(proc.stdout) if proc.returncode == 0 else {}
    if not doc.get("branch"):
        raise SystemExit(f"propose failed: {proc.stderr or proc.stdout}")
    git(root, "update-ref", "-d", f"refs/heads/{doc['branch']}")
    return elapsed


def bench_branches(tmp: Path, sizes: list[int], repeats: int, skills: int = 200) -> None:
    """propose (whole process) with N rejected evolve/* branches present, beside git plumbing."""
    from bench_state import print_scaling

    ours, plumbing = [], []
    for size in sizes:
        root = tmp / f"branches-{size}"
        build_state(root, skills)
        records = observations(root)
        add_branches(root, size)
        index = tmp / f"branches-{size}.index"
        plumbing.append(statistics.median([time_git_plumbing(root, records, index) for _ in range(repeats)]))
        ours.append(statistics.median([time_cli_keeping_branches(root) for _ in range(repeats)]))
    print_scaling(f"propose with N rejected evolve/* branches (median of {repeats})", "branches", sizes, ours,
                  "git plumbing", plumbing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="200 skills, 2 repeats (a smoke run)")
    parser.add_argument("--skills", type=int, help="number of skills (default 10000)")
    parser.add_argument("--repeats", type=int, help="runs per row (median reported)")
    args = parser.parse_args()
    for var, value in {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}.items():
        os.environ.setdefault(var, value)  # a machine without a git identity can still commit
    skills = args.skills or (200 if args.small else 10_000)
    repeats = args.repeats or (2 if args.small else 5)
    with tempfile.TemporaryDirectory(prefix="aevolve-bench-") as tmp:
        from bench_state import use_bytecode

        use_bytecode(Path(tmp))
        root = Path(tmp) / "state"
        t0 = time.perf_counter()
        build_state(root, skills)
        records = observations(root)
        print(f"state: {skills} skills, {len(git(root, 'ls-files').splitlines())} files "
              f"(built in {time.perf_counter() - t0:.1f}s); {repeats} runs per row, median")
        index = Path(tmp) / "bench.index"
        time_cli(root)  # not timed: compiles the bytecode a real install already has
        rows = [
            ("git plumbing (temp index)", [time_git_plumbing(root, records, index) for _ in range(repeats)]),
            ("aevolve propose (process)", [time_cli(root) for _ in range(repeats)]),
            ("propose() API (warm)", [time_api(root) for _ in range(repeats + 1)][1:]),
        ]
        base = statistics.median(rows[0][1])
        print(f"{'operation':<28} {'median ms':>10} {'vs git':>8}")
        print("-" * 48)
        for name, times in rows:
            median = statistics.median(times)
            print(f"{name:<28} {median * 1000:>10.1f} {median / base:>7.2f}x")
        bench_branches(Path(tmp), [10, 20, 40] if args.small else [300, 1_000, 3_000], 1 if args.small else 3,
                       min(skills, 200))


if __name__ == "__main__":
    main()
