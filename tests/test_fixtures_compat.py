"""Every real A-Evolve workspace is adopted unchanged and validates without errors.

The workspaces are third-party data kept outside the project (conftest.SHARED_FIXTURES);
on a machine without them these tests are skipped, saying so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import SHARED_FIXTURES, git, run_cli

WORKSPACES = sorted(p.name for p in SHARED_FIXTURES.iterdir() if p.is_dir()) if SHARED_FIXTURES.is_dir() else []

pytestmark = pytest.mark.skipif(
    not WORKSPACES, reason=f"A-Evolve fixture workspaces not found at {SHARED_FIXTURES} (../shared is absent)"
)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.relative_to(root).parts}


@pytest.fixture(params=WORKSPACES or ["none"])
def workspace(request, tmp_path) -> Path:
    target = tmp_path / request.param
    shutil.copytree(SHARED_FIXTURES / request.param, target)
    return target


def test_workspace_is_adopted_unchanged_and_validates(workspace):
    original = file_bytes(workspace)

    init = run_cli("init", workspace)
    assert init.returncode == 0, init.stderr

    after = file_bytes(workspace)
    assert {p: after[p] for p in original} == original  # no file rewritten
    assert set(original) <= set(git(workspace, "ls-tree", "-r", "--name-only", "main").splitlines())
    proc = run_cli("validate", "--json", cwd=workspace)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["errors"] == [], report["errors"]
    assert run_cli("validate", "main", cwd=workspace).returncode == 0


def test_second_init_changes_nothing(workspace):
    run_cli("init", workspace)
    head, files, refs = git(workspace, "rev-parse", "HEAD"), file_bytes(workspace), git(workspace, "for-each-ref")
    proc = run_cli("init", workspace, "--json")
    assert json.loads(proc.stdout)["commit"] is None
    assert git(workspace, "rev-parse", "HEAD") == head
    assert git(workspace, "for-each-ref") == refs
    assert file_bytes(workspace) == files
    assert git(workspace, "status", "--porcelain") == ""
