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
