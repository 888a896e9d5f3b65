"""`aevolve completion`: the script, run by a real bash, completes commands, options,
branches and proposal ids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, make_state_repo, write

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

# `aevolve` on PATH for the script, with the command registered even before
# aevolve/cli/__init__.py lists it
LAUNCHER = """#!{python}
import sys
sys.path.insert(0, {root!r})
from aevolve.cli import COMMANDS, main
COMMANDS.setdefault("completion", "aevolve.cli.completion_cmds:completion_cmd")
main()
"""


@pytest.fixture
def shell_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "aevolve"
    launcher.write_text(LAUNCHER.format(python=sys.executable, root=str(Path(__file__).resolve().parents[1])))
    launcher.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    script = subprocess.run(["aevolve", "completion", "bash"], env=env, capture_output=True, text=True,
                            timeout=60, check=True).stdout
    (tmp_path / "aevolve.bash").write_text(script)
    return env, tmp_path / "aevolve.bash"


def complete(shell_env, cwd, *words: str) -> list[str]:
    """COMPREPLY after bash completes the last of `words` (the word being typed)."""
    env, script = shell_env
    line = " ".join(["aevolve", *words])
    program = (f"source {script}\nCOMP_WORDS=(aevolve {' '.join(words)})\nCOMP_CWORD={len(words)}\n"
               f"COMP_LINE={line!r}\nCOMP_POINT=${{#COMP_LINE}}\n_aevolve_completion aevolve\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    if words and words[-1] == "":
        program = program.replace(f"COMP_WORDS=(aevolve {' '.join(words)})",
                                  f"COMP_WORDS=(aevolve {' '.join(words[:-1])} '')")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.fixture
def repo_with_proposal(tmp_path):
    root = make_state_repo(tmp_path / "s")
    git(root, "checkout", "-q", "-b", "evolve/refund-window")
    write(root, {"memory/notes.md": "x\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "memory: quote the window\n\nAevolve-Proposal: p-0a1b2c3d\n")
    git(root, "checkout", "-q", "main")
    git(root, "branch", "feature/unrelated")
    return root


def test_the_script_is_click_s_with_the_serving_command(shell_env):
    text = shell_env[1].read_text()
    assert "_aevolve_completion()" in text and "completion --serve)" in text
    assert "_AEVOLVE_SERVE=bash_complete" in text


def test_commands_complete(shell_env, tmp_path):
    assert complete(shell_env, tmp_path, "pro") == ["promote", "propose"]


def test_options_complete(shell_env, tmp_path):
    found = complete(shell_env, tmp_path, "observe", "--sk")
    assert found == ["--skip-invalid"]


def test_branch_arguments_complete_to_main_evolve_branches_and_proposal_ids(shell_env, repo_with_proposal):
    found = complete(shell_env, repo_with_proposal, "promote", "")
    assert found == ["main", "evolve/refund-window", "p-0a1b2c3d"]  # not feature/unrelated
    assert complete(shell_env, repo_with_proposal, "gate", "ev") == ["evolve/refund-window"]
    assert complete(shell_env, repo_with_proposal, "approve", "p-") == ["p-0a1b2c3d"]


def test_a_base_option_completes_to_branches(shell_env, repo_with_proposal):
    assert complete(shell_env, repo_with_proposal, "gate", "--base", "m") == ["main"]


def test_the_repository_of_dash_c_is_the_one_read(shell_env, repo_with_proposal, tmp_path):
    assert complete(shell_env, tmp_path, "-C", str(repo_with_proposal), "promote", "ev") == ["evolve/refund-window"]


def test_outside_a_repository_branches_complete_to_nothing(shell_env, tmp_path):
    assert complete(shell_env, tmp_path, "promote", "") == []


@pytest.mark.parametrize("shell, marker", [("zsh", "#compdef aevolve"), ("fish", "complete --no-files")])
def test_zsh_and_fish_scripts_ask_the_serving_command(shell_env, shell, marker):
    out = subprocess.run(["aevolve", "completion", shell], env=shell_env[0], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert marker in out and "completion --serve)" in out and f"_AEVOLVE_SERVE={shell}_complete" in out


def test_serve_outside_the_script_is_a_usage_error(shell_env, tmp_path):
    done = subprocess.run(["aevolve", "completion", "--serve"], env=shell_env[0], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "_AEVOLVE_SERVE" in done.stderr
