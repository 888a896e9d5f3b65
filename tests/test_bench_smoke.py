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


SOAK = BENCH.with_name("bench_soak.py")


def test_bench_soak_small_runs_promoting_cycles_and_prints_time_and_sizes(tmp_path):
    proc = subprocess.run([sys.executable, str(SOAK), "--small", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "5 promoted, 0 rejected" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("measure"))
    assert lines[header].split()[-1] == "end/start"
    rows = [line.split("  ")[0].strip() for line in lines[header + 2:]]
    assert rows[0].startswith("seconds per cycle") and rows[1:] == [
        ".git size", ".git/aevolve size", "loose objects", "materialized trees"]
    assert all(line.rstrip().endswith("x") for line in lines[header + 2:])
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
