"""Git access: objects, trees, commits without a worktree, CAS refs, notes, lock.

pygit2 (libgit2) does object work in-process; the `git` command is used, one
process per batch, where it is the better tool (multi-ref transactions,
trailers, transport). See DESIGN.md §7 for the measurements behind that split.
Nothing here touches the user's working tree or index.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aevolve._errors import (
    AmbiguousRef,
    GitCommandFailed,
    LockBusy,
    NotARepository,
    RefMoved,
    RefNotFound,
)

if TYPE_CHECKING:
    import pygit2

MAIN = "refs/heads/main"
NOTES_REF = "refs/notes/aevolve"
APPROVALS_REF = "refs/notes/aevolve-approvals"  # signed approvals of maintainer changes
OBSERVATIONS_REF = "refs/aevolve/observations"
ZERO = "0" * 40

# git file modes (equal to pygit2.enums.FileMode's members, which are IntEnums);
# plain ints so that importing this module does not import pygit2 (~50 ms)
BLOB = 0o100644
BLOB_EXECUTABLE = 0o100755
TREE = 0o040000
LINK = 0o120000


@dataclass(frozen=True)
class TreeFile:
    """One file of a tree: its path, blob id (hex) and git file mode."""

    path: str
    oid: str
    mode: int


class Repo:
    """A git repository (bare or not) that holds an agent's state.

    `git` is the pygit2 repository, opened on first use: commands that only need
    the `git` command (validating a working tree) never pay for importing pygit2.
    """

    def __init__(self, git: pygit2.Repository | None = None, *, git_dir: str | os.PathLike | None = None,
                 workdir: str | os.PathLike | None = None):
        self._git = git
        if git is not None:
            self._git_dir = Path(git.path)
            self._workdir = Path(git.workdir) if git.workdir else None
        else:
            self._git_dir = Path(git_dir)
            self._workdir = Path(workdir) if workdir else None

    @property
    def git(self) -> pygit2.Repository:
        if self._git is None:
            import pygit2

            self._git = pygit2.Repository(str(self._git_dir))
        return self._git

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike = ".") -> Repo:
        fast = _discover_with_git(path)
        if fast is not None:
            return cls(git_dir=fast[0], workdir=fast[1])
        import pygit2

        found = pygit2.discover_repository(str(path))
        if found is None:
            raise NotARepository(
                f"{Path(path).resolve()} is not inside a git repository "
                "(run `aevolve init` to make it a state repository)"
            )
        return cls(pygit2.Repository(found))

    @property
    def git_dir(self) -> Path:
        return self._git_dir

    @property
    def workdir(self) -> Path | None:
        return self._workdir

    @property
    def aevolve_dir(self) -> Path:
        """Private folder under the git dir for caches and locks (never pushed)."""
        path = self.git_dir / "aevolve"
        path.mkdir(exist_ok=True)
        return path

    # -- reading -----------------------------------------------------------
    def resolve(self, rev: str) -> pygit2.Commit:
        """The commit `rev` names (a branch, tag, sha or any rev-parse expression)."""
        import pygit2

        self._refuse_ambiguous(rev)
        try:
            obj = self.git.revparse_single(rev)
            return obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            raise RefNotFound(f"unknown revision {rev!r}") from None

    def _refuse_ambiguous(self, rev: str) -> None:
        """A short name that is both a branch and a tag (say a tag `main`) is refused:
        git would warn and pick the tag, and the gate would judge the wrong commit."""
        if rev.startswith("refs/") or not rev or any(c in rev for c in "^~:@ "):
            return
        found = [f"{kind}{rev}" for kind in ("refs/heads/", "refs/tags/", "refs/remotes/")
                 if self.git.references.get(f"{kind}{rev}") is not None]
        if len(found) > 1:
            raise AmbiguousRef(f"{rev!r} is ambiguous: it names {' and '.join(found)}; "
                               f"say which (e.g. {found[0]}), or delete the stray {found[-1]}")

    def resolve_branch(self, name: str) -> str:
        """The commit a branch points at: `main` is always refs/heads/main, never a
        tag of that name; `origin/main` is the remote-tracking branch."""
        refs = [name] if name.startswith("refs/") else [f"refs/heads/{name}", f"refs/remotes/{name}"]
        target = next((t for t in map(self.ref_target, refs) if t is not None), None)
        if target is None:
            raise RefNotFound(f"no branch {name!r} ({' or '.join(refs)} does not exist)")
        return str(self.resolve(target).id)

    def try_resolve(self, rev: str) -> pygit2.Commit | None:
        try:
            return self.resolve(rev)
        except RefNotFound:
            return None

    def ref_target(self, name: str) -> str | None:
        """The hex id a ref points at, or None when it does not exist."""
        ref = self.git.references.get(name)
        if ref is None:
            return None
        return str(ref.resolve().target)

    def tree(self, rev_or_oid: str | pygit2.Oid) -> pygit2.Tree:
        import pygit2

        obj = self.git.get(rev_or_oid) if isinstance(rev_or_oid, pygit2.Oid) else None
        if obj is None and isinstance(rev_or_oid, str) and len(rev_or_oid) == 40:
            obj = self.git.get(rev_or_oid)
        if obj is None:
            obj = self.resolve(str(rev_or_oid))
        return obj.peel(pygit2.Tree)

    def read(self, tree: pygit2.Tree, path: str) -> bytes | None:
        """Bytes of the blob at `path` in `tree`, or None when absent."""
        try:
            entry = tree[path]
        except KeyError:
            return None
        if entry.type_str != "blob":
            return None
        return self.git[entry.id].data

    def blob(self, oid: str | pygit2.Oid) -> bytes:
        return self.git[oid].data

    def walk(self, tree: pygit2.Tree, prefix: str = "") -> Iterator[TreeFile]:
        """Every file below `tree`, depth first, with paths relative to its root
        (in-process: the right tool for a small subtree)."""
        for entry in tree:
            path = f"{prefix}{entry.name}"
            if entry.type_str == "tree":
                yield from self.walk(self.git[entry.id], path + "/")
            elif entry.type_str == "blob":
                yield TreeFile(path, str(entry.id), entry.filemode)
            # submodule entries ("commit") are not part of an agent's state

    def list_files(self, tree: pygit2.Tree) -> list[TreeFile]:
        """Every file of a whole state's tree, as `walk` gives them.

        One `git ls-tree -r` lists a 10,000-skill tree 2-3x faster than walking
        it object by object from Python.
        """
        out = self.run_git(["ls-tree", "-r", "-z", "--full-tree", str(tree.id)], input=b"").stdout
        files = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, oid = meta.split(b" ")
            if kind == b"blob":
                files.append(TreeFile(path.decode("utf-8", "surrogateescape"), oid.decode(), int(mode, 8)))
        return files

    # -- writing objects ---------------------------------------------------
    def build_tree(
        self,
        base: pygit2.Tree | None,
        edits: Mapping[str, bytes | None],
        modes: Mapping[str, int] | None = None,
    ) -> pygit2.Oid:
        """A new tree: `base` with each path set to its bytes, or removed for None.

        Only the trees on the edited paths are rewritten, so a one-file change in
        a 10,000-skill state costs a handful of object writes.
        """
        modes = modes or {}
        grouped: dict[str, dict[str, bytes | None]] = {}
        for path, data in edits.items():
            head, _, rest = path.partition("/")
            grouped.setdefault(head, {})[rest] = data
        builder = self.git.TreeBuilder(base) if base is not None else self.git.TreeBuilder()
        for name, sub in grouped.items():
            existing = base[name] if base is not None and name in base else None
            if "" in sub:  # a file at this level
                data = sub[""]
                if data is None:
                    if existing is not None:
                        builder.remove(name)
                else:
                    mode = modes.get(name, BLOB)
                    builder.insert(name, self.git.create_blob(data), mode)
                continue
            child_base = (
                self.git[existing.id] if existing is not None and existing.type_str == "tree" else None
            )
            child_modes = {k.partition("/")[2]: v for k, v in modes.items() if k.startswith(name + "/")}
            child = self.build_tree(child_base, sub, child_modes)
            if len(self.git[child]) == 0:
                if existing is not None:
                    builder.remove(name)
            else:
                builder.insert(name, child, TREE)
        return builder.write()

    def signature(self, role: str = "author") -> pygit2.Signature:
        """The identity git would use: GIT_AUTHOR_* / GIT_COMMITTER_* first (libgit2
        ignores them), then user.name/user.email, then a neutral one."""
        import pygit2

        prefix = "GIT_COMMITTER" if role == "committer" else "GIT_AUTHOR"
        name, email = os.environ.get(f"{prefix}_NAME"), os.environ.get(f"{prefix}_EMAIL")
        if not (name and email):
            try:
                default = self.git.default_signature
                name, email = name or default.name, email or default.email
            except (KeyError, pygit2.GitError):
                name, email = name or "aevolve", email or "aevolve@localhost"
        return pygit2.Signature(name, email)

    def commit(self, tree: pygit2.Oid, parents: list, message: str) -> pygit2.Oid:
        """Write a commit object; no ref moves (use create_ref / update_ref)."""
        import pygit2

        return self.git.create_commit(
            None, self.signature("author"), self.signature("committer"), message, tree,
            [pygit2.Oid(hex=str(p)) for p in parents],
        )

    # -- refs ----------------------------------------------------------------
    def create_ref(self, name: str, target: str | pygit2.Oid) -> None:
        """Create `name`; fails with RefMoved if it already exists.

        Through `git update-ref NAME NEW 0000...`, which checks "does not exist"
        under the ref's lock: libgit2 checks it before taking the lock, so two
        processes creating the same ref could both succeed, the second silently
        overwriting the first (measured: a lost note in an 8-process race).
        """
        proc = self.run_git(["update-ref", "-m", f"aevolve: create {name}", name, str(target), ZERO], check=False)
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if any(s in err for s in ("already exists", "cannot lock", "unable to lock", "but expected")):
                raise RefMoved(f"{name} already exists") from None
            raise GitCommandFailed(f"could not create {name}: {err}")

    def update_ref(self, name: str, new: str | pygit2.Oid, old: str | None) -> None:
        """Compare-and-swap: move `name` from `old` to `new` (old=None: create).

        libgit2 checks the on-disk value against `old` under the ref lock, so a
        concurrent writer makes this fail instead of being overwritten.
        """
        import pygit2

        if old is None or old == ZERO:
            self.create_ref(name, new)
            return
        ref = self.git.references.get(name)
        if ref is None or str(ref.target) != str(old):
            raise RefMoved(f"{name} moved (expected {str(old)[:12]})")
        try:
            # libgit2 re-checks the old value under the ref's lock file (a CAS)
            ref.set_target(pygit2.Oid(hex=str(new)), f"aevolve: update {name}")
        except (pygit2.GitError, OSError) as exc:  # lost the race, or the lock is held
            raise RefMoved(f"{name} moved while updating it ({exc})") from None

    def transaction(self, updates: list[tuple[str, str, str | None]]) -> None:
        """Move several refs atomically: each (ref, new, old) all or none.

        Uses `git update-ref --stdin` with start/prepare/commit: git locks every
        ref, checks every old value, then commits. `new` = ZERO deletes;
        `old` = None or ZERO requires the ref not to exist.
        """
        lines = ["start"]
        for name, new, old in updates:
            lines.append(f"update {name} {new} {old or ZERO}")
        lines += ["prepare", "commit", ""]
        proc = self.run_git(["update-ref", "--stdin"], input="\n".join(lines), check=False)
        if proc.returncode != 0:
            raise RefMoved(
                "refs moved concurrently, nothing was changed: " + proc.stderr.strip()
            )

    def refs(self, prefix: str) -> dict[str, str]:
        """Every ref under `prefix` mapped to its target (hex)."""
        import pygit2

        out = {}
        for name in self.git.references:
            if name.startswith(prefix):
                ref = self.git.references[name]
                if ref.type == pygit2.enums.ReferenceType.DIRECT:
                    out[name] = str(ref.target)
        return out

    # -- notes ---------------------------------------------------------------
    def read_note(self, commit: str, ref: str = NOTES_REF) -> bytes | None:
        """The note attached to `commit` under `ref`, or None."""
        try:
            note = self.git.lookup_note(str(commit), ref)
        except KeyError:
            return None
        return self.git[note.id].data

    def write_note(
        self, commit: str, data: bytes, ref: str = NOTES_REF, attempts: int = 50
    ) -> str:
        """Attach `data` as the note of `commit`, replacing any earlier one.

        Builds the notes commit from objects and compare-and-swaps `ref`, retrying
        on a lost race; `git notes add` from parallel processes loses notes.
        Returns the new notes commit id.
        """
        commit = str(commit)
        for attempt in range(attempts):
            old = self.ref_target(ref)
            new = self.note_commit(commit, data, old)
            try:
                self.update_ref(ref, new, old)
                return str(new)
            except RefMoved:
                time.sleep(min(0.2, 0.005 * (attempt + 1)))
        raise RefMoved(f"could not write note on {commit[:12]}: {ref} kept moving")

    def note_commit(self, commit: str, data: bytes, parent: str | None, ref: str = NOTES_REF) -> pygit2.Oid:
        """The notes commit that adds or replaces `commit`'s note on top of `parent`."""
        base = self.git[parent].tree if parent else None
        path = commit
        if base is not None and commit[:2] in base and base[commit[:2]].type_str == "tree":
            path = f"{commit[:2]}/{commit[2:]}"  # notes written by git with fan-out
        tree = self.build_tree(base, {path: data})
        return self.commit(tree, [parent] if parent else [], f"aevolve: note on {commit}\n")

    # -- git command ---------------------------------------------------------
    def run_git(
        self, args: list[str], input: str | bytes | None = None, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """Run `git` in this repository with an argv list (never a shell string)."""
        text = not isinstance(input, bytes)
        proc = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args],
            input=input,
            capture_output=True,
            text=text,
            cwd=str(self.workdir or self.git_dir),
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            err = proc.stderr if text else proc.stderr.decode(errors="replace")
            raise GitCommandFailed(f"git {' '.join(args[:2])} failed: {err.strip()}")
        return proc

    # -- lock ----------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str = "refs", timeout: float = 30.0) -> Iterator[None]:
        """An exclusive lock shared by every aevolve process on this repository.

        It orders aevolve's own multi-step updates; the ref CAS stays the real
        guarantee against other writers (plain git, a push).
        """
        path = self.aevolve_dir / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise LockBusy(
                            f"another aevolve process holds {path} (waited {timeout:.0f}s); retry later"
                        ) from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # closing releases the flock, also when the process dies


def _discover_with_git(path) -> tuple[str, str] | None:
    """(git dir, work tree) of the non-bare repository around `path`, found by one
    `git rev-parse`; None for anything unusual (bare, inside .git, not a repo), which
    Repo.open then leaves to libgit2's discovery."""
    try:
        proc = subprocess.run(["git", "rev-parse", "--absolute-git-dir", "--is-bare-repository", "--show-toplevel"],
                              cwd=str(path), capture_output=True, text=True)
    except OSError:  # no such folder, or no git: libgit2 explains
        return None
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 3 or lines[1] != "false" or not lines[2]:
        return None
    return lines[0], lines[2]


def short(oid: str | pygit2.Oid) -> str:
    return str(oid)[:12]
