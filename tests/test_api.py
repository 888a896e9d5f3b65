"""The Python API mirrors the command line: `aevolve.<name>(...)`."""

from __future__ import annotations

import importlib

import aevolve

from conftest import SAMPLE_STATE, make_state_repo


def test_every_public_name_resolves_and_dir_lists_them():
    assert all(getattr(aevolve, name) is not None for name in aevolve.__all__)
    assert set(aevolve.__all__) <= set(dir(aevolve))


def test_public_functions_stay_functions_whatever_was_imported_first():
    for module in ("_propose.run", "_gate.run", "_state.validate", "_review.diff", "_review.review"):
        importlib.import_module(f"aevolve.{module}")
    for name in ("propose", "gate", "validate", "diff", "review", "init", "status", "promote"):
        assert callable(getattr(aevolve, name)) and not isinstance(getattr(aevolve, name), type(aevolve)), name


def test_every_exception_aevolve_raises_is_public_with_an_exit_code():
    public = {getattr(aevolve, n) for n in aevolve.__all__}
    errors = {e for e in public if isinstance(e, type) and issubclass(e, aevolve.AevolveError)}
    assert len(errors) == 23
    assert all(isinstance(e.exit_code, int) for e in errors)
    import aevolve._errors as module
    defined = {v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Exception)}
    assert defined <= public  # none is left out of the public surface


def test_python_api_runs_the_loop_like_the_command_line(tmp_path):
    files = dict(SAMPLE_STATE)
    files["evals/basic.yaml"] = "- id: always\n  input: {}\n  assert: [{type: contains, value: ok}]\n"
    files["aevolve.yaml"] = "gate:\n  runner: [\"python\", \"-c\", \"print('ok')\"]\n"
    root = make_state_repo(tmp_path / "state", files)
    repo = aevolve.Repo.open(root)

    assert aevolve.validate(repo, "main").ok
    assert aevolve.validate(repo).ok  # the working tree
    result = aevolve.propose(
        repo, evolver="patch",
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
