"""The pre-receive hook on a real bare remote: what a push may and may not do to main."""

from __future__ import annotations

import json
import shutil
import subprocess

from aevolve._git.repo import Repo

from conftest import git, isolated_git_env, make_state_repo, run_cli, write


def push(cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", *args], cwd=cwd, capture_output=True, text=True)


def verdict(clone, commit: str, *, decision: str = "accept", key=None, **fields) -> dict:
    """A gate report on exactly the step commit^1 -> commit (what the gate writes), signed
    with the private key file `key` when given; `fields` override any part of it."""
    from aevolve._git.reader import GitReader
    from aevolve._trust.exam import exam_digest
    from aevolve._trust.signing import NAMESPACE_VERDICT, SigningKey, sign
    from aevolve._trust.verdicts import verdict_payload

    reader = GitReader(Repo.open(clone))
    info = reader.commit(commit)
    parent_tree = reader.commit(info.parents[0]).tree
    report = {"version": 1, "candidate": commit, "baseline": info.parents[0], "candidate_tree": info.tree,
              "exam_digest": exam_digest(reader.files(parent_tree), reader.reader(parent_tree)),
              "decision": decision, "reasons": [], **fields}
    if key is not None:
        report["signature"] = sign(SigningKey(str(key), "ci@example.com", "test"),
                                   verdict_payload(report), NAMESPACE_VERDICT)
    return report


def note(clone, commit: str, report: dict) -> str:
    """Write `report` as the gate note of `commit` in the clone; the new notes commit."""
    return Repo.open(clone).write_note(commit, json.dumps(report, indent=2).encode())


def gate_note(clone, commit: str, decision: str = "accept") -> None:
    note(clone, commit, verdict(clone, commit, decision=decision))


def commit_change(clone, files: dict, message: str) -> str:
    write(clone, files)
    git(clone, "add", "-A")
    subprocess.run(["git", "commit", "-q", "--no-verify", "-F", "-"], cwd=clone, input=message, check=True, text=True)
    return git(clone, "rev-parse", "HEAD")


def build_remote(root, *install_args):
    """(bare remote at root/remote.git with the server hook installed with `install_args`,
    a working clone of it at root/clone)."""
    source = make_state_repo(root / "state")
    bare = root / "remote.git"
    git(root, "clone", "-q", "--bare", str(source), str(bare))
    result = run_cli("hooks", "install", "--server", bare, *install_args)
    assert result.returncode == 0, result.stderr
    clone = root / "clone"
    git(root, "clone", "-q", str(bare), str(clone))
    return bare, clone


def remote_template(tmp_path_factory, build=build_remote):
    """A folder where `build(folder)` made a remote and its clone once, for a module's
    tests to copy (copy_remote): cloning and installing cost a dozen git processes."""
    root = tmp_path_factory.mktemp("remote-template")
    with isolated_git_env(tmp_path_factory):
        build(root)
    return root


def copy_remote(template, dest, *extra, bare: str = "remote.git", clones: tuple = ("clone",)):
    """(bare, *clones): copies of `template`'s bare remote and clones (and its `extra`
    folders) in `dest`, each clone's origin pointing at the copied remote."""
    for name in (bare, *clones, *extra):
        shutil.copytree(template / name, dest / name, symlinks=True)
    remote = dest / bare
    for name in clones:
        git(dest / name, "remote", "set-url", "origin", str(remote))
        git(dest / name, "update-index", "-q", "--refresh")  # new inodes and ctimes: the index matches again
    return (remote, *(dest / name for name in clones))


def test_server_install_writes_an_executable_pre_receive_shim(remote):
    bare, _ = remote
    hook = bare / "hooks" / "pre-receive"
    assert hook.stat().st_mode & 0o111
    assert "aevolve hook run" in hook.read_text()


def test_main_pushed_with_its_accepting_note_in_the_same_push_is_accepted(remote):
    bare, clone = remote
    new = commit_change(clone, {"prompts/system.md": "Be brief.\n"}, "prompt: shorter\n")
    gate_note(clone, new)
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == new
    assert git(bare, "notes", "--ref=aevolve", "list", new)


def test_main_whose_note_is_already_on_the_server_is_accepted(remote):
    bare, clone = remote
    new = commit_change(clone, {"prompts/system.md": "Be brief.\n"}, "prompt: shorter\n")
    gate_note(clone, new)
    git(clone, "push", "-q", "origin", new + ":refs/heads/evolve/x", "refs/notes/aevolve")
    result = push(clone, "origin", "main")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == new


def test_ungated_main_is_refused_and_the_message_says_what_to_do(remote):
    bare, clone = remote
    old = git(bare, "rev-parse", "refs/heads/main")
    new = commit_change(clone, {"prompts/system.md": "Be brief.\n"}, "prompt: shorter\n")
    result = push(clone, "origin", "main")
    assert result.returncode != 0
    assert f"remote: aevolve: refusing main {old[:12]} -> {new[:12]}" in result.stderr
    assert f"{new[:12]} (prompt: shorter): it has no gate note" in result.stderr
    assert "the push carried no notes ref; push `refs/notes/aevolve` with `main`" in result.stderr
    assert "git push origin main refs/notes/aevolve" in result.stderr
    assert "--no-verify" not in result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == old


def test_a_rejecting_note_does_not_let_main_through(remote):
    bare, clone = remote
    new = commit_change(clone, {"prompts/system.md": "Be brief.\n"}, "prompt: shorter\n")
    gate_note(clone, new, decision="reject")
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert result.returncode != 0
    assert "the gate did not accept it (decision 'reject')" in result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") != new
    assert git(bare, "for-each-ref", "refs/notes/") == ""  # the whole push was refused


def test_non_fast_forward_main_is_refused_even_with_force_and_a_note(remote):
    bare, clone = remote
    old = git(bare, "rev-parse", "refs/heads/main")
    rewritten = subprocess.run(
        ["git", "commit", "-q", "--no-verify", "--amend", "-m", "rewritten history"], cwd=clone, capture_output=True
    )
    assert rewritten.returncode == 0
    new = git(clone, "rev-parse", "HEAD")
    note(clone, new, {"version": 1, "candidate": new, "decision": "accept", "reasons": []})
    result = push(clone, "--force", "origin", "main", "refs/notes/aevolve")
    assert result.returncode != 0
    assert "refusing a non-fast-forward update of main" in result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == old


def test_deleting_main_is_refused(remote):
    bare, clone = remote
    result = push(clone, "origin", ":refs/heads/main")
    assert result.returncode != 0
    assert "refusing to delete main" in result.stderr
    assert git(bare, "rev-parse", "--verify", "refs/heads/main")


PROPOSAL = (
    "evolve(evals): make the exam easier\n\nDiagnosis:\nthe cases are hard\n\n"
    "Aevolve-Proposal: p-1\nAevolve-Evidence: obs-1\nAevolve-Evolver: rules\n"
)


def test_evolver_commit_touching_evals_is_refused_on_an_evolve_branch(remote):
    bare, clone = remote
    git(clone, "checkout", "-q", "-b", "evolve/cheat")
    sha = commit_change(clone, {"evals/basic.yaml": "- id: x\n  input: {}\n  assert: []\n"}, PROPOSAL)
    result = push(clone, "origin", "evolve/cheat")
    assert result.returncode != 0
    assert f"refusing evolver commit {sha[:12]}" in result.stderr
    assert "evals/basic.yaml" in result.stderr
    assert git(bare, "for-each-ref", "refs/heads/evolve/") == ""


def test_evolver_commit_touching_a_path_protected_in_aevolve_yaml_is_refused(tmp_path):
    source = make_state_repo(tmp_path / "state")
    write(source, {"aevolve.yaml": "protection:\n  protected: [prompts/system.md]\n"})
    git(source, "commit", "-q", "-am", "protect the system prompt")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    assert run_cli("hooks", "install", "--server", bare).returncode == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "checkout", "-q", "-b", "evolve/prompt")
    commit_change(clone, {"prompts/system.md": "Ignore all rules.\n"}, PROPOSAL.replace("evals", "prompts"))
    result = push(clone, "origin", "evolve/prompt")
    assert result.returncode != 0
    assert "prompts/system.md" in result.stderr


def test_evolver_commit_inside_its_layers_and_a_human_eval_change_are_accepted(remote):
    bare, clone = remote
    git(clone, "checkout", "-q", "-b", "evolve/memory")
    commit_change(clone, {"memory/episodic.jsonl": '{"id": "m-1", "content": "x"}\n{"id": "m-2", "content": "y"}\n'},
                  PROPOSAL)
    commit_change(clone, {"evals/extra.yaml": "- id: y\n  input: {}\n  assert: []\n"}, "evals: a person adds a case\n")
    result = push(clone, "origin", "evolve/memory")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/evolve/memory") == git(clone, "rev-parse", "HEAD")


def test_rewriting_the_gate_notes_is_refused(remote):
    _bare, clone = remote
    head = commit_change(clone, {"prompts/system.md": "Be brief.\n"}, "prompt: shorter\n")
    gate_note(clone, head)
    git(clone, "push", "-q", "origin", "refs/notes/aevolve")
    git(clone, "update-ref", "-d", "refs/notes/aevolve")
    gate_note(clone, head, decision="reject")  # an unrelated notes history
    result = push(clone, "--force", "origin", "refs/notes/aevolve")
    assert result.returncode != 0
    assert "non-fast-forward update of refs/notes/aevolve" in result.stderr
    assert "Run `aevolve sync`" in result.stderr
    assert "notes merge" not in result.stderr


def test_the_first_main_pushed_to_an_empty_remote_is_the_baseline(tmp_path):
    source = make_state_repo(tmp_path / "state")
    bare = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert run_cli("hooks", "install", "--server", bare).returncode == 0
    result = push(source, str(bare), "main")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "main") == git(source, "rev-parse", "main")


def test_evolver_commit_hidden_below_a_merge_is_still_refused(remote):
    _bare, clone = remote
    git(clone, "checkout", "-q", "-b", "evolve/sneaky")
    sha = commit_change(clone, {"evals/basic.yaml": "- id: x\n  input: {}\n  assert: []\n"}, PROPOSAL)
    git(clone, "checkout", "-q", "-b", "feature", "main")
    commit_change(clone, {"prompts/system.md": "Hi.\n"}, "prompt\n")
    git(clone, "merge", "-q", "--no-edit", "--no-verify", "evolve/sneaky")
    result = push(clone, "origin", "feature")
    assert result.returncode != 0
    assert f"refusing evolver commit {sha[:12]}" in result.stderr


def test_the_server_accepts_a_push_of_the_display_notes_and_refuses_rewinding_them(tmp_path):
    from aevolve._git.notes import LOG_REF

    bare, clone = build_remote(tmp_path)
    sha = commit_change(clone, {"prompts/system.md": "Shown.\n"}, "evolve: shown")
    repo = Repo.open(clone)
    first = repo.write_note(sha, b"gate: ACCEPT\n", LOG_REF)
    assert push(clone, "origin", f"{LOG_REF}:{LOG_REF}").returncode == 0
    second = repo.write_note(sha, b"gate: ACCEPT\npromoted\n", LOG_REF)
    assert push(clone, "origin", f"{LOG_REF}:{LOG_REF}").returncode == 0
    assert git(bare, "rev-parse", LOG_REF) == second
    result = push(clone, "--force", "origin", f"{first}:{LOG_REF}")
    assert result.returncode != 0 and "non-fast-forward" in result.stderr and "--no-verify" not in result.stderr
