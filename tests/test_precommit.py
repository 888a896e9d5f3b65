"""The hooks of .pre-commit-hooks.yaml, run by the real pre-commit (`pre-commit try-repo`).

pre-commit builds a `language: python` hook's environment by `pip install`ing the
hook repository into a new virtualenv. Offline, and fast, that works when the
virtualenv sees the installed packages (VIRTUALENV_SYSTEM_SITE_PACKAGES: the
dependencies are already there) and pip neither fetches an index (PIP_NO_INDEX)
nor a build backend (PIP_NO_BUILD_ISOLATION=0 builds with the installed
hatchling). The hook repository is a snapshot of this working tree, committed
once, so both runs below share one environment.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import git, isolated_git_env, make_state_repo, write

PROJECT = Path(__file__).resolve().parents[1]
PRE_COMMIT = shutil.which("pre-commit")

pytestmark = [
    pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(importlib.util.find_spec("hatchling") is None,
                       reason="hatchling (the build backend) is needed to build the hook offline"),
]

BROKEN_SKILL = "---\nname: other-name\n---\nNo description, and the name is not the folder's.\n"
GOOD_SKILL = "---\nname: store-hours\ndescription: When the store is open.\n---\n\nOpen 9 to 5.\n"


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory):
    """(a git repository holding this project as it is now, its commit, pre-commit's home)."""
    with isolated_git_env(tmp_path_factory):
        root = tmp_path_factory.mktemp("hook-repo")
        for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
            shutil.copy2(PROJECT / name, root / name)
        for folder in ("aevolve", "schemas", "hooks"):  # what pyproject.toml builds the wheel from
            shutil.copytree(PROJECT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "snapshot")
        yield root, git(root, "rev-parse", "HEAD"), tmp_path_factory.mktemp("pre-commit-home")


def try_repo(hook_repo, state: Path, hook: str = "aevolve-validate") -> subprocess.CompletedProcess:
    root, rev, home = hook_repo
    scratch = state.parent / "scratch"  # try-repo builds its environment in a temporary folder: keep it here
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "TMPDIR": str(scratch), "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1",
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run([PRE_COMMIT, "try-repo", str(root), hook, "--ref", rev, "--color", "never"],
                          cwd=state, env=env, capture_output=True, text=True, timeout=300)


def test_pre_commit_passes_a_clean_staged_change(hook_repo, tmp_path):
    state = make_state_repo(tmp_path / "state")
    write(state, {"skills/store-hours/SKILL.md": GOOD_SKILL})
    git(state, "add", "-A")
    done = try_repo(hook_repo, state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "aevolve validate (staged agent state)" in done.stdout and "Passed" in done.stdout


def test_pre_commit_fails_a_broken_staged_skill_and_names_it(hook_repo, tmp_path):
    state = make_state_repo(tmp_path / "state")
    write(state, {"skills/store-hours/SKILL.md": BROKEN_SKILL})
    git(state, "add", "-A")
    done = try_repo(hook_repo, state)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed" in done.stdout
    assert "skills/store-hours/SKILL.md" in done.stdout


def test_the_hooks_file_names_the_hooks_the_docs_promise():
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"aevolve-validate", "aevolve-rationale"}
    assert all(h["language"] == "python" for h in hooks.values())
