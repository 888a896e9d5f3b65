"""`aevolve init`: a new folder, an adopted folder, an existing repository, and idempotence."""

from __future__ import annotations

import json
from pathlib import Path

from aevolve._config import TEMPLATE
from aevolve._state.init import init_repo

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli, write


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.relative_to(root).parts}


def test_init_makes_a_new_folder_a_state_repository(tmp_path):
    target = tmp_path / "agent"
    proc = run_cli("init", target)
    assert proc.returncode == 0, proc.stderr
    assert git(target, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert (target / "aevolve.yaml").read_text() == TEMPLATE
    assert git(target, "ls-tree", "-r", "--name-only", "main").splitlines() == [
        ".gitattributes", "aevolve.yaml", "evals/.gitkeep", "manifest.yaml", "memory/.gitkeep",
        "prompts/.gitkeep", "skills/.gitkeep", "tools/.gitkeep",
    ]
    assert git(target, "status", "--porcelain") == ""
    assert run_cli("validate", cwd=target).returncode == 0


def test_init_adopts_a_plain_folder_without_rewriting_any_file(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    before = file_bytes(root)

    result = init_repo(root)

    after = file_bytes(root)
    assert {p: after[p] for p in before} == before
    assert set(after) - set(before) == {"aevolve.yaml", ".gitattributes"}
    assert "manifest.yaml" not in result.added
    committed = git(root, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert set(before) <= set(committed)
    assert git(root, "status", "--porcelain") == ""


def test_init_on_a_repository_with_history_on_main_adds_a_commit(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "existing history")
    first = git(root, "rev-parse", "main")

    result = init_repo(root)

    assert not result.created_repo
    assert git(root, "rev-parse", "main~1") == first
    assert git(root, "log", "-1", "--format=%s", "main") == "aevolve: init"
    assert git(root, "status", "--porcelain") == ""  # the index follows the checked-out main


def test_init_turns_an_unborn_master_into_main(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    git(root.parent, "init", "-q", "-b", "master", str(root))

    init_repo(root)

    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(root, "branch", "--list", "master") == ""
    assert git(root, "status", "--porcelain") == ""


def test_init_refuses_history_on_master_and_changes_nothing(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    git(root.parent, "init", "-q", "-b", "master", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "on master")
    refs, files = git(root, "for-each-ref"), file_bytes(root)

    proc = run_cli("init", root)

    assert proc.returncode == 2
    assert "git branch -m master main" in proc.stderr
    assert git(root, "for-each-ref") == refs and file_bytes(root) == files
    assert git(root, "status", "--porcelain") == ""


def test_init_refuses_a_checkout_of_another_branch_than_main(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "existing")
    git(root, "switch", "-q", "-c", "feature")
    refs = git(root, "for-each-ref")

    proc = run_cli("init", root)

    assert proc.returncode == 2 and "git switch main" in proc.stderr
    assert git(root, "for-each-ref") == refs
    assert git(root, "status", "--porcelain") == ""


def test_init_in_a_clone_of_a_state_repository_only_configures(tmp_path):
    source = tmp_path / "source"
    write(source, {k: v for k, v in SAMPLE_STATE.items() if not k.startswith("skills/")})
    init_repo(source)
    git(source, "rm", "-q", "skills/.gitkeep")  # no skills: a clone gets no skills/ folder at all
    git(source, "commit", "-qm", "no skills yet")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(source), str(clone))
    main, files = git(clone, "rev-parse", "main"), file_bytes(clone)

    result = init_repo(clone)

    assert result.existing and result.commit is None and result.added == []
    assert git(clone, "rev-parse", "main") == main  # no ungated commit for pre-push to refuse
    assert file_bytes(clone) == files and git(clone, "status", "--porcelain") == ""
    assert git(clone, "config", "merge.aevolve-jsonl.driver").endswith("merge-jsonl %O %A %B %P")
    assert "remote.origin.fetch = +refs/notes/aevolve*:refs/notes/remotes/origin/aevolve*" in result.configured


def test_running_init_twice_changes_nothing(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    init_repo(root)
    head, files = git(root, "rev-parse", "HEAD"), file_bytes(root)
    refs = git(root, "for-each-ref")

    second = init_repo(root)

    assert not second.changed
    assert second.added == [] and second.commit is None
    assert git(root, "rev-parse", "HEAD") == head
    assert git(root, "for-each-ref") == refs
    assert file_bytes(root) == files
    proc = run_cli("init", root)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


def test_init_json_reports_what_it_did(tmp_path):
    root = tmp_path / "agent"
    proc = run_cli("init", root, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["created_repo"] is True
    assert doc["commit"] == git(root, "rev-parse", "main")
    assert "aevolve.yaml" in doc["added"]
    again = json.loads(run_cli("init", root, "--json").stdout)
    assert again == {"path": str(root.resolve()), "created_repo": False, "added": [], "commit": None}


def test_init_defaults_to_the_current_folder(tmp_path):
    proc = run_cli("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert git(tmp_path, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_init_keeps_the_users_staged_work(tmp_path):
    root = tmp_path / "agent"
    write(root, SAMPLE_STATE)
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "existing")
    (root / "prompts" / "system.md").write_text("staged edit\n")
    git(root, "add", "prompts/system.md")

    init_repo(root)

    assert git(root, "diff", "--cached", "--name-only") == "prompts/system.md"
    assert git(root, "show", "main:prompts/system.md") == "You are a helpful support agent.\nAnswer briefly."


def test_init_in_a_clone_says_it_only_configured(tmp_path):
    source = make_state_repo(tmp_path / "source")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(source), str(clone))

    proc = run_cli("init", cwd=clone)

    assert proc.returncode == 0, proc.stderr
    assert "a clone of a state repository; configured only, nothing committed" in proc.stdout
    assert "  set merge.aevolve-jsonl.driver = " in proc.stdout
