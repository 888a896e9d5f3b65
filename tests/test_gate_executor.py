"""Choosing where case runs happen (gate.executor, --executor): the mistakes, without a Ray cluster."""

from __future__ import annotations

import sys

import pytest

from conftest import git, run_cli
from gate_support import GateRepo, cases_yaml


def sample(tmp_path, extra: str = "") -> GateRepo:
    g = GateRepo(tmp_path, {"a": "right"}, cases_yaml("a"))
    if extra:
        (g.path / "aevolve.yaml").write_text((g.path / "aevolve.yaml").read_text() + extra)
        git(g.path, "commit", "-qam", "executor settings")
    g.answers_branch("evolve/x", a="right", b="new")
    return g


def test_without_ray_installed_the_ray_executor_says_how_to_install_it(tmp_path, monkeypatch):
    g = sample(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = run_cli("-C", g.path, "gate", "evolve/x", "--executor", "ray")
    assert result.returncode == 1
    assert "Ray is not installed here: pip install 'aevolve[ray]'" in result.stderr
    assert g.runs() == 0


def test_an_unknown_gate_executor_is_an_error_naming_the_setting(tmp_path):
    g = sample(tmp_path, "  executor: spark\n")
    result = run_cli("-C", g.path, "gate", "evolve/x")
    assert result.returncode == 1
    assert "gate.executor must be one of local, ray, not 'spark'" in result.stderr
    assert g.runs() == 0


@pytest.mark.parametrize("value", ["0", "-1", "many", "true"])
def test_a_ray_num_cpus_that_is_not_a_positive_number_is_an_error(tmp_path, value):
    g = sample(tmp_path, f"  executor: ray\n  ray:\n    num_cpus: {value}\n")
    result = run_cli("-C", g.path, "gate", "evolve/x")
    assert result.returncode == 1
    assert "gate.ray.num_cpus must be a positive number" in result.stderr


def test_validate_reports_an_unknown_executor_in_aevolve_yaml(tmp_path):
    g = sample(tmp_path, "  executor: spark\n")
    result = run_cli("-C", g.path, "validate")
    assert result.returncode == 1
    assert "aevolve.yaml" in result.stdout + result.stderr and "spark" in result.stdout + result.stderr


def test_the_command_line_refuses_an_unknown_executor_as_a_usage_error(tmp_path):
    g = sample(tmp_path)
    result = run_cli("-C", g.path, "gate", "evolve/x", "--executor", "spark")
    assert result.returncode == 2
    assert "'spark' is not one of 'local', 'ray'" in result.stderr


def test_the_local_executor_on_the_command_line_overrides_ray_in_the_config(tmp_path):
    g = sample(tmp_path, "  executor: ray\n  ray:\n    address: 127.0.0.1:1\n")
    result = run_cli("-C", g.path, "gate", "evolve/x", "--executor", "local")
    assert result.returncode == 0, result.stderr
    assert g.runs() == 2


def test_a_ray_node_refuses_a_planted_symlink_in_the_shared_temp_folder(tmp_path, monkeypatch):
    import os
    import tempfile

    from aevolve._gate.ray_node import DIR_VAR, node_folder

    monkeypatch.delenv(DIR_VAR, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"aevolve-ray-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="not a folder only this user can write"):
        node_folder("n" * 40)
    assert list(elsewhere.iterdir()) == []


def test_a_ray_nodes_default_folder_is_private_to_its_user(tmp_path, monkeypatch):
    import os
    import stat
    import tempfile

    from aevolve._gate.ray_node import DIR_VAR, node_folder

    monkeypatch.delenv(DIR_VAR, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = node_folder("n" * 40)
    assert folder.parent == tmp_path / f"aevolve-ray-{os.getuid()}"
    assert stat.S_IMODE(os.stat(folder.parent).st_mode) & 0o077 == 0


@pytest.mark.parametrize("answer", [None, "ok", {"run": {}, "node": "n", "version": "0.0.1"},
                                    {"run": "x", "node": "n", "version": None}])
def test_a_ray_nodes_answer_from_another_aevolve_fails_the_gate_closed(answer):
    from aevolve._errors import GateError
    from aevolve._gate.ray_executor import _check_answer

    with pytest.raises(GateError, match="install the same version on every node"):
        _check_answer(answer)


def test_an_unreachable_ray_address_in_the_environment_is_an_error_at_once(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    g = sample(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    result = run_cli("-C", g.path, "gate", "evolve/x", "--executor", "ray")
    assert result.returncode == 1
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.stderr
