"""Git hooks: install, remove and list the shims.

Each installed hook is a few lines of sh (hooks/shim.sh) that exec
`<python> -m aevolve hook run --chain <hook>.local NAME ARGS...`; running it
is `aevolve._hooks.dispatch`'s job, which sends NAME to its checks:
`aevolve._hooks.client` (pre-commit, commit-msg, pre-push) or
`aevolve._hooks.server` (pre-receive on a bare repository).

A hook the user already had is moved to `<name>.local` and run first; nothing
is overwritten. Client hooks are a convenience: the server hook and aevolve's
own commands are what actually enforce the rules. A server installed with an
allowed signers list keeps its own copy of it and admits only signed verdicts.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aevolve._errors import AevolveError, InvalidInput, UsageError
from aevolve._git.repo import Repo

CLIENT_HOOKS = ("pre-commit", "commit-msg", "pre-push")
SERVER_HOOKS = ("pre-receive",)
ALL_HOOKS = CLIENT_HOOKS + SERVER_HOOKS
MARKER = "# aevolve-managed hook"
CHAIN_SUFFIX = ".local"
BACKUP_SUFFIX = ".aevolve-backup"


# -- templates and places ------------------------------------------------------------


def template_dir() -> Path:
    """Shims ship in the wheel as aevolve/hooks_data; a source checkout has ../hooks."""
    package = Path(__file__).resolve().parents[1]  # aevolve/
    packaged = package / "hooks_data"
    return packaged if packaged.is_dir() else package.parent / "hooks"


def render_shim(name: str) -> str:
    import shlex
    import sys

    text = (template_dir() / "shim.sh").read_text()
    return text.replace("@PYTHON@", shlex.quote(sys.executable)).replace("@HOOK@", name)


def hooks_dir(repo: Repo) -> Path:
    """Where git looks for this repository's hooks (core.hooksPath respected)."""
    return repo.hooks_dir()


def is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return MARKER.encode() in head


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# -- install / uninstall / list ------------------------------------------------------


@dataclass
class HookInfo:
    name: str
    path: str
    status: str  # "aevolve" (our shim), "other" (someone else's hook), "absent"
    chained: str | None = None  # the <name>.local our shim runs first, when present


@dataclass
class InstallResult:
    hooks_dir: str
    written: list[str] = field(default_factory=list)  # shims written or refreshed
    unchanged: list[str] = field(default_factory=list)
    chained: list[str] = field(default_factory=list)  # user hooks moved to <name>.local
    backed_up: dict[str, str] = field(default_factory=dict)  # --force: hook -> backup file
    files: list[str] = field(default_factory=list)  # state files gitsetup added (.gitattributes)
    config: list[str] = field(default_factory=list)  # repo config lines gitsetup added
    allowed_signers: str | None = None  # --allowed-signers: the copy the server hook verifies against
    signer_keys: int = 0  # how many keys that copy lists

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UninstallResult:
    hooks_dir: str
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # <name>.local moved back to <name>

    def to_dict(self) -> dict:
        return asdict(self)


def install(repo: Repo, *, server: bool = False, force: bool = False,
            allowed_signers: str | os.PathLike | None = None) -> InstallResult:
    """Install the client hooks (or, with server=True, pre-receive) into `repo`.

    All-or-nothing on conflicts: every hook is checked before any file moves.
    With `allowed_signers` (server only) the file is checked first, then copied
    into the repository: from then on main admits only signed verdicts.
    """
    if repo.workdir is None and not server:
        raise UsageError(
            f"{repo.git_dir} is a bare repository: client hooks need a working tree; "
            "install the server hook with `aevolve hooks install --server PATH`"
        )
    if allowed_signers is not None and not server:
        raise UsageError("--allowed-signers goes with --server: it sets which keys the server's "
                         "pre-receive hook accepts on gate verdicts")
    signers = read_allowed_signers(Path(allowed_signers)) if allowed_signers is not None else None
    names = SERVER_HOOKS if server else CLIENT_HOOKS
    folder = hooks_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    result = InstallResult(hooks_dir=str(folder))
    if not force:
        _check_chainable(folder, names)
    for name in names:
        path, local = folder / name, folder / (name + CHAIN_SUFFIX)
        shim = render_shim(name)
        if os.path.lexists(path) and not is_ours(path):
            if os.path.lexists(local):  # only reachable with --force
                backup = _free_name(folder / (name + BACKUP_SUFFIX))
                os.rename(path, backup)
                result.backed_up[name] = str(backup)
            else:
                os.rename(path, local)
                result.chained.append(name)
        if path.exists() and path.read_text(errors="replace") == shim and _executable(path):
            result.unchanged.append(name)
            continue
        tmp = folder / f".{name}.aevolve-tmp"
        tmp.write_text(shim)
        tmp.chmod(0o755)
        os.replace(tmp, path)  # atomic: git never runs a half-written hook
        result.written.append(name)
    if not server:
        from aevolve._state.gitsetup import setup

        report = setup(repo)
        result.files, result.config = report.files, report.config
    if signers is not None:
        result.allowed_signers = str(store_allowed_signers(repo, signers.text))
        result.signer_keys = signers.keys
    return result


def _check_chainable(folder: Path, names: tuple[str, ...]) -> None:
    """Refuse, before any file moves, when a foreign hook cannot be moved to <name>.local."""
    blocked = []
    for name in names:
        path, local = folder / name, folder / (name + CHAIN_SUFFIX)
        if os.path.lexists(path) and not is_ours(path) and os.path.lexists(local):
            blocked.append(name)
    if blocked:
        raise AevolveError(
            "cannot chain the existing hook(s) "
            + ", ".join(f"{folder / n} (its {n}{CHAIN_SUFFIX} already exists)" for n in blocked)
            + ": merge each into its .local file and run `aevolve hooks install` again, or rerun "
            f"with --force to set the hook aside as <name>{BACKUP_SUFFIX} (kept, no longer run); nothing was changed"
        )


# -- the server's allowed signers ------------------------------------------------------

ALLOWED_SIGNERS_KEY = "aevolve.allowedSigners"
ALLOWED_SIGNERS_FILE = "allowed_signers"  # under <git-dir>/aevolve/
_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')


@dataclass
class AllowedSigners:
    text: str
    keys: int  # lines that name a usable public key


def _is_key(kind: str, data: str) -> bool:
    """`data` is the base64 public key blob of type `kind` (the blob starts with its type)."""
    import base64
    import binascii

    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    size = int.from_bytes(blob[:4], "big")
    return len(blob) > 4 + size and blob[4:4 + size] == kind.encode()


def _signer_line_ok(line: str) -> bool:
    """`principals [options] keytype base64 [comment]`, as ssh-keygen(1) ALLOWED SIGNERS reads it."""
    tokens = _TOKEN.findall(line)
    return any(tok in _KEY_TYPES and i >= 1 and i + 1 < len(tokens) and _is_key(tok, tokens[i + 1])
               for i, tok in enumerate(tokens))


def read_allowed_signers(path: Path) -> AllowedSigners:
    """Check an allowed_signers file: readable, and every non-comment line names a key.

    ssh-keygen silently skips a line it cannot parse, so a mistyped key would
    quietly drop a signer: such a file is refused, naming the line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"--allowed-signers {path}: cannot read it ({why}); nothing was installed") from None
    keys, bad = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _signer_line_ok(line):
            keys += 1
        else:
            bad.append(number)
    if bad:
        raise InvalidInput(
            f"--allowed-signers {path}:{bad[0]}: not an allowed_signers line "
            "(`PRINCIPAL [OPTIONS] KEYTYPE BASE64KEY`, e.g. `alice@example.com ssh-ed25519 AAAA...`)"
            + (f"; also line(s) {', '.join(map(str, bad[1:6]))}" if len(bad) > 1 else "")
            + "; nothing was installed")
    if not keys:
        raise InvalidInput(f"--allowed-signers {path}: it lists no key (each line is "
                           "`PRINCIPAL [OPTIONS] KEYTYPE BASE64KEY`); nothing was installed")
    return AllowedSigners(text, keys)


def store_allowed_signers(repo: Repo, text: str) -> Path:
    """Copy the list into the repository (the hook never depends on a path outside it)
    and point `aevolve.allowedSigners` at the copy; a new list replaces the old one."""
    target = repo.aevolve_dir / ALLOWED_SIGNERS_FILE
    tmp = target.with_name(f".{ALLOWED_SIGNERS_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)  # a push being checked reads the old list or the new, never half of one
    repo.set_config(ALLOWED_SIGNERS_KEY, str(target.resolve()))
    return target.resolve()


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def uninstall(repo: Repo) -> UninstallResult:
    """Remove aevolve's shims; a chained <name>.local becomes <name> again."""
    folder = hooks_dir(repo)
    result = UninstallResult(hooks_dir=str(folder))
    for name in ALL_HOOKS:
        path, local = folder / name, folder / (name + CHAIN_SUFFIX)
        if not is_ours(path):
            continue
        path.unlink()
        result.removed.append(name)
        if os.path.lexists(local):
            os.rename(local, path)
            result.restored.append(name)
    return result


def list_hooks(repo: Repo) -> list[HookInfo]:
    folder = hooks_dir(repo)
    out = []
    for name in ALL_HOOKS:
        path, local = folder / name, folder / (name + CHAIN_SUFFIX)
        if is_ours(path):
            status = "aevolve"
        elif os.path.lexists(path):
            status = "other"
        else:
            status = "absent"
        chained = str(local) if status == "aevolve" and os.path.lexists(local) else None
        out.append(HookInfo(name, str(path), status, chained))
    return out
