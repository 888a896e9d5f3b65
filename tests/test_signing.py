"""SSH signatures with the real ssh-keygen: signing keys from git config, verifying
against allowed_signers, and every way a signature must fail to count."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from aevolve._errors import SigningError
from aevolve._git.repo import Repo
from aevolve._trust.signing import (
    NAMESPACE_APPROVAL,
    NAMESPACE_VERDICT,
    SigningKey,
    allowed_signers_file,
    canonical,
    sign,
    signing_key,
    verify,
)

from conftest import git

BOTH = f'namespaces="{NAMESPACE_VERDICT},{NAMESPACE_APPROVAL}"'
PAYLOAD = canonical({"candidate": "a" * 40, "decision": "accept"})


def make_key(folder: Path, name: str, passphrase: str = "") -> Path:
    """A fresh ed25519 key pair; returns the private key's path (the public one is beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(path), "-q"], check=True)
    return path


def public(key: Path) -> str:
    return Path(f"{key}.pub").read_text().strip()


def fingerprint_of(key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def allowed_signers(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def key_for(path: Path, identity: str = "alice@example.com") -> SigningKey:
    return SigningKey(path=str(path), identity=identity, source="test")


@pytest.fixture
def alice(tmp_path) -> Path:
    return make_key(tmp_path / "keys", "alice")


@pytest.fixture
def repo(tmp_path) -> Repo:
    git(tmp_path, "init", "-q", "repo")
    return Repo.open(tmp_path / "repo")


# -- canonical form ------------------------------------------------------------


def test_canonical_form_sorts_keys_drops_spaces_and_keeps_unicode():
    assert canonical({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


# -- sign and verify -----------------------------------------------------------


def test_a_signature_verifies_without_an_allowed_signers_list(alice):
    signature = sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT)
    assert signature["format"] == "ssh" and signature["namespace"] == NAMESPACE_VERDICT
    assert signature["signer"] == "alice@example.com"
    assert signature["key"] == fingerprint_of(alice)
    assert signature["signature"].startswith("-----BEGIN SSH SIGNATURE-----\n")
    check = verify(PAYLOAD, signature, NAMESPACE_VERDICT, None)
    assert check.valid and check.principal is None
    assert check.fingerprint == fingerprint_of(alice) and check.signer == "alice@example.com"


def test_a_listed_key_verifies_as_its_principal(alice, tmp_path):
    allowed = allowed_signers(tmp_path / "allowed", f"alice@example.com {BOTH} {public(alice)}")
    check = verify(PAYLOAD, sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT), NAMESPACE_VERDICT, allowed)
    assert check.valid and check.principal == "alice@example.com"
    assert check.reason == f"good signature by alice@example.com ({fingerprint_of(alice)})"


def test_a_line_without_namespaces_allows_every_namespace(alice, tmp_path):
    allowed = allowed_signers(tmp_path / "allowed", f"alice@example.com {public(alice)}")
    for namespace in (NAMESPACE_VERDICT, NAMESPACE_APPROVAL):
        assert verify(PAYLOAD, sign(key_for(alice), PAYLOAD, namespace), namespace, allowed).valid


def test_a_pattern_line_verifies_as_the_claimed_identity_it_matches(alice, tmp_path):
    allowed = allowed_signers(tmp_path / "allowed", f"*@example.com {public(alice)}")
    check = verify(PAYLOAD, sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT), NAMESPACE_VERDICT, allowed)
    assert check.valid and check.principal == "alice@example.com"


def test_a_tampered_payload_does_not_verify(alice, tmp_path):
    allowed = allowed_signers(tmp_path / "allowed", f"alice@example.com {BOTH} {public(alice)}")
    signature = sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT)
    flipped = canonical({"candidate": "a" * 40, "decision": "reject"})
    assert not verify(flipped, signature, NAMESPACE_VERDICT, None).valid
    check = verify(flipped, signature, NAMESPACE_VERDICT, allowed)
    assert not check.valid and check.principal is None


def test_a_key_not_in_the_list_does_not_verify(alice, tmp_path):
    bob = make_key(tmp_path / "keys", "bob")
    allowed = allowed_signers(tmp_path / "allowed", f"bob@example.com {BOTH} {public(bob)}")
    check = verify(PAYLOAD, sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT), NAMESPACE_VERDICT, allowed)
    assert not check.valid
    assert check.reason == f"signed by a key not in {allowed}"


def test_the_principal_is_ssh_keygens_word_not_the_claimed_identity(alice, tmp_path):
    bob = make_key(tmp_path / "keys", "bob")
    allowed = allowed_signers(tmp_path / "allowed", f"bob@example.com {public(bob)}",
                              f"mallory@example.com {public(alice)}")
    check = verify(PAYLOAD, sign(key_for(alice, "bob@example.com"), PAYLOAD, NAMESPACE_VERDICT),
                   NAMESPACE_VERDICT, allowed)
    assert check.valid and check.principal == "mallory@example.com"  # ssh-keygen's word, not the claim


def test_an_approval_signature_never_counts_as_a_verdict(alice, tmp_path):
    allowed = allowed_signers(tmp_path / "allowed", f"alice@example.com {BOTH} {public(alice)}")
    signature = sign(key_for(alice), PAYLOAD, NAMESPACE_APPROVAL)
    assert not verify(PAYLOAD, signature, NAMESPACE_VERDICT, allowed).valid
    relabelled = {**signature, "namespace": NAMESPACE_VERDICT}  # the namespace is inside the signature too
    assert not verify(PAYLOAD, relabelled, NAMESPACE_VERDICT, allowed).valid
    assert not verify(PAYLOAD, relabelled, NAMESPACE_VERDICT, None).valid


def test_a_key_listed_for_verdicts_only_cannot_approve(alice, tmp_path):
    line = f'alice@example.com namespaces="{NAMESPACE_VERDICT}" {public(alice)}'
    allowed = allowed_signers(tmp_path / "allowed", line)
    check = verify(PAYLOAD, sign(key_for(alice), PAYLOAD, NAMESPACE_APPROVAL), NAMESPACE_APPROVAL, allowed)
    assert not check.valid and "not permitted" in check.reason


@pytest.mark.parametrize("signature, reason", [
    (None, "not signed"),
    ("-----BEGIN SSH SIGNATURE-----", "malformed signature"),
    ({"format": "ssh", "namespace": NAMESPACE_VERDICT}, "malformed signature"),
    ({"format": "gpg", "namespace": NAMESPACE_VERDICT, "signature": "-----BEGIN SSH SIGNATURE-----\n"},
     "malformed signature"),
])
def test_missing_or_malformed_signatures_are_invalid_not_errors(signature, reason):
    check = verify(PAYLOAD, signature, NAMESPACE_VERDICT, None)
    assert not check.valid and check.reason == reason


def test_garbage_armor_is_a_bad_signature(tmp_path):
    garbage = {"format": "ssh", "namespace": NAMESPACE_VERDICT,
               "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"}
    assert not verify(PAYLOAD, garbage, NAMESPACE_VERDICT, None).valid
    assert not verify(PAYLOAD, garbage, NAMESPACE_VERDICT, allowed_signers(tmp_path / "allowed")).valid


def test_a_missing_allowed_signers_file_never_means_anyone(alice, tmp_path):
    check = verify(PAYLOAD, sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT), NAMESPACE_VERDICT, tmp_path / "absent")
    assert not check.valid and "does not exist" in check.reason


def test_signing_with_a_missing_key_file_names_the_file(tmp_path):
    missing = tmp_path / "keys" / "nope"
    with pytest.raises(SigningError) as err:
        sign(SigningKey(str(missing), "alice@example.com", "git config aevolve.signingKey"), PAYLOAD, NAMESPACE_VERDICT)
    message = str(err.value)
    assert str(missing) in message and "git config aevolve.signingKey" in message
    assert "No such file or directory" in message


def test_a_passphrase_key_without_an_agent_fails_with_advice_instead_of_prompting(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    locked = make_key(tmp_path / "keys", "locked", passphrase="secret")
    with pytest.raises(SigningError) as err:
        sign(key_for(locked), PAYLOAD, NAMESPACE_VERDICT)
    assert "passphrase" in str(err.value) and "ssh-add" in str(err.value)


def test_no_ssh_keygen_on_path_says_to_install_openssh(alice, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SigningError, match="install OpenSSH"):
        sign(key_for(alice), PAYLOAD, NAMESPACE_VERDICT)


# -- which key: git config -----------------------------------------------------


def test_signing_key_comes_from_aevolve_signing_key_first(repo, alice, tmp_path):
    other = make_key(tmp_path / "keys", "other")
    git(repo.workdir, "config", "gpg.format", "ssh")
    git(repo.workdir, "config", "user.signingKey", str(other))
    git(repo.workdir, "config", "aevolve.signingKey", str(alice))
    git(repo.workdir, "config", "user.email", "alice@example.com")
    assert signing_key(repo) == SigningKey(str(alice), "alice@example.com", "git config aevolve.signingKey")


def test_signing_key_falls_back_to_gits_ssh_signing_key_with_home_expanded(repo, tmp_path):
    key = make_key(Path.home() / ".ssh", "id_ed25519")
    git(repo.workdir, "config", "gpg.format", "ssh")
    git(repo.workdir, "config", "user.signingKey", "~/.ssh/id_ed25519.pub")
    git(repo.workdir, "config", "user.name", "Alice")
    found = signing_key(repo)
    assert found == SigningKey(f"{key}.pub", "Alice", "git config user.signingKey")
    assert verify(PAYLOAD, sign(found, PAYLOAD, NAMESPACE_VERDICT), NAMESPACE_VERDICT, None).valid


def test_a_relative_key_path_is_taken_from_the_repository_top(repo, tmp_path):
    make_key(repo.workdir / "keys", "alice")
    git(repo.workdir, "config", "aevolve.signingKey", "keys/alice")
    assert signing_key(repo).path == str(repo.workdir / "keys" / "alice")


def test_signing_key_honours_command_line_config(repo, alice, monkeypatch):
    # `git -c aevolve.signingKey=... <hook>` reaches aevolve through GIT_CONFIG_PARAMETERS
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'aevolve.signingkey={alice}'")
    assert signing_key(repo).path == str(alice)


def test_user_signing_key_is_ignored_unless_gpg_format_is_ssh(repo, alice):
    git(repo.workdir, "config", "user.signingKey", str(alice))
    assert signing_key(repo) is None


def test_no_signing_key_configured_is_none(repo):
    assert signing_key(repo) is None


@pytest.fixture
def agent(monkeypatch):
    """A real ssh-agent of our own, on a short socket path (sun_path is 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="aevolve-agent-")
    sock = os.path.join(folder, "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline and proc.poll() is None, "ssh-agent did not start"
            time.sleep(0.01)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        yield sock
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("prefix", ["key::", ""])
def test_a_literal_public_key_signs_through_ssh_agent(repo, tmp_path, agent, prefix):
    key = make_key(tmp_path / "keys", "alice")
    subprocess.run(["ssh-add", "-q", str(key)], check=True, capture_output=True)
    key.unlink()  # only the agent holds the private half now
    git(repo.workdir, "config", "gpg.format", "ssh")
    git(repo.workdir, "config", "user.signingKey", prefix + public(key))
    found = signing_key(repo)
    assert Path(found.path).read_text().strip() == public(key)
    assert Path(found.path).stat().st_mode & 0o077 == 0  # private to the user
    signature = sign(found, PAYLOAD, NAMESPACE_APPROVAL)
    assert signature["key"] == fingerprint_of(key)
    assert verify(PAYLOAD, signature, NAMESPACE_APPROVAL, None).valid


# -- allowed signers: git config -----------------------------------------------


def test_allowed_signers_file_comes_from_aevolve_allowed_signers_first(repo, tmp_path):
    ours, gits = allowed_signers(tmp_path / "ours"), allowed_signers(tmp_path / "gits")
    git(repo.workdir, "config", "gpg.ssh.allowedSignersFile", str(gits))
    git(repo.workdir, "config", "aevolve.allowedSigners", str(ours))
    assert allowed_signers_file(repo) == ours


def test_allowed_signers_file_falls_back_to_gits_setting_relative_to_the_top(repo):
    allowed_signers(repo.workdir / "allowed_signers")
    git(repo.workdir, "config", "gpg.ssh.allowedSignersFile", "allowed_signers")
    assert allowed_signers_file(repo) == repo.workdir / "allowed_signers"


def test_allowed_signers_file_of_a_bare_repository_is_relative_to_its_git_dir(tmp_path):
    git(tmp_path, "init", "-q", "--bare", "server.git")
    bare = Repo.open(tmp_path / "server.git")
    allowed_signers(bare.aevolve_dir / "allowed_signers")
    git(bare.git_dir, "config", "aevolve.allowedSigners", "aevolve/allowed_signers")
    assert allowed_signers_file(bare) == bare.git_dir / "aevolve" / "allowed_signers"


def test_a_missing_configured_allowed_signers_file_is_an_error(repo, tmp_path):
    git(repo.workdir, "config", "aevolve.allowedSigners", str(tmp_path / "gone"))
    with pytest.raises(SigningError) as err:
        allowed_signers_file(repo)
    assert "aevolve.allowedSigners" in str(err.value) and str(tmp_path / "gone") in str(err.value)


def test_allowed_signers_file_is_none_when_unset(repo):
    assert allowed_signers_file(repo) is None


def test_a_literal_key_not_in_the_agent_fails_with_advice(repo, alice, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    git(repo.workdir, "config", "aevolve.signingKey", "key::" + public(alice))
    with pytest.raises(SigningError) as err:
        sign(signing_key(repo), PAYLOAD, NAMESPACE_VERDICT)
    assert "No private key found" in str(err.value) and "ssh-add" in str(err.value)
