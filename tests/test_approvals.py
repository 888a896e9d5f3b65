"""Approvals: signed by real SSH keys, stored as notes, counted only when they
approve exactly this commit and tree, and carried by plain push and fetch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_signing import BOTH, fingerprint_of, make_key, public

from aevolve._errors import SigningError
from aevolve._git.repo import Repo
from aevolve._remote.sync import sync
from aevolve._state.gitsetup import setup
from aevolve._trust.approvals import (
    APPROVALS_REF,
    Approval,
    approval_payload,
    approve,
    count_approvals,
    parse_approvals,
    read_approvals,
)
from aevolve.cli import cli, main

from conftest import git, make_state_repo, write


def use_key(checkout: Path, key: Path, email: str) -> None:
    """Sign as `email` with `key`, the way a maintainer configures git for SSH signing."""
    git(checkout, "config", "gpg.format", "ssh")
    git(checkout, "config", "user.signingKey", f"{key}.pub")
    git(checkout, "config", "user.email", email)


def head(repo: Repo) -> tuple[str, str]:
    commit = repo.resolve("HEAD")
    return str(commit.id), str(commit.tree_id)


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    return {name: make_key(tmp_path / "keys", name) for name in ("alice", "bob")}


@pytest.fixture
def repo(state_repo, keys) -> Repo:
    use_key(state_repo, keys["alice"], "alice@example.com")
    return Repo.open(state_repo)


@pytest.fixture
def allowed(tmp_path, keys) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(f"alice@example.com {BOTH} {public(keys['alice'])}\n"
                    f"bob@example.com {public(keys['bob'])}\n")
    return path


def test_the_approval_payload_binds_commit_tree_and_message():
    assert approval_payload("c" * 40, "t" * 40, "exam v2") == (
        '{"commit":"' + "c" * 40 + '","kind":"aevolve-approval","message":"exam v2","tree":"' + "t" * 40 + '"}'
    ).encode()


def test_approve_writes_a_note_that_counts(repo, keys):
    commit, tree = head(repo)
    approval = approve(repo, "main", "new eval cases reviewed")
    assert (approval.commit, approval.tree, approval.signer) == (commit, tree, "alice@example.com")
    assert approval.key == fingerprint_of(keys["alice"])
    assert git(repo.workdir, "notes", "--ref", APPROVALS_REF, "list", commit)
    stored = read_approvals(repo, commit)
    assert [Approval.from_dict(item) for item in stored] == [approval]
    count = count_approvals(stored, commit, tree, None)
    assert count.signers == [f"alice@example.com ({approval.key})"] and count.problems == []
    assert count.checked_against is None


def test_with_allowed_signers_approvers_are_their_principals(repo, allowed):
    commit, tree = head(repo)
    approve(repo, "HEAD")
    count = count_approvals(read_approvals(repo, commit), commit, tree, allowed)
    assert count.signers == ["alice@example.com"] and count.checked_against == str(allowed)


def test_two_signers_count_as_two(repo, keys, allowed):
    commit, tree = head(repo)
    approve(repo, "HEAD")
    use_key(repo.workdir, keys["bob"], "bob@example.com")
    approve(repo, "HEAD", "me too")
    count = count_approvals(read_approvals(repo, commit), commit, tree, allowed)
    assert count.signers == ["alice@example.com", "bob@example.com"] and count.problems == []


def test_approving_again_replaces_the_same_keys_earlier_approval(repo):
    commit, tree = head(repo)
    approve(repo, "HEAD", "first look")
    approve(repo, "HEAD", "second look")
    stored = read_approvals(repo, commit)
    assert [item["message"] for item in stored] == ["second look"]
    assert len(count_approvals(stored, commit, tree, None).signers) == 1


def test_the_same_signer_twice_counts_once(repo, allowed):
    commit, tree = head(repo)
    first = approve(repo, "HEAD", "one").to_dict()
    second = approve(repo, "HEAD", "two").to_dict()
    count = count_approvals([first, second], commit, tree, allowed)
    assert count.signers == ["alice@example.com"]
    assert count.problems == ["duplicate approval by alice@example.com"]


def test_one_key_signing_as_two_principals_counts_once(repo, keys, tmp_path):
    commit, tree = head(repo)
    pattern = tmp_path / "pattern_signers"
    pattern.write_text(f"*@example.com {public(keys['alice'])}\n")
    first = approve(repo, "HEAD").to_dict()
    git(repo.workdir, "config", "user.email", "alias@example.com")
    second = approve(repo, "HEAD").to_dict()
    count = count_approvals([first, second], commit, tree, pattern)
    assert count.signers == ["alice@example.com"] and count.problems == ["duplicate approval by alias@example.com"]


def test_an_approval_for_another_tree_does_not_count(repo):
    commit, _tree = head(repo)
    approval = approve(repo, "HEAD").to_dict()
    other_tree = git(repo.workdir, "rev-parse", "HEAD:prompts")
    count = count_approvals([approval], commit, other_tree, None)
    assert count.signers == [] and "another commit or tree" in count.problems[0]
    moved = {**approval, "tree": other_tree}  # claims the other tree, but signed the real one
    assert count_approvals([moved], commit, other_tree, None).signers == []


def test_an_approval_of_the_parent_does_not_approve_the_child(repo):
    parent = approve(repo, "HEAD").to_dict()
    write(repo.workdir, {"evals/more.yaml": "- id: x\n  input: {q: hi}\n"})
    git(repo.workdir, "add", "-A")
    git(repo.workdir, "commit", "-q", "--no-verify", "-m", "more evals")
    commit, tree = head(repo)
    assert count_approvals([parent], commit, tree, None).signers == []


def test_an_approval_with_an_edited_message_does_not_count(repo):
    commit, tree = head(repo)
    edited = {**approve(repo, "HEAD", "only the typo fix").to_dict(), "message": "everything"}
    count = count_approvals([edited], commit, tree, None)
    assert count.signers == [] and "does not count: bad signature" in count.problems[0]


def test_an_approval_by_an_unlisted_key_does_not_count(repo, tmp_path, keys):
    commit, tree = head(repo)
    only_bob = tmp_path / "only_bob"
    only_bob.write_text(f"bob@example.com {public(keys['bob'])}\n")
    count = count_approvals([approve(repo, "HEAD").to_dict()], commit, tree, only_bob)
    assert count.signers == [] and f"signed by a key not in {only_bob}" in count.problems[0]


def test_a_verdict_signature_is_not_an_approval(repo, keys):
    from aevolve._trust.signing import NAMESPACE_VERDICT, sign, signing_key

    commit, tree = head(repo)
    approval = approve(repo, "HEAD").to_dict()
    verdict_sig = sign(signing_key(repo), approval_payload(commit, tree, ""), NAMESPACE_VERDICT)
    count = count_approvals([{**approval, "signature": verdict_sig}], commit, tree, None)
    assert count.signers == [] and "not 'aevolve-approval'" in count.problems[0]


def test_malformed_approvals_are_reported_not_raised(repo):
    commit, tree = head(repo)
    count = count_approvals([{"commit": commit}, {"signature": "x"}], commit, tree, None)
    assert count.signers == [] and len(count.problems) == 2
    assert all(p.startswith("malformed approval") for p in count.problems)
    with pytest.raises(ValueError):
        Approval.from_dict({"commit": commit, "tree": tree})


@pytest.mark.parametrize("data", [None, b"", b"not json", b"[1, 2]", b'{"approvals": 3}', b"\xff\xfe"])
def test_parse_approvals_turns_any_malformed_note_into_nothing(data):
    assert parse_approvals(data) == []


def test_parse_approvals_keeps_only_objects():
    assert parse_approvals(b'{"approvals": [{"commit": "c"}, 7, "x"]}') == [{"commit": "c"}]


def test_approve_without_a_signing_key_says_how_to_set_one(state_repo):
    with pytest.raises(SigningError) as err:
        approve(Repo.open(state_repo), "HEAD")
    message = str(err.value)
    assert "git config gpg.format ssh" in message and "aevolve.signingKey" in message
    assert git(state_repo, "for-each-ref", APPROVALS_REF) == ""  # nothing written


# -- the command line ------------------------------------------------------------


def test_approve_command_prints_who_approved_what(repo, keys):
    commit, _ = head(repo)
    result = CliRunner().invoke(cli, ["-C", str(repo.workdir), "approve", "HEAD", "-m", "ok"])
    assert result.exit_code == 0, result.output
    subject = git(repo.workdir, "log", "-1", "--format=%s")
    assert result.output == (f"approved {commit[:12]} ({subject}) as alice@example.com "
                             f"({fingerprint_of(keys['alice'])})\n")


def test_approve_command_json_is_the_stored_approval(repo):
    commit, tree = head(repo)
    result = CliRunner().invoke(cli, ["-C", str(repo.workdir), "approve", "main", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert (printed["commit"], printed["tree"], printed["signature"]["namespace"]) == (commit, tree, "aevolve-approval")
    assert read_approvals(repo, commit) == [printed]


def test_approve_command_without_a_key_exits_1_with_advice(state_repo, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-C", str(state_repo), "approve", "HEAD"])
    assert exit_.value.code == 1
    assert "no signing key configured" in capsys.readouterr().err


def test_approve_command_of_an_unknown_revision_fails(repo, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-C", str(repo.workdir), "approve", "no-such-branch"])
    assert exit_.value.code == 1 and "unknown revision 'no-such-branch'" in capsys.readouterr().err


# -- travelling --------------------------------------------------------------------


def test_approvals_travel_through_a_bare_remote_with_aevolve_sync(tmp_path, keys):
    source = make_state_repo(tmp_path / "state")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    clones = {}
    for name in ("maintainer", "server-side-reader"):
        clones[name] = tmp_path / name
        git(tmp_path, "clone", "-q", str(bare), str(clones[name]))
        setup(Repo.open(clones[name]))  # what `aevolve init` / `hooks install` configure
    use_key(clones["maintainer"], keys["alice"], "alice@example.com")
    approval = approve(Repo.open(clones["maintainer"]), "HEAD", "ship it")
    pushed = subprocess.run(["git", "push"], cwd=clones["maintainer"], capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr

    reader = clones["server-side-reader"]
    sync(Repo.open(reader))  # a fetch lands in tracking refs; sync merges the approvals in
    stored = read_approvals(Repo.open(reader), approval.commit)
    assert stored == [approval.to_dict()]
    assert count_approvals(stored, approval.commit, approval.tree, None).signers == [
        f"alice@example.com ({approval.key})"]
