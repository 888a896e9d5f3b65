"""`aevolve observe` on input without end: it stops at observe.max_bytes with exit 3,
in bounded memory, and ingests nothing. Before: `observe /dev/zero` read 3.7 GB and
died with MemoryError."""

from __future__ import annotations

import resource
import subprocess
import sys

from aevolve._git.repo import OBSERVATIONS_REF

from conftest import git

MEMORY = 1 << 30  # the default observe.max_bytes is 64 MiB; the old reader needed 3.7 GB and more


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def test_observe_dev_zero_stops_at_max_bytes_with_exit_3(state_repo):
    proc = subprocess.run([sys.executable, "-m", "aevolve", "observe", "/dev/zero"], cwd=state_repo,
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    assert proc.returncode == 3
    assert "/dev/zero: the input is larger than 67,108,864 bytes (observe.max_bytes in aevolve.yaml)" in proc.stderr
    assert git(state_repo, "for-each-ref", OBSERVATIONS_REF) == ""


def test_observe_of_an_endless_stdin_stops_at_max_bytes(state_repo):
    with open("/dev/zero", "rb") as zeros:
        proc = subprocess.run([sys.executable, "-m", "aevolve", "observe", "-"], cwd=state_repo, stdin=zeros,
                              capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
    assert proc.returncode == 3 and "<stdin>: the input is larger than" in proc.stderr, proc.stderr
