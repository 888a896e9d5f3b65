"""Git hooks: install, remove and list the shims, and run the hook git calls.

Each installed hook is a few lines of sh (hooks/shim.sh) that exec
`<python> -m aevolve hook run --chain <hook>.local NAME ARGS...`; `run`
sends NAME to its checks: `aevolve.hook_checks` (client: pre-commit,
commit-msg, pre-push) or `aevolve.server_hook` (pre-receive on a bare
repository).

A hook the user already had is moved to `<name>.local` and run first; nothing
is overwritten. Client hooks are a convenience: the server hook and aevolve's
own commands are what actually enforce the rules.
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import AevolveError, UsageError
from .repo import Repo

CLIENT_HOOKS = ("pre-commit", "commit-msg", "pre-push")
SERVER_HOOKS = ("pre-receive",)
ALL_HOOKS = CLIENT_HOOKS + SERVER_HOOKS
MARKER = "# aevolve-managed hook"
CHAIN_SUFFIX = ".local"
BACKUP_SUFFIX = ".aevolve-backup"


# -- templates and places ------------------------------------------------------------


def template_dir() -> Path:
    """Shims ship in the wheel as aevolve/hooks_data; a source checkout has ../hooks."""
    packaged = Path(__file__).parent / "hooks_data"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "hooks"


def render_shim(name: str) -> str:
    import shlex
    import sys

    text = (template_dir() / "shim.sh").read_text()
    return text.replace("@PYTHON@", shlex.quote(sys.executable)).replace("@HOOK@", name)


def hooks_dir(repo: Repo) -> Path:
    """Where git looks for this repository's hooks (core.hooksPath respected)."""
    proc = repo.run_git(["rev-parse", "--git-path", "hooks"])
    path = Path(proc.stdout.strip())
    base = repo.workdir or repo.git_dir  # run_git's cwd: rev-parse answers relative to it
    return (path if path.is_absolute() else base / path).resolve()


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UninstallResult:
    hooks_dir: str
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # <name>.local moved back to <name>

    def to_dict(self) -> dict:
        return asdict(self)


def install(repo: Repo, *, server: bool = False, force: bool = False) -> InstallResult:
    """Install the client hooks (or, with server=True, pre-receive) into `repo`.

    All-or-nothing on conflicts: every hook is checked before any file moves.
    """
    if repo.workdir is None and not server:
        raise UsageError(
            f"{repo.git_dir} is a bare repository: client hooks need a working tree; "
            "install the server hook with `aevolve hooks install --server PATH`"
        )
    names = SERVER_HOOKS if server else CLIENT_HOOKS
    folder = hooks_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    result = InstallResult(hooks_dir=str(folder))
    blocked = []
    for name in names:
        path, local = folder / name, folder / (name + CHAIN_SUFFIX)
        if os.path.lexists(path) and not is_ours(path) and os.path.lexists(local):
            blocked.append(name)
    if blocked and not force:
        raise AevolveError(
            "cannot chain the existing hook(s) "
            + ", ".join(f"{folder / n} (its {n}{CHAIN_SUFFIX} already exists)" for n in blocked)
            + ": merge each into its .local file and run `aevolve hooks install` again, or rerun "
            f"with --force to set the hook aside as <name>{BACKUP_SUFFIX} (kept, no longer run); nothing was changed"
        )
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
        from .gitsetup import setup

        report = setup(repo)
        result.files, result.config = report.files, report.config
    return result


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


# -- running -------------------------------------------------------------------------


@dataclass
class HookOutcome:
    code: int = 0
    messages: list[str] = field(default_factory=list)  # for stderr, one line each

    @property
    def ok(self) -> bool:
        return self.code == 0


def main_branch_ref(cfg: dict) -> str:
    """The full ref of the configured main branch (aevolve.yaml `main`)."""
    name = cfg.get("main") or "main"
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def run(repo: Repo, name: str, args: list[str], stdin: str) -> HookOutcome:
    """aevolve's check for hook `name`, given git's arguments and stdin."""
    if name == "pre-receive":
        from .server_hook import pre_receive

        return pre_receive(repo, stdin)
    from . import hook_checks

    if name == "pre-commit":
        return hook_checks.pre_commit(repo)
    if name == "commit-msg":
        return hook_checks.commit_msg(repo, args[0])
    if name == "pre-push":
        return hook_checks.pre_push(repo, args[0] if args else "", stdin)
    raise UsageError(f"unknown hook {name!r}; aevolve runs {', '.join(ALL_HOOKS)}")


def run_chained(chain: str | None, args: list[str], stdin: bytes | None) -> int:
    """Run the user's own hook (<name>.local) first, as git would run a hook."""
    if not chain or not _executable(Path(chain)):
        return 0
    try:
        return subprocess.run([chain, *args], input=stdin).returncode
    except OSError as exc:
        if exc.errno != errno.ENOEXEC:  # git also falls back to sh for a script without #!
            raise
        return subprocess.run(["/bin/sh", chain, *args], input=stdin).returncode
