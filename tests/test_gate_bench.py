"""The gate benchmark runs and prints its table (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gate.py"


def test_bench_gate_small_prints_a_table():
    proc = subprocess.run([sys.executable, str(BENCH), "--small"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["measure", "baseline", "aevolve"]
    assert any(line.startswith("overhead per case") for line in lines)
    assert sum("sleep, jobs=" in line for line in lines) == 2
    regate = next(line for line in lines if line.startswith("re-gate unchanged candidate"))
    assert "0 runner starts" in regate
