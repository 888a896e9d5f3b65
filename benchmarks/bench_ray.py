"""The gate on Ray beside the local executor, with a sleeping runner.

    python benchmarks/bench_ray.py [--small] [--sleep S] [--slots N]

Starts Ray's own local cluster (`ray.cluster_utils.Cluster`) with 1, then 2
nodes of N slots each (`num_cpus`; the runner sleeps, so a slot is not a core),
and gates the same candidate (every run uncached) on the local executor with
`jobs` = N and with 2N, then on Ray with 1 and 2 nodes, at three suite sizes.
Prints wall time per size and the scaling exponent of each column (wall time
against number of runs). Needs `pip install 'aevolve[ray]'`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gate import candidate, make_repo
from bench_state import print_scaling


def timed_gate(state: Path, branch: str, **options) -> float:
    from aevolve import gate
    from aevolve._git.repo import Repo

    start = time.perf_counter()
    gate(Repo.open(state), branch, use_cache=False, write_note=False, **options)
    return time.perf_counter() - start


def start_cluster(nodes: int, slots: int):
    from ray.cluster_utils import Cluster

    small = {"num_cpus": slots, "object_store_memory": 100 * 1024 * 1024}
    cluster = Cluster(initialize_head=True, head_node_args=small)
    for _ in range(nodes - 1):
        cluster.add_node(**small)
    cluster.wait_for_nodes()
    return cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="Fewer cases and shorter sleeps (a smoke run).")
    parser.add_argument("--sleep", type=float, default=None, help="Seconds each run sleeps (default 1.0; 0.2 small).")
    parser.add_argument("--slots", type=int, default=2, help="Runs in parallel per Ray node (its num_cpus).")
    args = parser.parse_args(argv)
    try:
        import ray
    except ImportError:
        print("bench_ray: Ray is not installed (pip install 'aevolve[ray]')", file=sys.stderr)
        return 1
    sleep = args.sleep if args.sleep is not None else (0.2 if args.small else 1.0)
    sizes = [2, 4, 8] if args.small else [8, 16, 32]  # cases; each runs on both sides
    slots = args.slots
    columns: dict[str, list[float]] = {f"local -j {slots}": [], f"local -j {2 * slots}": [],
                                       "ray, 1 node": [], "ray, 2 nodes": []}
    with tempfile.TemporaryDirectory(prefix="aevolve-bench-ray-") as tmp:
        os.environ["AEVOLVE_RAY_DIR"] = str(Path(tmp) / "nodes")
        repos = []
        for cases in sizes:
            state, _log = make_repo(Path(tmp) / f"s{cases}", cases, sleep)
            from aevolve._git.repo import Repo

            candidate(Repo.open(state), "evolve/bench")
            repos.append(state)
        for state in repos:
            columns[f"local -j {slots}"].append(timed_gate(state, "evolve/bench", jobs=slots))
            columns[f"local -j {2 * slots}"].append(timed_gate(state, "evolve/bench", jobs=2 * slots))
        for nodes in (1, 2):
            cluster = start_cluster(nodes, slots)
            try:
                for state in repos:
                    timed_gate(state, "evolve/bench", executor="ray", ray_address=cluster.address)  # node copies
                    columns[f"ray, {nodes} node" + ("s" if nodes > 1 else "")].append(
                        timed_gate(state, "evolve/bench", executor="ray", ray_address=cluster.address))
            finally:
                if ray.is_initialized():
                    ray.shutdown()
                cluster.shutdown()
    runs = [2 * n for n in sizes]
    print(f"\ngate wall time, a runner sleeping {sleep} s, every run uncached ({slots} slots per Ray node)\n")
    print(f"{'runs':>6} " + " ".join(f"{name:>14}" for name in columns) + f" {'2 nodes / 1':>12}")
    for i, n in enumerate(runs):
        row = [columns[name][i] for name in columns]
        print(f"{n:>6} " + " ".join(f"{t:>13.2f}s" for t in row) + f" {row[3] / row[2]:>11.2f}x")
    print(f"\nideal: runs x {sleep} s / slots; local and Ray share this machine's {os.cpu_count()} cores")
    print_scaling("ray, 2 nodes vs local -j 2N, by runs", "runs", runs, columns["ray, 2 nodes"],
                  f"local -j {2 * slots}", columns[f"local -j {2 * slots}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
