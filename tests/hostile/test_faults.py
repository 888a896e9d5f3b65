"""Fault injection: kill propose, observe, rollback, `gate --promote` and `promote` at
each internal stage (aevolve/_faults.py), the process alone or its whole group; the
next command heals or says exactly what to do, and the repository is as it was or
consistently advanced: fsck clean, main at a gated commit, no half-made branch, notes
readable, the checkout and index equal to main, no observation lost or half-added.

    AEVOLVE_FAULTS_LONG=300 pytest -n 4 tests/hostile/test_faults.py

adds 300 kills of a random command after a random delay (not only at the pause
points); AEVOLVE_FAULTS_SEED fixes the draw (each case's id names its seed).
"""

from __future__ import annotations

import os
import random
import time

import pytest
from faults_support import (
    COMMANDS,
    build_template,
    check_healthy,
    copy_template,
    git_lock_files,
    kill_after,
    kill_at,
    rerun,
    snapshot,
)

from conftest import isolated_git_env, run_cli

CASES = [(name, stage) for name, command in COMMANDS.items() for stage in command.stages]
LONG = int(os.environ.get("AEVOLVE_FAULTS_LONG") or 0)


def _seed() -> int:
    """AEVOLVE_FAULTS_SEED, else one per run that every xdist worker agrees on (they
    must collect the same test ids)."""
    if os.environ.get("AEVOLVE_FAULTS_SEED"):
        return int(os.environ["AEVOLVE_FAULTS_SEED"])
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # a uuid's hex, the same in every worker
    return int(run[:7], 16) if run else int(time.time())


SEED = _seed()
MAX_DELAY = 1.5  # seconds: each command here takes about 0.5-1 s in a fresh process


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    with isolated_git_env(tmp_path_factory):
        return build_template(tmp_path_factory.mktemp("faults-template") / "state")


@pytest.fixture
def repo(template, tmp_path):
    return copy_template(template, tmp_path / "state")


def recover_and_check(repo, command, args, before) -> None:
    """The next command, then the same command again, then every invariant."""
    status = run_cli("status", cwd=repo.root)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    check_healthy(repo, before)
    again = rerun(repo, args)
    assert again.returncode == 0, (again.returncode, again.stderr)
    assert "Traceback" not in again.stderr, again.stderr
    command.finished(repo, before)
    check_healthy(repo, before)
    assert git_lock_files(repo.root) == []


@pytest.mark.parametrize("group", [False, True], ids=["process", "group"])
@pytest.mark.parametrize("name, stage", CASES, ids=[f"{n.replace(' --', '-')}@{s}" for n, s in CASES])
def test_a_command_killed_at_a_stage_leaves_a_repository_the_next_command_heals(repo, tmp_path, name, stage, group):
    command = COMMANDS[name]
    args = command.argv(repo, tmp_path)
    before = snapshot(repo.root)
    kill_at(repo.root, args, stage, group)
    recover_and_check(repo, command, args, before)


@pytest.mark.parametrize("round_", range(LONG), ids=[f"seed{SEED + k}" for k in range(LONG)])
def test_a_command_killed_at_a_random_moment_leaves_a_repository_the_next_command_heals(repo, tmp_path, round_):
    draw = random.Random(SEED + round_)
    command = COMMANDS[draw.choice(sorted(COMMANDS))]
    group, delay = draw.random() < 0.5, draw.uniform(0, MAX_DELAY)
    args = command.argv(repo, tmp_path)
    before = snapshot(repo.root)
    kill_after(repo.root, args, delay, group)
    recover_and_check(repo, command, args, before)
