#!/usr/bin/env python3
"""Benchmark one commit appending one memory record, by number of records already stored.

For each size (100k / 1M / 10M records of ~100 bytes; `--small`: 1k / 10k / 100k)
it builds, with pygit2 object writes then one `git repack` (no checkout, no
thousands of commits), two state repositories holding the same records:

  sharded    memory/episodic.jsonl, .0001.jsonl, ... cut at `memory.shard_bytes`
             (the tail shard half full at every size, so each size pays the same
             average append cost)
  unsharded  one memory/episodic.jsonl, `memory.shard_bytes: 0`

and times whole processes of `aevolve propose --evolver patch --edits E` with one
`append-jsonl` edit to memory/episodic.jsonl (the real path: policy, validation of
the written file, objects, branch), median of `--runs`, beside git plumbing
appending one line to the single big file through a temporary index (cat-file /
hash-object / update-index / write-tree / commit-tree / update-ref) in the same
run. Both repositories set `protection.max_file_bytes` to 4 GiB, so the unsharded
commit is measured rather than refused by the per-file limit. Prints the scaling
exponent of each (target <= 1.1 for the sharded path).

Usage: python benchmarks/bench_memory.py [--small] [--runs N] [--sizes N ...]
                                         [--shard-bytes B] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_state import aevolve_argv, isolate_git, median, print_scaling, run  # noqa: E402

MEMORY = "memory/episodic.jsonl"
BIG_FILE_LIMIT = 4 * 1024**3  # protection.max_file_bytes in both repositories


def record(n: int) -> bytes:
    """One ~100-byte record, as the policy writes it (`", "` and `": "` separators)."""
    return (f'{{"id": "m-{n:08d}", "content": "Observation {n}: answer with the verified id.", '
            f'"tags": ["bench"]}}\n').encode()


def config(shard_bytes: int) -> bytes:
    from aevolve._config import TEMPLATE

    text = TEMPLATE.replace("  shard_bytes: 262144 ", f"  shard_bytes: {shard_bytes} ")
    text = text.replace("  max_file_bytes: 262144 ", f"  max_file_bytes: {BIG_FILE_LIMIT} ")
    assert f"shard_bytes: {shard_bytes} " in text and f"max_file_bytes: {BIG_FILE_LIMIT} " in text
    return text.encode()


def layout(records: int, shard_bytes: int) -> list[tuple[int, int]]:
    """(first record, count) of each file of the family: full shards, then a half-full tail;
    one file when `shard_bytes` is 0."""
    if shard_bytes == 0:
        return [(0, records)]
    per = max(1, shard_bytes // len(record(records)))
    tail = min(records, max(1, per // 2))
    files, start = [], 0
    while start < records - tail:
        count = min(per, records - tail - start)
        files.append((start, count))
        start += count
    return [*files, (start, tail)]


def build(root: Path, records: int, shard_bytes: int) -> None:
    """A state repository at `root` (main, nothing checked out) holding `records` records."""
    import pygit2

    from aevolve._git.repo import BLOB, TREE
    from aevolve._state.memory_shards import shard_name

    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    repo = pygit2.Repository(str(root))

    def tree(entries: dict) -> pygit2.Oid:
        tb = repo.TreeBuilder()
        for name, value in entries.items():
            tb.insert(name, value, TREE) if isinstance(value, pygit2.Oid) else tb.insert(name, repo.create_blob(value),
                                                                                       BLOB)
        return tb.write()

    memory = repo.TreeBuilder()
    for number, (start, count) in enumerate(layout(records, shard_bytes)):
        data = b"".join(record(n) for n in range(start, start + count))
        memory.insert(shard_name(MEMORY, number).split("/")[-1], repo.create_blob(data), BLOB)
    root_tree = tree({
        "aevolve.yaml": config(shard_bytes),
        "manifest.yaml": b"name: bench-agent\nversion: 0.1.0\ncontract_version: '1.0'\n"
                         b"evolvable_layers: [prompts, skills, tools, memory]\n",
        "prompts": tree({"system.md": b"You are a synthetic agent used for benchmarks.\n"}),
        "memory": memory.write(),
    })
    sig = pygit2.Signature("bench", "bench@localhost")
    repo.create_commit("refs/heads/main", sig, sig, "synthetic state\n", root_tree, [])
    # packed, as a lived-in repository is: loose objects would make the first command repack
    subprocess.run(["git", "-C", str(root), "repack", "-a", "-d", "-q", "--window=0"], check=True)


def propose_append(root: Path, n: int) -> float:
    edits = root / ".git" / f"bench-edits-{n}.yaml"
    edits.write_text(f"- op: append-jsonl\n  path: {MEMORY}\n  records:\n"
                     f"    - {{id: new-{n:06d}, content: 'Record {n} appended by the benchmark.'}}\n")
    return run([*aevolve_argv(), "propose", "--evolver", "patch", "--edits", str(edits), "--title",
                f"append record {n}", "--diagnosis", "benchmark", "--change", "append one record",
                "--expected-effect", "none"], root)


def git_append(root: Path, n: int) -> float:
    """One line appended to the single big file, as a git script would do it."""
    index = root / ".git" / "bench-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    start = time.perf_counter()

    def git(*args, inp=None) -> bytes:
        return subprocess.run(["git", *args], cwd=root, env=env, input=inp, capture_output=True, check=True).stdout

    old = git("rev-parse", "main").decode().strip()
    git("read-tree", old)
    data = git("cat-file", "blob", f"{old}:{MEMORY}") + record(10**8 + n)
    blob = git("hash-object", "-w", "--stdin", inp=data).decode().strip()
    git("update-index", "--cacheinfo", f"100644,{blob},{MEMORY}")
    new = git("commit-tree", git("write-tree").decode().strip(), "-p", old, "-m", "bench: append one line")
    git("update-ref", "refs/heads/git-bench", new.decode().strip())
    elapsed = time.perf_counter() - start
    index.unlink()
    return elapsed


def measure(base: Path, sizes: list[int], runs: int, shard_bytes: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"sharded": [], "unsharded": [], "git": []}
    for size in sizes:
        for mode, limit in (("sharded", shard_bytes), ("unsharded", 0)):
            root = base / f"{mode}-{size}"
            start = time.perf_counter()
            build(root, size, limit)
            files = len(layout(size, limit))
            print(f"built {mode} {size:,} records ({files} file{'s' if files > 1 else ''}) "
                  f"in {time.perf_counter() - start:.1f} s", flush=True)
            out[mode].append(median([propose_append(root, n) for n in range(runs)]))
            if mode == "unsharded":
                out["git"].append(median([git_append(root, n) for n in range(runs)]))
            shutil.rmtree(root, ignore_errors=True)
        print(f"{size:>12,} records: sharded {out['sharded'][-1]:.3f} s, unsharded {out['unsharded'][-1]:.3f} s, "
              f"git plumbing {out['git'][-1]:.3f} s", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run: 1k / 10k / 100k records")
    parser.add_argument("--sizes", type=int, nargs="+", help="numbers of records already stored")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3; 1 with --small)")
    parser.add_argument("--shard-bytes", type=int, default=None,
                        help="memory.shard_bytes of the sharded repository (default: aevolve's; 64 KiB with --small)")
    parser.add_argument("--workdir", type=Path, default=None, help="build the repositories here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (repositories are removed)")
    args = parser.parse_args()
    from aevolve._config import DEFAULTS

    sizes = args.sizes or ([1_000, 10_000, 100_000] if args.small else [100_000, 1_000_000, 10_000_000])
    runs = args.runs or (1 if args.small else 3)
    shard_bytes = args.shard_bytes or (64 * 1024 if args.small else DEFAULTS["memory"]["shard_bytes"])
    base = Path(tempfile.mkdtemp(prefix="aevolve-bench-memory-", dir=args.workdir))
    try:
        isolate_git(base)
        got = measure(base, sizes, runs, shard_bytes)
        print(f"\none commit appending one ~100-byte record; median of {runs} whole processes (wall time); "
              f"shards of {shard_bytes:,} bytes\n")
        print_scaling(f"aevolve propose (patch, append-jsonl), sharded at {shard_bytes:,} bytes, by records stored",
                      "records", sizes, got["sharded"], "git append, one file", got["git"])
        print()
        print_scaling("aevolve propose (patch, append-jsonl), unsharded (memory.shard_bytes: 0), by records stored",
                      "records", sizes, got["unsharded"], "git append, one file", got["git"])
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
