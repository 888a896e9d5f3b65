"""Git hooks: install small shims, and the checks they run.

Each installed hook is a few lines of sh (hooks/shim.sh) that exec
`<python> -m aevolve hook run --chain <hook>.local NAME ARGS...`; everything
else is here, in Python:

- client: `pre-commit` (validate what is staged), `commit-msg` (evolution
  branches carry a rationale), `pre-push` (never push an ungated `main`);
- server: `pre-receive` on a bare repository (the rules a client can skip
  with --no-verify, enforced where nobody can).

A hook the user already had is moved to `<name>.local` and run first; nothing
is overwritten. Client hooks are a convenience: the server hook and aevolve's
own commands are what actually enforce the rules.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import config as config_mod
from .errors import AevolveError, UsageError
from .repo import MAIN, NOTES_REF, ZERO, Repo

CLIENT_HOOKS = ("pre-commit", "commit-msg", "pre-push")
SERVER_HOOKS = ("pre-receive",)
ALL_HOOKS = CLIENT_HOOKS + SERVER_HOOKS
MARKER = "# aevolve-managed hook"
CHAIN_SUFFIX = ".local"
BACKUP_SUFFIX = ".aevolve-backup"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


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


def _head_config(repo: Repo) -> dict:
    """The effective aevolve.yaml at HEAD (the index before the first commit)."""
    from .state import CONFIG_FILE, FileError, load_yaml

    data = None
    try:
        if not repo.git.head_is_unborn:
            data = repo.read(repo.tree("HEAD"), CONFIG_FILE)
        else:
            index = repo.git.index
            index.read()
            entry = index[CONFIG_FILE] if CONFIG_FILE in index else None
            data = repo.blob(entry.id) if entry is not None else None
        raw = load_yaml(data.decode("utf-8"), CONFIG_FILE) if data else {}
    except (FileError, UnicodeDecodeError, AevolveError):
        raw = {}  # a broken aevolve.yaml is pre-commit's to report, not a reason to crash here
    return config_mod.resolve(raw if isinstance(raw, dict) else {})


def _main_ref(cfg: dict) -> str:
    name = cfg.get("main") or "main"
    return name if name.startswith("refs/") else f"refs/heads/{name}"


# pre-commit ---------------------------------------------------------------------


def _staged_index(repo: Repo):
    """The index git is committing: GIT_INDEX_FILE when git set one (commit -a, commit PATH)."""
    import pygit2

    path = os.environ.get("GIT_INDEX_FILE")
    if path:
        index = pygit2.Index(str(Path(path).resolve()))
        index.read()
        return index
    index = repo.git.index
    index.read()
    return index


def pre_commit(repo: Repo) -> HookOutcome:
    """Validate the staged state, reporting problems only in what this commit changes.

    Only the changed files, plus the config, manifest and the whole folders of
    touched skills (for the layout rules), are validated; the validation cache
    makes unchanged files free.
    """
    from .repo import TreeFile
    from .state import CONFIG_FILE, MANIFEST_FILE, State
    from .validate import validate

    index = _staged_index(repo)
    files = {e.path: TreeFile(e.path, str(e.id), e.mode) for e in index}
    if repo.git.head_is_unborn:
        changed = set(files)
    else:
        diff = repo.tree("HEAD").diff_to_index(index)  # the Index may have no repo attached
        changed = set()
        for delta in diff.deltas:
            changed.add(delta.old_file.path)
            changed.add(delta.new_file.path)
    if not changed:
        return HookOutcome()
    skills = {p.split("/")[1] for p in changed if p.startswith("skills/") and p.count("/") >= 2}
    keep = {p for p in changed if p in files} | ({CONFIG_FILE, MANIFEST_FILE} & files.keys())
    keep |= {p for p in files if p.startswith("skills/") and p.count("/") >= 2 and p.split("/")[1] in skills}
    state = State({p: files[p] for p in keep}, lambda f: repo.blob(f.oid), "the index")
    report = validate(state, repo)

    def relevant(problem) -> bool:
        if problem.path.endswith("/"):  # a folder-level (layout) problem
            return any(p.startswith(problem.path) for p in changed)
        return problem.path in changed

    errors = [p for p in report.errors if relevant(p)]
    warnings = [p for p in report.warnings if relevant(p)]
    lines = [str(p) for p in errors + warnings]
    if not errors:
        return HookOutcome(0, lines)
    noun = "error" if len(errors) == 1 else "errors"
    lines.append(
        f"aevolve pre-commit: the staged state has {len(errors)} {noun}; fix the file(s), "
        "`git add` them and commit again (`git commit --no-verify` skips this check)"
    )
    return HookOutcome(1, lines)


# commit-msg ---------------------------------------------------------------------

_SCISSORS = " ------------------------ >8 ------------------------"


def _clean_message(repo: Repo, text: str) -> str:
    """The message as git will store it: comment lines and the scissors part removed."""
    char = "#"
    try:
        value = repo.git.config["core.commentChar"]
        if isinstance(value, str) and len(value) == 1:
            char = value
    except (KeyError, ValueError):
        pass
    out = []
    for line in text.splitlines():
        if line == char + _SCISSORS:
            break
        if line.startswith(char):
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"


_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]*:\s*$")


def section_text(message: str, name: str) -> str:
    """The text of section `name` ("Name:" then lines, or "Name: text"); empty when absent."""
    lines = message.splitlines()[1:]  # never the subject
    head = re.compile(rf"^{re.escape(name)}\s*:(.*)$", re.IGNORECASE)
    for i, line in enumerate(lines):
        match = head.match(line.strip())
        if not match:
            continue
        body = [match.group(1).strip()]
        for following in lines[i + 1:]:
            if _HEADER.match(following.strip()) or following.startswith("Aevolve-"):
                break
            body.append(following.strip())
        return "\n".join(b for b in body if b).strip()
    return ""


def missing_sections(message: str, required: list[str]) -> list[str]:
    from .rationale import parse_trailers

    trailers = {k.lower(): v for k, v in parse_trailers(message).items()}
    missing = []
    for name in required:
        if section_text(message, name):
            continue
        if trailers.get(f"aevolve-{name.lower()}", "").strip():  # e.g. Aevolve-Evidence: obs-1
            continue
        missing.append(name)
    return missing


def current_branch(repo: Repo) -> str | None:
    ref = repo.git.references.get("HEAD")
    if ref is None:
        return None
    target = ref.target
    return target if isinstance(target, str) else None  # detached HEAD: no branch


def commit_msg(repo: Repo, message_file: str) -> HookOutcome:
    cfg = _head_config(repo)
    hooks_cfg = cfg.get("hooks") or {}
    prefix = hooks_cfg.get("branch_prefix") or "evolve/"
    required = [str(s) for s in (hooks_cfg.get("rationale_sections") or [])]
    branch = current_branch(repo)
    if not branch or not branch.startswith("refs/heads/"):
        return HookOutcome()
    short = branch[len("refs/heads/"):]
    if not short.startswith(prefix) or not required:
        return HookOutcome()
    if (repo.git_dir / "MERGE_HEAD").exists():
        return HookOutcome()  # merging main into an evolution branch needs no new diagnosis
    try:
        text = Path(message_file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AevolveError(f"commit-msg: cannot read the message file {message_file}: {exc.strerror}") from None
    message = _clean_message(repo, text)
    missing = missing_sections(message, required)
    if not missing:
        return HookOutcome()
    lines = [
        f"aevolve commit-msg: commits on evolution branches ({prefix}*) need a rationale; "
        f"branch {short!r} is missing: {', '.join(missing)}.",
        "Add each as a section of the message body, e.g.:",
        "",
    ]
    for name in missing:
        lines += [f"    {name}:", f"    <{_hint(name)}>", ""]
    if any(n.lower() == "evidence" for n in missing):
        lines.append("Evidence may instead be a trailer: `Aevolve-Evidence: obs-1, obs-2`.")
    lines.append("(Sections required are set by hooks.rationale_sections in aevolve.yaml.)")
    return HookOutcome(1, lines)


def _hint(name: str) -> str:
    return {
        "diagnosis": "what went wrong, in which observations, and why",
        "evidence": "the observation ids or runs that show it",
        "change": "what this commit changes",
        "expected effect": "what should get better, and what must not change",
    }.get(name.lower(), "text")


# pre-push -----------------------------------------------------------------------


def parse_push_lines(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.append((parts[0], parts[1], parts[2], parts[3]))
    return out


def pre_push(repo: Repo, remote: str, stdin: str) -> HookOutcome:
    from .notes import gate_accepts

    main_ref = _main_ref(_head_config(repo))
    main = main_ref.removeprefix("refs/heads/")
    remote = remote or "origin"
    lines = []
    for local_ref, local_sha, remote_ref, _remote_sha in parse_push_lines(stdin):
        if remote_ref != main_ref:
            continue
        if local_sha == ZERO:
            lines.append(
                f"aevolve pre-push: refusing to delete {main} on {remote}: main is the agent's gated "
                "state and is never deleted."
            )
            continue
        # a note the remote already has (fetched into the tracking copy) counts too
        if gate_accepts(repo, local_sha) or _tracking_accepts(repo, remote, local_sha):
            continue
        subject = _subject(repo, local_sha)
        lines += [
            f"aevolve pre-push: refusing to push {main} at {local_sha[:12]} ({subject}) to {remote}: "
            f"it has no accepting gate note in {NOTES_REF}.",
            f"  Only gated commits may become {main}. Gate it (`aevolve gate {local_sha[:12]}`, or "
            "`aevolve gate --promote` on its evolution branch) so the gate notes it, then push "
            f"the commit with its note: `git push {remote} {main} {NOTES_REF}`.",
        ]
    return HookOutcome(1 if lines else 0, lines)


def _tracking_accepts(repo: Repo, remote: str, sha: str) -> bool:
    """A note the remote already has, fetched into refs/notes/remotes/<remote>/aevolve."""
    import pygit2

    from .notes import gate_accepts

    try:  # `remote` is a URL when pushing to one directly: no tracking ref then
        return gate_accepts(repo, sha, f"refs/notes/remotes/{remote}/aevolve")
    except (pygit2.InvalidSpecError, ValueError, pygit2.GitError):
        return False


def _subject(repo: Repo, sha: str) -> str:
    try:
        return repo.git[sha].message.splitlines()[0][:72]
    except (KeyError, ValueError, IndexError):
        return "?"


# pre-receive (server) -------------------------------------------------------------
# Inside pre-receive the pushed objects sit in a quarantine directory that only
# the `git` command knows about (GIT_QUARANTINE_PATH & co.), and refs still hold
# their old values: everything below reads through `git`, never pygit2.


def _cat_batch(repo: Repo, names: list[str]) -> list[bytes | None]:
    """Contents of each object name (`sha`, `rev:path`), None where missing; one process."""
    if not names:
        return []
    proc = repo.run_git(["cat-file", "--batch"], input=("\n".join(names) + "\n").encode(), check=False)
    out, pos, results = proc.stdout, 0, []
    for _ in names:
        nl = out.find(b"\n", pos)
        if nl < 0:
            results.append(None)
            continue
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) == 3 and header[2].isdigit():
            size = int(header[2])
            results.append(out[pos:pos + size])
            pos += size + 1
        else:
            results.append(None)
    return results


def _note_paths(commit: str) -> list[str]:
    # git notes trees use fan-out once they grow: ab/cdef..., ab/cd/ef...
    return [commit, f"{commit[:2]}/{commit[2:]}", f"{commit[:2]}/{commit[2:4]}/{commit[4:]}"]


def _accepting_note(repo: Repo, notes_commits: list[str], commit: str) -> bool:
    from .notes import is_accepting

    names = [f"{n}:{p}" for n in notes_commits if n and n != ZERO for p in _note_paths(commit)]
    for data in _cat_batch(repo, names):
        if data is None:
            continue
        try:
            report = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(report, dict) and is_accepting(report, commit):
            return True
    return False


def _is_ancestor(repo: Repo, old: str, new: str) -> bool:
    return repo.run_git(["merge-base", "--is-ancestor", old, new], check=False).returncode == 0


def _server_config(repo: Repo) -> dict:
    from .state import CONFIG_FILE, FileError, load_yaml

    data = _cat_batch(repo, [f"{MAIN}:{CONFIG_FILE}"])[0]
    try:
        raw = load_yaml(data.decode("utf-8"), CONFIG_FILE) if data else {}
    except (FileError, UnicodeDecodeError):
        raw = {}  # a broken config never weakens the always-protected paths
    return config_mod.resolve(raw if isinstance(raw, dict) else {})


_PROPOSAL = re.compile(rb"^Aevolve-Proposal\s*:", re.IGNORECASE | re.MULTILINE)


def _new_commits(repo: Repo, tips: list[str]) -> list[list[str]]:
    """[sha, parents...] of every commit reachable from `tips` that the repository lacks."""
    if not tips:
        return []
    proc = repo.run_git(["rev-list", "--parents", *tips, "--not", "--all"], check=False)
    return [line.split() for line in proc.stdout.splitlines() if line.strip()]


def _changed_paths(repo: Repo, sha: str, parents: list[str]) -> list[str]:
    base = parents[0] if parents else EMPTY_TREE  # a merge: what it brings onto its first parent
    proc = repo.run_git(["diff-tree", "-r", "-z", "--name-only", "--no-renames", base, sha], input=b"", check=False)
    return [p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p]


def pre_receive(repo: Repo, stdin: str) -> HookOutcome:
    updates = [(old, new, ref) for old, new, ref in (line.split()[:3] for line in stdin.splitlines() if len(line.split()) >= 3)]
    cfg = _server_config(repo)
    main_ref = _main_ref(cfg)
    main = main_ref.removeprefix("refs/heads/")
    lines: list[str] = []
    current_notes = repo.run_git(["rev-parse", "-q", "--verify", NOTES_REF], check=False).stdout.strip()
    pushed_notes = next((new for old, new, ref in updates if ref == NOTES_REF and new != ZERO), "")

    for old, new, ref in updates:
        if ref == NOTES_REF:
            if new == ZERO:
                lines.append(f"aevolve: refusing to delete {NOTES_REF}: the gate notes are the record of what was accepted.")
            elif old != ZERO and not _is_ancestor(repo, old, new):
                lines += [
                    f"aevolve: refusing a non-fast-forward update of {NOTES_REF}: gate notes are only ever added.",
                    f"  Fetch and merge them first: `git fetch origin` then "
                    f"`git notes --ref=aevolve merge -s theirs refs/notes/remotes/origin/aevolve`, and push again.",
                ]
            continue
        if ref != main_ref:
            continue
        if new == ZERO:
            lines.append(f"aevolve: refusing to delete {main}: it is the agent's gated state.")
            continue
        if old != ZERO and not _is_ancestor(repo, old, new):
            lines += [
                f"aevolve: refusing a non-fast-forward update of {main} ({old[:12]} -> {new[:12]}): "
                f"{main} only moves forward, to gated commits; history is never rewritten.",
                f"  Rebase your change onto the current {main} (`git pull --rebase`), gate it, and push again; "
                "to undo a change use `aevolve rollback REF`, which opens a new gated commit.",
            ]
            continue
        if old == ZERO:
            continue  # the first main is the baseline every later gate compares against
        if not _accepting_note(repo, [pushed_notes, current_notes], new):
            lines += [
                f"aevolve: refusing {main} at {new[:12]}: it has no accepting gate note "
                f"(looked in {NOTES_REF}{' as pushed' if pushed_notes else ''}).",
                f"  Gate the commit (`aevolve gate {new[:12]}`, or `aevolve gate --promote` on its branch), "
                f"then push it together with its note: `git push origin {main} {NOTES_REF}`.",
            ]

    tips = [new for old, new, ref in updates if new != ZERO and not ref.startswith("refs/notes/")]
    commits = _new_commits(repo, tips)
    if commits:
        bodies = _cat_batch(repo, [c[0] for c in commits])
        for (sha, *parents), body in zip(commits, bodies):
            if body is None:
                continue
            _, _, message = body.partition(b"\n\n")
            if not _PROPOSAL.search(message):
                continue
            touched = sorted(p for p in _changed_paths(repo, sha, parents) if config_mod.is_protected(p, cfg))
            if touched:
                shown = ", ".join(touched[:5]) + (f" and {len(touched) - 5} more" if len(touched) > 5 else "")
                lines += [
                    f"aevolve: refusing evolver commit {sha[:12]} ({_line1(message)}): it carries an "
                    f"Aevolve-Proposal trailer and touches protected path(s): {shown}.",
                    "  Evolvers may not edit evals/, aevolve.yaml or other protected paths (protection.protected "
                    f"in {main}'s aevolve.yaml). Drop those edits from the proposal; a person changes "
                    "them in an ordinary commit without the trailer.",
                ]
    if lines:
        lines.append("aevolve: the whole push was refused; nothing was updated.")
    return HookOutcome(1 if lines else 0, lines)


def _line1(message: bytes) -> str:
    first = message.decode("utf-8", "replace").strip().splitlines()
    return first[0][:72] if first else "?"


# textconv for `git diff` of memory JSONL -------------------------------------------


def textconv_jsonl(data: bytes) -> str:
    """One record per line, keys sorted with `id` first, records sorted by id.

    `git diff` then shows a changed record as one changed line and ignores
    reordering; lines that are not JSON objects are kept, after the records.
    """
    from .state import record_key

    records, other = [], []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            ordered = {"id": value["id"]} if "id" in value else {}
            ordered.update({k: value[k] for k in sorted(value) if k != "id"})
            records.append((record_key(value), json.dumps(ordered, ensure_ascii=False, sort_keys=False)))
        else:
            other.append(line.rstrip())
    records.sort(key=lambda r: r[0])
    return "".join(text + "\n" for _, text in records) + "".join(line + "\n" for line in other)
