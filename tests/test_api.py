"""The Python API mirrors the command line: `aevolve.<name>(...)`."""

from __future__ import annotations

import importlib

import aevolve
from conftest import SAMPLE_STATE, make_state_repo


def test_api_names_stay_callable_after_their_modules_are_imported(tmp_path):
    for module in ("propose", "gate", "validate", "diff", "review", "init", "status"):
        importlib.import_module(f"aevolve.{module}")
        assert callable(getattr(aevolve, module)), module


def test_python_api_runs_the_loop_like_the_command_line(tmp_path):
    files = dict(SAMPLE_STATE)
    files["evals/basic.yaml"] = "- id: always\n  input: {}\n  assert: [{type: contains, value: ok}]\n"
    files["aevolve.yaml"] = "gate:\n  runner: [\"python\", \"-c\", \"print('ok')\"]\n"
    root = make_state_repo(tmp_path / "state", files)
    repo = aevolve.Repo.open(root)

    report = aevolve.validate(aevolve.State.from_tree(repo, "main"), repo)
    assert report.ok
    result = aevolve.propose(
        root, evolver="patch",
        evolver_options={"edits": [{"op": "write", "path": "prompts/system.md", "content": "Answer briefly.\n"}],
                         "title": "shorten the system prompt", "diagnosis": "answers ran long",
                         "change": "rewrites prompts/system.md", "expected_effect": "shorter answers"},
    )
    assert result.branch.startswith("evolve/")
    gated = aevolve.gate(repo, result.branch)
    assert gated.accepted
    promoted = aevolve.promote(repo, result.branch)
    assert promoted.new == result.commit
    assert "prompts" in aevolve.diff(repo, promoted.old, promoted.new).render("text")
