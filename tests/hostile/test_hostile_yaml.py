"""Hostile YAML through the commands that read it, each in a real process with 1 GB of
address space and a minute: a billion laughs and 100,000 levels of nesting are refused
or shown with file:line, never expanded, never a crash.

Before: `diff` took 55 s and 5.5 GB, `review` died with MemoryError, the gate ran
past 120 s at 5.3 GB, and libyaml's recursive composer crashed the interpreter.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest
from test_hostile_state import bomb_line, laughs

from gate_support import GateRepo, cases_yaml

MEMORY = 1 << 30  # the bombs took 5.5 GB; an honest run of these commands takes a fraction of this
BOMB_SKILL = "---\nname: x\ndescription: d\n" + laughs() + "---\nbody\n"
BOMB_REGISTRY = "tools: []\n" + laughs()
DEEP = "x: " + "[" * 100_000 + "]" * 100_000 + "\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def bounded(cwd, *args: str) -> subprocess.CompletedProcess:
    """`aevolve ARGS` in its own process, with a memory limit and a timeout."""
    return subprocess.run([sys.executable, "-m", "aevolve", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, preexec_fn=_limit_memory)


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}"
    for sign in ("Traceback", "MemoryError", "RecursionError"):
        assert sign not in proc.stderr, proc.stderr


@pytest.fixture
def hostile(tmp_path):
    """A gated state with evolver branches carrying a billion laughs."""
    g = GateRepo(tmp_path, {"a": "right"}, cases_yaml("a"))
    g.branch("evolve/skill", {"skills/x/SKILL.md": BOMB_SKILL})
    g.branch("evolve/registry", {"tools/registry.yaml": BOMB_REGISTRY})
    return g


def test_diff_shows_a_billion_laughs_skill_with_file_and_line(hostile):
    proc = bounded(hostile.path, "diff", "main", "evolve/skill")
    assert_clean(proc)
    assert proc.returncode == 0
    assert f"skills/x/SKILL.md:{bomb_line(BOMB_SKILL)}: YAML alias expansion exceeds 100,000 nodes" in proc.stdout


def test_diff_notes_a_billion_laughs_registry_beside_its_text(hostile):
    proc = bounded(hostile.path, "diff", "main", "evolve/registry", "--json")
    assert_clean(proc)
    assert proc.returncode == 0
    assert f"tools/registry.yaml:{bomb_line(BOMB_REGISTRY)}: YAML alias expansion exceeds" in proc.stdout


# the two candidate branches that carry a billion laughs, and where each bomb is
BOMB_BRANCHES = [
    ("evolve/skill", f"skills/x/SKILL.md:{bomb_line(BOMB_SKILL)}"),
    ("evolve/registry", f"tools/registry.yaml:{bomb_line(BOMB_REGISTRY)}"),
]


@pytest.mark.parametrize(("branch", "where"), BOMB_BRANCHES)
def test_review_names_the_billion_laughs_file_and_line(hostile, branch, where):
    proc = bounded(hostile.path, "review", branch)
    assert_clean(proc)
    assert proc.returncode == 0
    assert f"{where}: YAML alias expansion exceeds" in proc.stdout


@pytest.mark.parametrize(("branch", "where"), BOMB_BRANCHES)
def test_gate_rejects_a_billion_laughs_candidate_before_running_it(hostile, branch, where):
    proc = bounded(hostile.path, "gate", branch)
    assert_clean(proc)
    assert proc.returncode == 100, proc.stdout + proc.stderr
    assert f"candidate state does not validate: {where}: YAML alias expansion exceeds" in proc.stdout
    assert hostile.runs() == 0


@pytest.mark.parametrize("path", ["evals/suite.yaml", "aevolve.yaml"])
def test_gate_refuses_a_billion_laughs_exam_on_main_with_file_and_line(hostile, path):
    if path == "aevolve.yaml":
        text = (hostile.path / path).read_text() + laughs()
    else:  # the list of cases under a key, so the laughs can sit beside it
        text = "cases:\n" + textwrap.indent(cases_yaml("a"), "  ") + laughs()
    main = str(hostile.repo.resolve("main").id)
    hostile.repo.update_ref("refs/heads/main", hostile.branch("bombed", {path: text}, evolver=False), main)
    hostile.branch("evolve/next", {"prompts/x.md": "x\n"})
    proc = bounded(hostile.path, "gate", "evolve/next")
    assert_clean(proc)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"{path}:{bomb_line(text)}: YAML alias expansion exceeds" in proc.stderr


@pytest.mark.parametrize("args", [["validate", "evolve/deep"], ["diff", "main", "evolve/deep"],
                                  ["review", "evolve/deep"], ["gate", "evolve/deep"]])
def test_yaml_nested_100k_deep_is_a_located_error_not_a_crash(hostile, args):
    hostile.branch("evolve/deep", {"tools/registry.yaml": "tools: []\n" + DEEP})
    proc = bounded(hostile.path, *args)
    assert_clean(proc)
    assert proc.returncode in (0, 1, 100), proc.stdout + proc.stderr
    assert "tools/registry.yaml:2: YAML nested deeper than 200 levels" in proc.stdout
