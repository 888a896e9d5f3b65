"""The server trusts only verdicts bound to their transition (and signed, when it asks for that).

A real bare remote with the pre-receive hook, a real clone, real `git push`,
real `ssh-keygen` keys.
"""

from __future__ import annotations

import json

import pytest
from test_hooks_server import build_remote, commit_change, copy_remote, gate_note, note, push, remote_template, verdict
from test_signing import make_key

from aevolve._git.repo import Repo

from conftest import git, run_cli
from gate_support import GateRepo, cases_yaml, facts

SHORTER = {"prompts/system.md": "Be brief.\n"}
PROPOSAL = (
    "evolve(evals): make the exam easier\n\nDiagnosis:\nthe cases are hard\n\n"
    "Aevolve-Proposal: p-1\nAevolve-Evidence: obs-1\nAevolve-Evolver: rules\n"
)
EASIER_EXAM = {"evals/basic.yaml": "- id: x\n  input: {}\n  assert: []\n"}


def signers_file(path, *keys):
    lines = [f"{k.name}@example.com {k.with_suffix('.pub').read_text().strip()}" for k in keys]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def serve(tmp_path, *install_args):
    """(bare remote with the server hook installed with `install_args`, a clone of it)."""
    return build_remote(tmp_path, *install_args)


def refused(result, bare, main_before) -> bool:
    return result.returncode != 0 and git(bare, "rev-parse", "refs/heads/main") == main_before


# -- verdicts bound to their transition ------------------------------------------------


def test_a_valid_verdict_on_each_step_lets_main_move(remote):
    bare, clone = remote
    first = commit_change(clone, SHORTER, "prompt: shorter\n")
    second = commit_change(clone, {"prompts/system.md": "Be briefer.\n"}, "prompt: briefer\n")
    gate_note(clone, first)
    gate_note(clone, second)
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == second


def test_a_hand_written_accept_note_is_refused(remote):
    bare, clone = remote
    old = git(bare, "rev-parse", "refs/heads/main")
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    note(clone, new, {"decision": "accept", "candidate": new})
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert f"{new[:12]} (prompt: shorter): its note was gated against None, but its parent is {old[:12]}" \
        in result.stderr


def test_a_note_copied_from_another_commit_is_refused(remote):
    bare, clone = remote
    old = git(bare, "rev-parse", "refs/heads/main")
    git(clone, "checkout", "-q", "-b", "evolve/other")
    other = commit_change(clone, {"prompts/system.md": "Other.\n"}, "prompt: other\n")
    git(clone, "checkout", "-q", "main")
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    note(clone, new, verdict(clone, other))
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert f"its note is the verdict on another commit ({other[:12]})" in result.stderr


def test_a_note_gated_against_the_commit_itself_is_refused(remote):
    bare, clone = remote
    old = git(bare, "rev-parse", "refs/heads/main")
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    note(clone, new, verdict(clone, new, baseline=new))
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert f"its note was gated against itself; gate it against its parent {old[:12]}" in result.stderr


def test_a_verdict_on_only_the_last_of_two_new_commits_is_refused(remote):
    bare, clone = remote
    old = git(bare, "rev-parse", "refs/heads/main")
    first = commit_change(clone, SHORTER, "prompt: shorter\n")
    second = commit_change(clone, {"prompts/system.md": "Be briefer.\n"}, "prompt: briefer\n")
    gate_note(clone, second)
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert f"{first[:12]} (prompt: shorter): it has no gate note" in result.stderr


# -- notes only grow -------------------------------------------------------------------


def build_promoted(root):
    _bare, clone = build_remote(root)
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    gate_note(clone, new)
    assert push(clone, "origin", "main", "refs/notes/aevolve").returncode == 0
    (root / "promoted").write_text(new)


@pytest.fixture(scope="module")
def _promoted_template(tmp_path_factory):
    return remote_template(tmp_path_factory, build_promoted)


@pytest.fixture
def promoted(_promoted_template, tmp_path):
    """(bare, clone, commit): a commit that reached the server's main with its verdict."""
    bare, clone = copy_remote(_promoted_template, tmp_path)
    return bare, clone, (_promoted_template / "promoted").read_text()


def test_changing_the_note_of_a_commit_in_main_is_refused(promoted):
    bare, clone, new = promoted
    before = git(bare, "rev-parse", "refs/notes/aevolve")
    gate_note(clone, new, decision="reject")  # a fast-forward of the notes ref
    result = push(clone, "origin", "refs/notes/aevolve")
    assert result.returncode != 0
    assert f"changes or deletes the note of {new[:12]}, already in main" in result.stderr
    assert "notes merge" not in result.stderr and "--no-verify" not in result.stderr
    assert git(bare, "rev-parse", "refs/notes/aevolve") == before


def test_deleting_the_note_of_a_commit_in_main_is_refused(promoted):
    _bare, clone, new = promoted
    git(clone, "notes", "--ref=aevolve", "remove", new)
    result = push(clone, "origin", "refs/notes/aevolve")
    assert result.returncode != 0
    assert f"changes or deletes the note of {new[:12]}" in result.stderr


def test_a_note_moved_to_a_fan_out_path_unchanged_is_not_a_rewrite(promoted):
    bare, clone, new = promoted
    repo = Repo.open(clone)
    notes = repo.ref_target("refs/notes/aevolve")
    data = repo.read_note(new, "refs/notes/aevolve")
    tree = repo.build_tree(repo.git[notes].tree, {new: None, f"{new[:2]}/{new[2:]}": data})
    moved = repo.commit(tree, [notes], "notes: fan out\n")
    git(clone, "update-ref", "refs/notes/aevolve", str(moved))
    result = push(clone, "origin", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/notes/aevolve") == str(moved)
    assert json.loads(git(bare, "notes", "--ref=aevolve", "show", new))["candidate"] == new


def test_the_note_of_a_commit_not_in_main_may_be_added_and_changed(promoted):
    bare, clone, _ = promoted
    git(clone, "checkout", "-q", "-b", "evolve/next")
    candidate = commit_change(clone, {"prompts/system.md": "Next.\n"}, "prompt: next\n")
    gate_note(clone, candidate, decision="reject")
    assert push(clone, "origin", "evolve/next", "refs/notes/aevolve").returncode == 0
    gate_note(clone, candidate)  # re-gated: the verdict of a candidate may change
    result = push(clone, "origin", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert json.loads(git(bare, "notes", "--ref=aevolve", "show", candidate))["decision"] == "accept"


def test_a_regated_note_may_arrive_with_the_push_that_brings_its_commit_into_main(promoted):
    bare, clone, _ = promoted
    candidate = commit_change(clone, {"prompts/system.md": "Next.\n"}, "prompt: next\n")
    gate_note(clone, candidate, decision="reject")
    assert push(clone, "origin", f"{candidate}:refs/heads/evolve/next", "refs/notes/aevolve").returncode == 0
    gate_note(clone, candidate)  # accepted on a second gate; the server verifies that verdict
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "main") == candidate


# -- evolver commits and names ---------------------------------------------------------


def test_an_evolver_commit_touching_evals_is_refused_on_a_notes_ref(remote):
    bare, clone = remote
    sha = commit_change(clone, EASIER_EXAM, PROPOSAL)
    result = push(clone, "origin", f"{sha}:refs/notes/x")
    assert result.returncode != 0
    assert f"refusing evolver commit {sha[:12]} (evolve(evals): make the exam easier) on refs/notes/x" \
        in result.stderr
    assert git(bare, "for-each-ref", "refs/notes/") == ""


def test_an_evolver_commit_touching_evals_is_refused_on_a_tag(remote):
    _bare, clone = remote
    sha = commit_change(clone, EASIER_EXAM, PROPOSAL)
    git(clone, "tag", "-a", "-m", "release", "v1", sha)
    result = push(clone, "origin", "v1")
    assert result.returncode != 0
    assert f"refusing evolver commit {sha[:12]}" in result.stderr and "evals/basic.yaml" in result.stderr


def test_an_evolver_commit_outside_the_layers_or_on_gitattributes_is_refused(remote):
    _bare, clone = remote
    git(clone, "checkout", "-q", "-b", "evolve/attrs")
    sha = commit_change(clone, {"prompts/.gitattributes": "*.md filter=x\n", "notes.txt": "hi\n"},
                        PROPOSAL.replace("evals", "prompts"))
    result = push(clone, "origin", "evolve/attrs")
    assert result.returncode != 0
    assert f"refusing evolver commit {sha[:12]}" in result.stderr
    assert "notes.txt, prompts/.gitattributes" in result.stderr


def test_a_tag_named_main_is_refused(remote):
    bare, clone = remote
    git(clone, "tag", "main", "HEAD")
    result = push(clone, "origin", "refs/tags/main")
    assert result.returncode != 0
    assert "refusing refs/tags/main: a tag named 'main' makes `main` ambiguous" in result.stderr
    assert git(bare, "tag", "--list") == ""


# -- hooks install --server --allowed-signers ------------------------------------------


def test_install_copies_the_allowed_signers_into_the_repository(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    listed = signers_file(tmp_path / "signers", make_key(keys, "ci"))
    bare, _ = serve(tmp_path, "--allowed-signers", listed)
    copy = bare / "aevolve" / "allowed_signers"
    assert copy.read_text() == listed.read_text()
    assert git(bare, "config", "aevolve.allowedSigners") == str(copy.resolve())


def test_installing_again_with_another_file_replaces_the_copy(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    bare, _ = serve(tmp_path, "--allowed-signers", signers_file(tmp_path / "a", make_key(keys, "ci")))
    second = signers_file(tmp_path / "b", make_key(keys, "bob"))
    result = run_cli("hooks", "install", "--server", bare, "--allowed-signers", second)
    assert result.returncode == 0, result.stderr
    assert (bare / "aevolve" / "allowed_signers").read_text() == second.read_text()
    assert "1 key(s) copied" in result.stdout


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("# only a comment\n\n", "it lists no key"),
    ("ci@example.com ssh-ed25519 not-base64!\n", ":1: not an allowed_signers line"),
])
def test_an_unusable_allowed_signers_file_is_exit_3_and_installs_nothing(tmp_path, content, message):
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    listed = tmp_path / "signers"
    if content is not None:
        listed.write_text(content)
    result = run_cli("hooks", "install", "--server", bare, "--allowed-signers", listed)
    assert result.returncode == 3
    assert message in result.stderr and "nothing was installed" in result.stderr
    assert not (bare / "hooks" / "pre-receive").exists()
    assert git(bare, "config", "--get", "aevolve.allowedSigners", check=False) == ""


def test_allowed_signers_without_server_is_a_usage_error(state_repo, tmp_path):
    result = run_cli("hooks", "install", "--allowed-signers", tmp_path / "x", cwd=state_repo)
    assert result.returncode == 2
    assert "--allowed-signers goes with --server" in result.stderr


# -- signed verdicts -------------------------------------------------------------------


def build_signed(root):
    keys = root / "keys"
    keys.mkdir()
    ci, _stranger = make_key(keys, "ci"), make_key(keys, "stranger")
    build_remote(root, "--allowed-signers", signers_file(root / "signers", ci))


@pytest.fixture(scope="module")
def _signed_template(tmp_path_factory):
    return remote_template(tmp_path_factory, build_signed)


@pytest.fixture
def signed(_signed_template, tmp_path):
    """(bare that admits only verdicts signed by `ci`, its clone, ci's key, an unlisted key)."""
    bare, clone = copy_remote(_signed_template, tmp_path, "keys")
    # the copied remote reads its own copy of the allowed signers, not the template's
    git(bare, "config", "aevolve.allowedSigners", str((bare / "aevolve" / "allowed_signers").resolve()))
    keys = tmp_path / "keys"
    return bare, clone, keys / "ci", keys / "stranger"


def test_an_unsigned_verdict_is_refused_where_signatures_are_required(signed):
    bare, clone, _, _ = signed
    old = git(bare, "rev-parse", "refs/heads/main")
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    gate_note(clone, new)
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert "its gate note is not signed" in result.stderr
    assert "admits only verdicts signed by a key in its allowed signers" in result.stderr


def test_a_verdict_signed_by_an_unlisted_key_is_refused(signed):
    bare, clone, _, stranger = signed
    old = git(bare, "rev-parse", "refs/heads/main")
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    note(clone, new, verdict(clone, new, key=stranger))
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert "its gate note's signature does not hold: signed by a key not in" in result.stderr


def test_a_verdict_signed_by_an_allowed_key_is_accepted(signed):
    bare, clone, ci, _ = signed
    new = commit_change(clone, SHORTER, "prompt: shorter\n")
    note(clone, new, verdict(clone, new, key=ci))
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == new


# -- verdicts written by the real gate ---------------------------------------------------


@pytest.fixture
def gated(tmp_path):
    """(bare remote of a repository with a real runner, a clone of it, ci's key, the
    remote's allowed signers file): the clone's gate signs with ci's key."""
    source = GateRepo(tmp_path, {"a": "right", "b": "right"}, cases_yaml("a", "b")).path
    keys = tmp_path / "keys"
    keys.mkdir()
    ci = make_key(keys, "ci")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "config", "aevolve.signingKey", str(ci))
    return bare, clone, signers_file(tmp_path / "signers", ci)


def propose(clone, **answers) -> str:
    git(clone, "checkout", "-q", "-b", "evolve/x")
    sha = commit_change(clone, {"memory/facts.jsonl": facts(**answers)}, "memory: new answers\n")
    git(clone, "checkout", "-q", "main")
    return sha


def test_a_commit_gated_and_promoted_by_aevolve_reaches_a_server_that_demands_signatures(gated):
    from aevolve._gate.run import gate
    from aevolve._promote.promote import promote

    bare, clone, signers = gated
    assert run_cli("hooks", "install", "--server", bare, "--allowed-signers", signers).returncode == 0
    sha = propose(clone, a="right", b="right", c="new")
    assert gate(Repo.open(clone), "evolve/x").to_dict()["decision"] == "accept"
    assert promote(Repo.open(clone), "evolve/x").new == sha
    result = push(clone, "origin", "main", "refs/notes/aevolve")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/main") == sha
    assert json.loads(git(bare, "notes", "--ref=aevolve", "show", sha))["signature"]["signer"]


def test_a_signed_verdict_whose_decision_was_flipped_after_signing_is_refused(gated):
    from aevolve._gate.run import gate

    bare, clone, signers = gated
    assert run_cli("hooks", "install", "--server", bare, "--allowed-signers", signers).returncode == 0
    old = git(bare, "rev-parse", "refs/heads/main")
    sha = propose(clone, a="right", b="wrong")
    report = gate(Repo.open(clone), "evolve/x").to_dict()
    assert report["decision"] == "reject"
    signed_report = json.loads(git(clone, "notes", "--ref=aevolve", "show", sha))
    assert signed_report["signature"]
    note(clone, sha, {**signed_report, "decision": "accept"})
    result = push(clone, "origin", "evolve/x:main", "refs/notes/aevolve")
    assert refused(result, bare, old)
    assert f"{sha[:12]} (memory: new answers): its gate note's signature does not hold" in result.stderr
