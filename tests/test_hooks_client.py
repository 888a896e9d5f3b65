"""Client hooks through real `git commit` / `git push`: install, chain, validate, rationale, gate."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_hooks_server import note, verdict

from conftest import git, make_state_repo, run_cli, write

BAD_SKILL = "---\nname: Wrong_Name\ndescription: x\n---\nbody\n"
GOOD_SKILL = "---\nname: verify\ndescription: Verify ids before answering.\n---\n\nCheck the id.\n"


def commit(cwd, *args, message="change\n") -> subprocess.CompletedProcess:
    return subprocess.run(["git", "commit", "-q", *args, "-F", "-"], cwd=cwd, input=message,
                          capture_output=True, text=True)


@pytest.fixture
def repo(state_repo):
    result = run_cli("hooks", "install", cwd=state_repo)
    assert result.returncode == 0, result.stderr
    return state_repo


def test_install_writes_executable_shims_that_call_this_python(repo):
    for name in ("pre-commit", "commit-msg", "pre-push"):
        hook = repo / ".git" / "hooks" / name
        assert hook.stat().st_mode & 0o111
        text = hook.read_text()
        assert sys.executable in text and f"hook run --chain \"$0.local\" {name}" in text


def test_reinstall_changes_nothing(repo):
    before = {p.name: p.read_text() for p in (repo / ".git" / "hooks").iterdir()}
    config = git(repo, "config", "--local", "--list")
    result = run_cli("hooks", "install", "--json", cwd=repo)
    assert result.returncode == 0
    assert '"written": []' in result.stdout
    assert {p.name: p.read_text() for p in (repo / ".git" / "hooks").iterdir()} == before
    assert git(repo, "config", "--local", "--list") == config


def test_install_respects_core_hooks_path(state_repo):
    git(state_repo, "config", "core.hooksPath", ".githooks")
    assert run_cli("hooks", "install", cwd=state_repo).returncode == 0
    assert (state_repo / ".githooks" / "pre-commit").exists()
    assert not (state_repo / ".git" / "hooks" / "pre-commit").exists()
    write(state_repo, {"skills/bad/SKILL.md": BAD_SKILL})
    git(state_repo, "add", "-A")
    assert commit(state_repo).returncode != 0


def test_pre_commit_rejects_an_invalid_staged_skill_with_file_and_line(repo):
    head = git(repo, "rev-parse", "HEAD")
    write(repo, {"skills/bad/SKILL.md": BAD_SKILL})
    git(repo, "add", "-A")
    result = commit(repo)
    assert result.returncode != 0
    assert "skills/bad/SKILL.md:2:" in result.stderr
    assert git(repo, "rev-parse", "HEAD") == head


def test_pre_commit_accepts_a_valid_skill(repo):
    write(repo, {"skills/verify/SKILL.md": GOOD_SKILL})
    git(repo, "add", "-A")
    result = commit(repo)
    assert result.returncode == 0, result.stderr
    assert git(repo, "show", "--name-only", "--format=", "HEAD") == "skills/verify/SKILL.md"


def test_pre_commit_ignores_unstaged_breakage(repo):
    write(repo, {"skills/verify/SKILL.md": GOOD_SKILL})
    git(repo, "add", "-A")
    write(repo, {"skills/verify/SKILL.md": BAD_SKILL, "memory/episodic.jsonl": "{broken\n"})
    result = commit(repo)
    assert result.returncode == 0, result.stderr


def test_pre_commit_checks_what_commit_a_stages(repo):
    write(repo, {"memory/episodic.jsonl": "{broken\n"})
    result = commit(repo, "-a")
    assert result.returncode != 0
    assert "memory/episodic.jsonl:1: broken JSON" in result.stderr


def test_pre_commit_reports_only_problems_in_changed_files(tmp_path):
    repo = make_state_repo(tmp_path / "s")
    write(repo, {"skills/old/SKILL.md": BAD_SKILL})  # pre-existing breakage, committed without hooks
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "old breakage")
    assert run_cli("hooks", "install", cwd=repo).returncode == 0
    write(repo, {"prompts/system.md": "Be brief.\n"})
    git(repo, "add", "-A")
    assert commit(repo).returncode == 0


def test_commit_msg_on_an_evolve_branch_requires_diagnosis_and_evidence(repo):
    git(repo, "checkout", "-q", "-b", "evolve/x")
    write(repo, {"prompts/system.md": "Be brief.\n"})
    git(repo, "add", "-A")
    result = commit(repo, message="evolve(prompts): shorter\n\nChange:\nshorter prompt\n")
    assert result.returncode != 0
    assert "branch 'evolve/x' is missing: Diagnosis, Evidence" in result.stderr
    ok = commit(repo, message=("evolve(prompts): shorter\n\n"
                               "Diagnosis:\nanswers ran long in obs-1\n\nAevolve-Evidence: obs-1\n"))
    assert ok.returncode == 0, ok.stderr


def test_commit_msg_accepts_an_evidence_section(repo):
    git(repo, "checkout", "-q", "-b", "evolve/y")
    write(repo, {"prompts/system.md": "Be brief.\n"})
    git(repo, "add", "-A")
    result = commit(repo, message="shorter\n\nDiagnosis: answers ran long\n\nEvidence:\nobs-1, obs-2\n")
    assert result.returncode == 0, result.stderr


def test_commit_msg_ignores_other_branches(repo):
    write(repo, {"prompts/system.md": "Be brief.\n"})
    git(repo, "add", "-A")
    assert commit(repo, message="just a change\n").returncode == 0


def test_commit_msg_sections_come_from_aevolve_yaml(tmp_path):
    repo = make_state_repo(tmp_path / "s")
    write(repo, {"aevolve.yaml": "hooks:\n  branch_prefix: exp/\n  rationale_sections: [Risk]\n"})
    git(repo, "commit", "-q", "-am", "config")
    assert run_cli("hooks", "install", cwd=repo).returncode == 0
    git(repo, "checkout", "-q", "-b", "exp/a")
    write(repo, {"prompts/system.md": "Be brief.\n"})
    git(repo, "add", "-A")
    result = commit(repo, message="x\n\nDiagnosis: y\n")
    assert "missing: Risk" in result.stderr
    assert commit(repo, message="x\n\nRisk: none\n").returncode == 0


def test_an_existing_hook_is_chained_runs_first_and_its_failure_fails_the_commit(state_repo):
    hooks = state_repo / ".git" / "hooks"
    mine = hooks / "pre-commit"
    mine.write_text("#!/bin/sh\necho user-hook-ran >&2\n[ ! -e \"$(git rev-parse --show-toplevel)/BLOCK\" ]\n")
    mine.chmod(0o755)
    result = run_cli("hooks", "install", cwd=state_repo)
    assert result.returncode == 0
    assert (hooks / "pre-commit.local").read_text().startswith("#!/bin/sh\necho user-hook-ran")
    write(state_repo, {"prompts/system.md": "Be brief.\n"})
    git(state_repo, "add", "prompts")
    ok = commit(state_repo)
    assert ok.returncode == 0 and "user-hook-ran" in ok.stderr
    write(state_repo, {"BLOCK": "", "prompts/system.md": "Shorter.\n"})
    git(state_repo, "add", "prompts")
    blocked = commit(state_repo)
    assert blocked.returncode != 0
    assert "your own pre-commit hook" in blocked.stderr


def test_uninstall_restores_the_original_hook(state_repo):
    hooks = state_repo / ".git" / "hooks"
    (hooks / "commit-msg").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "commit-msg").chmod(0o755)
    assert run_cli("hooks", "install", cwd=state_repo).returncode == 0
    assert run_cli("hooks", "uninstall", cwd=state_repo).returncode == 0
    assert (hooks / "commit-msg").read_text() == "#!/bin/sh\nexit 0\n"
    assert not (hooks / "commit-msg.local").exists()
    assert not (hooks / "pre-commit").exists() and not (hooks / "pre-push").exists()


def test_install_refuses_when_the_hook_cannot_be_chained_and_force_keeps_a_backup(state_repo):
    hooks = state_repo / ".git" / "hooks"
    for name in ("pre-push", "pre-push.local"):
        (hooks / name).write_text(f"#!/bin/sh\n# {name}\n")
    refused = run_cli("hooks", "install", cwd=state_repo)
    assert refused.returncode == 1
    assert "pre-push.local already exists" in refused.stderr
    assert not (hooks / "pre-commit").exists()  # nothing was changed
    forced = run_cli("hooks", "install", "--force", cwd=state_repo)
    assert forced.returncode == 0, forced.stderr
    assert (hooks / "pre-push.aevolve-backup").read_text() == "#!/bin/sh\n# pre-push\n"
    assert (hooks / "pre-push.local").read_text() == "#!/bin/sh\n# pre-push.local\n"


@pytest.fixture
def pushing(repo, tmp_path):
    """(repo with hooks, its bare remote `origin` that already has main: the baseline)."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    # setup, not a claim (the first push of main has its own test): skip the pre-push hook
    assert git_push(repo, "--no-verify", "origin", "main").returncode == 0
    return repo, bare


def git_push(cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", *args], cwd=cwd, capture_output=True, text=True)


def change(repo, text: str = "Be brief.\n") -> str:
    write(repo, {"prompts/system.md": text})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "prompt: shorter")
    return git(repo, "rev-parse", "HEAD")


def test_pre_push_lets_the_first_main_through_to_an_empty_remote(repo, tmp_path):
    bare = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    result = git_push(repo, str(bare), "main")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")


def test_pre_push_refuses_an_ungated_main_and_names_the_commit(pushing):
    repo, bare = pushing
    old = git(bare, "rev-parse", "main")
    head = change(repo)
    result = git_push(repo, "origin", "main")
    assert result.returncode != 0
    assert f"refusing to push main at {head[:12]} (prompt: shorter) to origin" in result.stderr
    assert f"{head[:12]} (prompt: shorter): it has no gate note" in result.stderr
    assert "git push origin main refs/notes/aevolve" in result.stderr
    assert git(bare, "rev-parse", "main") == old


def test_pre_push_lets_a_verified_main_and_other_branches_through(pushing):
    repo, bare = pushing
    git(repo, "branch", "evolve/a")
    assert git_push(repo, "origin", "evolve/a").returncode == 0
    head = change(repo)
    note(repo, head, verdict(repo, head))
    result = git_push(repo, "origin", "main", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "main") == head


def test_pre_push_refuses_a_verdict_gated_against_the_commit_itself(pushing):
    repo, bare = pushing
    head = change(repo)
    note(repo, head, verdict(repo, head, baseline=head))
    result = git_push(repo, "origin", "main", "refs/notes/aevolve")
    assert result.returncode != 0
    assert "its note was gated against itself" in result.stderr
    assert git(bare, "for-each-ref", "refs/notes/") == ""


def test_pre_push_refuses_a_hand_written_accept_note(pushing):
    repo, _ = pushing
    head = change(repo)
    note(repo, head, {"decision": "accept", "candidate": head})
    result = git_push(repo, "origin", "main", "refs/notes/aevolve")
    assert result.returncode != 0
    assert f"{head[:12]} (prompt: shorter): its note was gated against None" in result.stderr


def test_pre_push_counts_a_verdict_fetched_from_the_remote(pushing, tmp_path):
    repo, bare = pushing
    head = change(repo)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "fetch", "-q", str(repo), "main")
    note(other, head, verdict(other, head))  # someone else (CI) gated it and pushed the note
    git(other, "push", "-q", "--no-verify", "origin", "refs/notes/aevolve")
    git(repo, "fetch", "-q", "origin", "+refs/notes/aevolve:refs/notes/remotes/origin/aevolve")
    assert git(repo, "rev-parse", "-q", "--verify", "refs/notes/aevolve", check=False) == ""
    result = git_push(repo, "origin", "main")
    assert result.returncode == 0, result.stderr


def test_pre_push_refuses_deleting_main(pushing):
    repo, bare = pushing
    head = git(repo, "rev-parse", "HEAD")
    result = git_push(repo, "origin", ":main")
    assert result.returncode != 0
    assert "refusing to delete main" in result.stderr
    assert git(bare, "rev-parse", "main") == head


def test_pre_push_refuses_a_tag_named_main(pushing):
    repo, bare = pushing
    git(repo, "tag", "main")
    result = git_push(repo, "origin", "refs/tags/main")
    assert result.returncode != 0
    assert "refusing to push the tag 'main'" in result.stderr
    assert git(bare, "tag", "--list") == ""


def test_hooks_list_reports_installed_hooks(repo):
    result = run_cli("hooks", "list", "--json", cwd=repo)
    assert result.returncode == 0
    import json

    data = json.loads(result.stdout)
    status = {h["name"]: h["status"] for h in data["hooks"]}
    assert status == {"pre-commit": "aevolve", "commit-msg": "aevolve", "pre-push": "aevolve", "pre-receive": "absent"}
    assert all(data["drivers"].values())


def test_install_into_a_bare_repository_without_server_is_a_usage_error(tmp_path):
    bare = tmp_path / "b.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    result = run_cli("-C", bare, "hooks", "install")
    assert result.returncode == 2
    assert "--server" in result.stderr


def test_pre_push_to_a_url_still_checks_the_gate(pushing):
    repo, bare = pushing
    change(repo)
    result = git_push(repo, str(bare), "main")
    assert result.returncode != 0
    assert "refusing to push main" in result.stderr
