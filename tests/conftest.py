"""Shared test fixtures: real git repositories in temporary folders.

Every test that needs a repository gets a real one (real `git`, real objects);
git identity and global config are isolated from the developer's machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "a-evolve"


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path_factory, monkeypatch):
    """No global or system git config; a fixed identity; no pager, no prompts."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for var, value in {
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
        "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "PAGER": "cat",
    }.items():
        monkeypatch.setenv(var, value)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


def git(cwd, *args, check=True) -> str:
    """Run real git and return its stdout."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n") if content.startswith("\n") else content)


SAMPLE_STATE = {
    "manifest.yaml": """
        name: support-agent
        version: 0.1.0
        contract_version: "1.0"
        agent:
          type: reference
          entrypoint: agent.run
        evolvable_layers: [prompts, skills, tools, memory]
        reload_strategy: hot
        """,
    "prompts/system.md": "You are a helpful support agent.\nAnswer briefly.\n",
    "skills/refund-policy/SKILL.md": """
        ---
        name: refund-policy
        description: How to answer questions about refunds and returns.
        ---

        # Refund policy
        Returns are accepted within 30 days with a receipt.
        """,
    "tools/registry.yaml": """
        tools:
          - name: search
            description: Search the knowledge base.
            file: search.py
        """,
    "memory/episodic.jsonl": '{"id": "m-1", "content": "Shoes can be returned within 30 days."}\n',
    "evals/basic.yaml": """
        - id: refund-window
          input: {question: "Can I return shoes after 40 days?"}
          assert:
            - {type: contains, value: "30 days"}
        """,
}


def make_state_repo(root: Path, files: dict | None = None) -> Path:
    """A state repository at `root` with SAMPLE_STATE (or `files`) committed on main."""
    from aevolve._state.init import init_repo

    root.mkdir(parents=True, exist_ok=True)
    write(root, SAMPLE_STATE if files is None else files)
    init_repo(root)
    return root


@pytest.fixture
def state_repo(tmp_path) -> Path:
    """A fresh state repository (non-bare, main checked out) with a sample agent."""
    return make_state_repo(tmp_path / "state")


def run_cli(*args, cwd=None, input=None, env=None) -> subprocess.CompletedProcess:
    """Run the real `aevolve` command in a subprocess (exit codes, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "aevolve", *map(str, args)],
        cwd=cwd, input=input, capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cli():
    return run_cli


def verdict_for(repo, commit: str, decision: str = "accept", **extra) -> dict:
    """A gate report on the transition parent -> commit, as the gate would write it."""
    from aevolve._trust.exam import exam_digest
    from aevolve._state.model import State

    parent = str(repo.resolve(commit).parents[0].id)
    state = State.from_tree(repo, parent)
    digest = exam_digest({p: f.oid for p, f in state.files.items()},
                         lambda p: state.read(p) if p in state.files else None)
    return {"version": 1, "candidate": str(commit), "decision": decision, "reasons": [f"test: {decision}"],
            "baseline": parent, "candidate_tree": str(repo.resolve(commit).tree.id), "exam_digest": digest,
            **extra}


def admissible(repo, commit: str) -> bool:
    """Does `commit` carry a verdict that would admit it into main (aevolve.verdicts)?"""
    from aevolve._trust.verdicts import GitReader, check_commit, local_trust

    return check_commit(GitReader(repo), str(commit), local_trust(repo)).valid
