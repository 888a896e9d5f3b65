"""The state benchmark runs end to end (`--small`) and prints its table; no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_state.py"


def test_bench_state_small_prints_a_table(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--small", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("measurement"))
    rows = [line.split()[0] for line in lines[header + 2:header + 8]]
    assert rows == ["validate,", "validate,", "(command", "one-file", "start-up", "(interpreter"]
    assert "ratio" in lines[header] and "x" in lines[header + 2]
    assert list(tmp_path.iterdir()) == []  # the synthetic repository is removed afterwards


def scaling_tables(stdout: str) -> list[tuple[str, float, float]]:
    """(title, our exponent, the baseline's) of each scaling table a benchmark printed."""
    lines = stdout.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.split()[:1] == ["exponent"]:
            title = next(lines[j] for j in range(i - 1, -1, -1) if lines[j] and not lines[j][0].isspace())
            out.append((title, float(line.split()[1]), float(line.split()[2])))
    return out


def test_bench_state_small_prints_scaling_tables_by_number_of_skills(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--small", "--workdir", str(tmp_path), "--scaling", "20", "40",
                           "80"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert [t for t, _, _ in scaling_tables(proc.stdout)] == [
        "validate, cold cache, by number of skills", "validate, one skill changed (warm cache), by number of skills"]
    assert "target <= 1.1" in proc.stdout
    assert list(tmp_path.iterdir()) == []


LOG = BENCH.with_name("bench_log.py")


def test_bench_log_small_prints_a_scaling_table_beside_git_log():
    proc = subprocess.run([sys.executable, str(LOG), "--small"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    titles = [title for title, _, _ in scaling_tables(proc.stdout)]
    assert [t.split(" (")[1].split(",")[0] for t in titles] == ["wall", "CPU"]
    assert all(t.startswith("aevolve log --json over N evolution commits") for t in titles)
    rows = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert rows == ["100", "200", "400"] * 2


SOAK = BENCH.with_name("bench_soak.py")


def test_bench_soak_small_runs_promoting_cycles_and_prints_time_and_sizes(tmp_path):
    proc = subprocess.run([sys.executable, str(SOAK), "--small", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "5 promoted, 0 rejected" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("measure"))
    assert lines[header].split()[-1] == "end/start"
    rows = [line.strip().split("  ")[0] for line in lines[header + 2:]]
    assert rows[0].startswith("seconds per cycle") and rows[1:] == [
        "CPU seconds per cycle", ".git size", ".git without aevolve/", "same history, git gc'd mirror",
        "ours / mirror", ".git/aevolve size", "state (git archive main)",
        "ours / state", "trees / (trees x state)", "cache.sqlite", "cache bytes per cached run", "loose objects",
        "packs", "materialized trees", "cached runs"]
    assert all(line.rstrip().endswith(("x", "-")) for line in lines[header + 2:])  # "-": none at the start
    for ratio_row in (lines[header + 7], lines[header + 10]):  # ours / mirror, ours / state: a ratio per checkpoint
        assert all(float(cell.removesuffix("x")) > 0 for cell in ratio_row.split()[-4:])
    assert list(tmp_path.iterdir()) == []  # the soaked repository is removed afterwards


REPORT = BENCH.with_name("bench_report.py")


def test_bench_report_small_times_report_beside_git_log(tmp_path):
    proc = subprocess.run([sys.executable, str(REPORT), "--small", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("promotions"))
    assert lines[header + 2].split()[:2] == ["100", "33"] and lines[header + 2].count("x") == 2
    assert list(tmp_path.iterdir()) == []  # the synthetic histories are removed afterwards


MEMORY = BENCH.with_name("bench_memory.py")


def test_bench_memory_small_prints_sharded_and_unsharded_scaling_beside_git(tmp_path):
    proc = subprocess.run([sys.executable, str(MEMORY), "--small", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    titles = [title for title, _, _ in scaling_tables(proc.stdout)]
    assert [t.split(", by")[0].split(", ")[-1] for t in titles] == ["sharded at 65,536 bytes",
                                                                    "unsharded (memory.shard_bytes: 0)"]
    rows = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()[:1].isdigit() and "x" in line]
    assert rows == ["1,000", "10,000", "100,000"] * 2
    assert "built sharded 100,000 records (158 files)" in proc.stdout  # the sharded family really is sharded
    assert list(tmp_path.iterdir()) == []
