"""SSH signatures over aevolve's own statements (gate verdicts, approvals).

The same machinery git uses for `gpg.format ssh`: `ssh-keygen -Y sign` with the
user's signing key, and verification against an allowed_signers file (the
format of `gpg.ssh.allowedSignersFile`). Each kind of statement has its own
namespace, so a signature over one can never be replayed as the other.

Signing reads the repository's git config; `verify` is a pure function (no
repository), so the server's pre-receive hook can call it on pushed data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aevolve._errors import SigningError

if TYPE_CHECKING:
    from aevolve._git.repo import Repo

NAMESPACE_VERDICT = "aevolve-verdict"
NAMESPACE_APPROVAL = "aevolve-approval"

TIMEOUT = 30.0  # seconds; an agent asking for confirmation (ssh-add -c) must not hang a gate forever
ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_GOOD = re.compile(r"^Good \".*\" signature .*with \S+ key (SHA256:\S+)", re.MULTILINE)
_FINGERPRINT = re.compile(r"(SHA256:\S+)")
NO_SSH_KEYGEN = "ssh-keygen was not found on PATH: install OpenSSH (8.1 or later) to sign and verify"


def canonical(obj) -> bytes:
    """The one byte form a statement is signed in: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- which key -----------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    path: str  # what `ssh-keygen -Y sign -f` gets: a private key, or a public key whose private half is in ssh-agent
    identity: str  # the signer's git identity (user.email, else user.name), recorded in signatures
    source: str  # where it came from, for messages: "git config aevolve.signingKey" / "git config user.signingKey"


def _config(repo: Repo) -> dict[str, str]:
    """Every config value git sees here (local, global, system, `-c`), last one wins.

    One `git config --list` instead of one process per key; names come back
    with section and key lower-cased.
    """
    return {key: values[-1] for key, values in repo.config_list().items()}


def _top(repo: Repo) -> Path:
    """The folder relative config paths are taken from: the work tree, or the git dir of a bare repo."""
    return repo.workdir or repo.git_dir


def _config_path(repo: Repo, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return Path(os.path.normpath(path if path.is_absolute() else _top(repo) / path))


def _identity(repo: Repo, config: dict[str, str]) -> str:
    if config.get("user.email"):
        return config["user.email"]
    if config.get("user.name"):
        return config["user.name"]
    # neither configured: the identity git itself would commit with (GIT_COMMITTER_*, EMAIL, host)
    return repo.committer_email() or "unknown"


def _literal_key_file(repo: Repo, literal: str) -> str:
    """Write a public key given literally in config to a private file ssh-keygen can read.

    Named by its content, so the same key reuses one file; the private half is
    expected in ssh-agent, as with git's own `key::` values.
    """
    folder = repo.aevolve_dir / "signing-keys"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / (hashlib.sha256(literal.encode()).hexdigest()[:16] + ".pub")
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")  # mode 0600
        with os.fdopen(fd, "w") as handle:
            handle.write(literal.strip() + "\n")
        os.replace(tmp, path)
    return str(path)


def signing_key(repo: Repo) -> SigningKey | None:
    """The key aevolve signs with here: `aevolve.signingKey`, else git's own SSH
    signing key (`user.signingKey` when `gpg.format` is `ssh`); None when neither."""
    config = _config(repo)
    if config.get("aevolve.signingkey"):
        value, source = config["aevolve.signingkey"], "git config aevolve.signingKey"
    elif config.get("gpg.format", "").lower() == "ssh" and config.get("user.signingkey"):
        value, source = config["user.signingkey"], "git config user.signingKey"
    else:
        return None
    value = value.strip()
    if value.startswith("key::"):
        path = _literal_key_file(repo, value[len("key::"):])
    elif value.startswith("ssh-"):  # git accepts a bare public key literal too
        path = _literal_key_file(repo, value)
    else:
        path = str(_config_path(repo, value))
    return SigningKey(path=path, identity=_identity(repo, config), source=source)


# -- signing -------------------------------------------------------------------


def _ssh_keygen(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    """Run ssh-keygen without a terminal: a passphrase prompt can never reach the
    user's tty (new session, no askpass) and fails instead of hanging."""
    env = {**os.environ, "SSH_ASKPASS_REQUIRE": "never"}
    try:
        return subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True,
                              timeout=TIMEOUT, env=env, start_new_session=True)
    except FileNotFoundError:
        raise SigningError(NO_SSH_KEYGEN) from None
    except subprocess.TimeoutExpired:
        raise SigningError(f"ssh-keygen {' '.join(args[:2])} did not finish within {TIMEOUT:.0f}s") from None


def _complaint(proc: subprocess.CompletedProcess) -> str:
    """ssh-keygen's own words, without its prompts and progress lines."""
    text = proc.stderr.decode(errors="replace").replace("Enter passphrase: ", "")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Signing data")]
    return "; ".join(lines) or f"exit status {proc.returncode}"


def _sign_hint(complaint: str) -> str:
    if "passphrase" in complaint:
        return " (the key has a passphrase: load it into ssh-agent with `ssh-add`, then retry)"
    if "No private key found" in complaint:
        return " (a public key signs only when its private half is beside it or loaded with `ssh-add`)"
    if "No such file" in complaint:
        return " (point the setting at an existing key, e.g. ~/.ssh/id_ed25519.pub)"
    return ""


def fingerprint(key_path: str) -> str:
    """The `SHA256:...` fingerprint of the public key at (or beside) `key_path`."""
    proc = _ssh_keygen(["-l", "-E", "sha256", "-f", key_path])
    match = _FINGERPRINT.search(proc.stdout.decode(errors="replace"))
    if proc.returncode != 0 or match is None:
        raise SigningError(f"could not read the public key of {key_path}: {_complaint(proc)}")
    return match.group(1)


def sign(key: SigningKey, payload: bytes, namespace: str) -> dict:
    """An SSH signature of `payload` in `namespace`, as stored beside a statement."""
    proc = _ssh_keygen(["-Y", "sign", "-f", key.path, "-n", namespace], stdin=payload)
    armored = proc.stdout.decode(errors="replace")
    if proc.returncode != 0 or ARMOR_BEGIN not in armored:
        complaint = _complaint(proc)
        raise SigningError(
            f"could not sign with {key.path} (from {key.source}): {complaint}{_sign_hint(complaint)}"
        )
    return {
        "format": "ssh",
        "namespace": namespace,
        "signer": key.identity,
        "key": fingerprint(key.path),
        "signature": armored,
    }


# -- verifying -----------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    valid: bool
    principal: str | None  # the allowed_signers principal that matched (None without an allowed_signers file)
    fingerprint: str | None  # "SHA256:..." of the key that made the signature (ssh-keygen's word)
    signer: str | None  # the identity the signature claims; trusted only when principal is set
    reason: str  # "good signature by ..." or why not


def _malformed(signature) -> str | None:
    """Why `signature` is not a signature dict we can check, or None."""
    if signature is None:
        return "not signed"
    if not isinstance(signature, dict):
        return "malformed signature"
    if signature.get("format") != "ssh" or not isinstance(signature.get("namespace"), str):
        return "malformed signature"
    armored = signature.get("signature")
    if not isinstance(armored, str) or ARMOR_BEGIN not in armored:
        return "malformed signature"
    return None


def _claimed(signature: dict) -> str | None:
    signer = signature.get("signer")
    return signer if isinstance(signer, str) and signer else None


def verify(payload: bytes, signature: dict | None, namespace: str,
           allowed_signers: str | os.PathLike | None) -> Verification:
    """Check `signature` over `payload` in `namespace`.

    With `allowed_signers`, only a key listed there (for this namespace, as
    ssh-keygen judges the file's patterns and options) is valid; without it,
    any cryptographically valid signature is. Raises SigningError only when
    ssh-keygen itself cannot run.
    """
    problem = _malformed(signature)
    if problem or not isinstance(signature, dict):  # the second test only narrows the type for mypy
        return Verification(False, None, None, None, problem or "malformed signature")
    signer = _claimed(signature)
    if signature["namespace"] != namespace:
        return Verification(False, None, None, signer,
                            f"signature is for {signature['namespace']!r}, not {namespace!r}")
    if allowed_signers is not None and not Path(allowed_signers).is_file():
        return Verification(False, None, None, signer, f"allowed signers file {allowed_signers} does not exist")
    with tempfile.TemporaryDirectory(prefix="aevolve-sig-") as folder:
        sigfile = os.path.join(folder, "payload.sig")
        with open(sigfile, "w") as handle:
            handle.write(signature["signature"])
        if allowed_signers is None:
            return _check_novalidate(payload, sigfile, namespace, signer)
        return _verify_allowed(payload, sigfile, namespace, signer, str(allowed_signers))


def _check_novalidate(payload: bytes, sigfile: str, namespace: str, signer: str | None) -> Verification:
    proc = _ssh_keygen(["-Y", "check-novalidate", "-n", namespace, "-s", sigfile], stdin=payload)
    good = _GOOD.search(proc.stdout.decode(errors="replace"))
    if proc.returncode != 0 or good is None:
        return Verification(False, None, None, signer, f"bad signature: {_complaint(proc)}")
    fp = good.group(1)
    return Verification(True, None, fp, signer,
                        f"good signature by {signer or 'an unnamed signer'} ({fp}); "
                        "identity not checked: no allowed signers list")


def _verify_allowed(payload: bytes, sigfile: str, namespace: str, signer: str | None,
                    allowed: str) -> Verification:
    found = _ssh_keygen(["-Y", "find-principals", "-s", sigfile, "-f", allowed])
    principals = [line for line in found.stdout.decode(errors="replace").splitlines() if line.strip()]
    if found.returncode != 0 or not principals:
        return Verification(False, None, None, signer, f"signed by a key not in {allowed}")
    # find-principals names only the first line listing the key, maybe a pattern
    # ("*@example.com"); the identity the signature claims, when ssh-keygen accepts
    # it for this key and namespace, is the more precise principal, so try it first
    if signer and not any(c.isspace() for c in signer):
        principals = [signer, *(p for p in principals if p != signer)]
    complaint = ""
    for principal in principals:
        proc = _ssh_keygen(["-Y", "verify", "-f", allowed, "-I", principal, "-n", namespace, "-s", sigfile],
                           stdin=payload)
        good = _GOOD.search(proc.stdout.decode(errors="replace"))
        if proc.returncode == 0 and good is not None:
            fp = good.group(1)
            return Verification(True, principal, fp, signer, f"good signature by {principal} ({fp})")
        complaint = _complaint(proc)  # the last try is a principal the key is listed under: its reason matters
    return Verification(False, None, None, signer, f"bad signature (checked against {allowed}): {complaint}")


def allowed_signers_file(repo: Repo) -> Path | None:
    """The allowed_signers file configured here: `aevolve.allowedSigners`, else git's
    `gpg.ssh.allowedSignersFile`; None when neither is set.

    A configured file that does not exist is an error, never "anyone may sign".
    """
    config = _config(repo)
    for key, name in (("aevolve.allowedsigners", "aevolve.allowedSigners"),
                      ("gpg.ssh.allowedsignersfile", "gpg.ssh.allowedSignersFile")):
        value = config.get(key, "").strip()
        if value:
            path = _config_path(repo, value)
            if not path.is_file():
                raise SigningError(
                    f"git config {name} names {path}, which does not exist: "
                    "create it (one `PRINCIPAL ssh-ed25519 AAAA...` line per signer) or unset the setting"
                )
            return path
    return None
