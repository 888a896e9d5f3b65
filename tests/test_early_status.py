"""`git status` started by the entry point before the command is imported (`_git/early.py`)."""

from __future__ import annotations

import json

from aevolve._git import early
from aevolve._git.repo import Repo

from conftest import SAMPLE_STATE, make_state_repo, run_cli_process


def test_a_real_validate_sees_edits_additions_and_deletions_made_just_before_it(tmp_path):
    root = make_state_repo(tmp_path / "state", SAMPLE_STATE)
    (root / "prompts/system.md").unlink()
    (root / "skills/new-skill").mkdir()
    (root / "skills/new-skill/SKILL.md").write_text("no front matter\n")
    memory = next(p for p in SAMPLE_STATE if p.startswith("memory/"))
    (root / memory).write_text('{"id": "x"}\nnot json\n')
    proc = run_cli_process("-C", root, "validate", "--json")
    report = json.loads(proc.stdout)
    found = {(p["path"], p["line"]) for p in report["errors"]}
    assert proc.returncode == 1
    assert (memory, 2) in found and any(path == "skills/new-skill/SKILL.md" for path, _ in found)
    assert "prompts/system.md" not in {p["path"] for p in report["errors"] + report["warnings"]}


def test_only_a_validate_of_the_work_tree_starts_status_early(tmp_path):
    root = make_state_repo(tmp_path / "state", SAMPLE_STATE)
    for argv in (["-C", str(root), "validate", "HEAD"], ["-C", str(root), "validate", "--staged"],
                 ["-C", str(root), "status"]):
        early.prefetch(argv)
        assert early.take(root) is None
    early.prefetch(["-C", str(root), "validate", "--json"])
    assert early.take(root) is not None
    early.discard()


def test_the_repository_opened_from_the_same_folder_takes_the_early_status_once(tmp_path):
    root = make_state_repo(tmp_path / "state", SAMPLE_STATE)
    early.prefetch(["-C", str(root), "validate"])
    started = early._started[str(root.resolve())]
    repo = Repo.open(root)
    assert repo.start_status() is started
    second = repo.start_status()
    assert second is not started  # taken once: a second status is a new one
    second.communicate()
    started.communicate()


def test_an_early_status_nobody_takes_is_stopped(tmp_path):
    root = make_state_repo(tmp_path / "state", SAMPLE_STATE)
    early.prefetch(["-C", str(root), "validate"])
    proc = early._started[str(root.resolve())]
    early.discard()
    assert proc.poll() is not None and early.take(root) is None


def test_validate_of_a_folder_that_is_no_repository_still_says_so(tmp_path):
    (tmp_path / "plain").mkdir()
    proc = run_cli_process("-C", tmp_path / "plain", "validate")
    assert proc.returncode != 0
    assert "not inside a git repository" in proc.stderr
