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
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from aevolve._errors import (
    AmbiguousRef,
    GitCommandFailed,
    LockBusy,
    NotARepository,
    PatchDoesNotApply,
    RefMoved,
    RefNotFound,
    StaleLock,
    StorageError,
)

if TYPE_CHECKING:
    import pygit2

MAIN = "refs/heads/main"
NOTES_REF = "refs/notes/aevolve"
APPROVALS_REF = "refs/notes/aevolve-approvals"  # signed approvals of maintainer changes
OBSERVATIONS_REF = "refs/aevolve/observations"
ZERO = "0" * 40
PROPOSAL_ID = re.compile(r"p-[0-9a-z]{8}")  # the Aevolve-Proposal trailer's value

# git file modes (equal to pygit2.enums.FileMode's members, which are IntEnums);
# plain ints so that importing this module does not import pygit2 (~50 ms)
BLOB = 0o100644
BLOB_EXECUTABLE = 0o100755
TREE = 0o040000
LINK = 0o120000

BIG_LOOSE_BLOB = 1 << 20  # compressed bytes from which Repo.blob asks `git cat-file` rather than libgit2

# A ref lock held by a live git lasts milliseconds; one this old was left by a process that died.
STALE_LOCK_SECONDS = 2.0


def note_paths(commit: str) -> list[str]:
    """Where git may keep `commit`'s note in a notes tree, the layout aevolve writes
    first: fanned out (`ab/cdef...`, what git uses once a notes tree grows), flat
    (older aevolve, and git on a small tree), or two levels deep (`ab/cd/ef...`)."""
    return [f"{commit[:2]}/{commit[2:]}", commit, f"{commit[:2]}/{commit[2:4]}/{commit[4:]}"]



@dataclass(frozen=True)
class TreeFile:
    """One file of a tree: its path, blob id (hex) and git file mode."""

    path: str
    oid: str
    mode: int


# origin URLs of the hosts whose commit pages we know how to link
_WEB_REMOTE = re.compile(r"^(?:https://|ssh://git@|git@)(?P<host>github\.com|gitlab\.com)[:/]"
                         r"(?P<path>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+)/?$")

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
            if git_dir is None:
                raise ValueError("Repo needs a pygit2 repository or a git_dir")
            self._git_dir = Path(git_dir)
            self._workdir = Path(workdir) if workdir else None
        self.opened_from: str | None = None  # the folder `open` discovered it from (early.take)

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
            repo = cls(git_dir=fast[0], workdir=fast[1])
            repo.opened_from = str(path)
            return repo
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
    def common_dir(self) -> Path:
        """The folder every worktree shares (refs, objects): the git dir itself,
        except in a linked worktree, whose git dir is .git/worktrees/NAME."""
        try:
            shared = (self.git_dir / "commondir").read_text().strip()
        except OSError:
            return self.git_dir
        path = Path(shared)
        return (path if path.is_absolute() else self.git_dir / path).resolve()

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
            pass
        if PROPOSAL_ID.fullmatch(rev):  # last in the chain: a branch or sha of that name wins
            found = self.proposal_branches(rev)
            commits = sorted({commit for _ref, commit in found})
            if len(commits) == 1:
                return self.git[commits[0]].peel(pygit2.Commit)
            if len(commits) > 1:
                names = ", ".join(f"{ref.removeprefix('refs/heads/')} ({commit[:12]})" for ref, commit in found)
                raise AmbiguousRef(f"proposal {rev} is the tip of several different commits: {names}; "
                                   "name the branch instead")
        raise RefNotFound(f"unknown revision {rev!r}")

    def proposal_branches(self, proposal: str) -> list[tuple[str, str]]:
        """(ref, tip) of the evolution branches whose tip carries `Aevolve-Proposal:
        proposal`: the local ones when any does, else the remote-tracking ones (a
        rebase moves the local branch before the remote copy follows)."""
        trailer = re.compile(rf"^Aevolve-Proposal:[ \t]*{re.escape(proposal)}[ \t]*$", re.MULTILINE)
        local: list[tuple[str, str]] = []
        remote: list[tuple[str, str]] = []
        for name in self.git.references:
            home = local if name.startswith("refs/heads/evolve/") else remote
            if home is remote and not (name.startswith("refs/remotes/") and "/evolve/" in name):
                continue
            target = self.ref_target(name)
            obj = self.git.get(target) if target else None
            message = getattr(obj, "message", None)
            if isinstance(message, str) and trailer.search(message):
                home.append((name, str(target)))
        return sorted(local or remote)

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

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """Is `ancestor` `commit` itself or one of its ancestors?"""
        return str(ancestor) == str(commit) or self.git.descendant_of(str(commit), str(ancestor))

    def merge_base(self, a: str, b: str) -> str | None:
        base = self.git.merge_base(str(a), str(b))
        return str(base) if base is not None else None

    def message(self, rev: str) -> str:
        """The full message of the commit `rev` names."""
        return self.resolve(rev).message

    def subject(self, rev: str, limit: int = 72) -> str:
        """The first line of `rev`'s message, cut to `limit` ("?" when there is none)."""
        try:
            lines = self.message(rev).splitlines()
        except RefNotFound:
            return "?"
        return lines[0][:limit] if lines else "?"

    @property
    def head_is_unborn(self) -> bool:
        return self.git.head_is_unborn

    def head_branch(self) -> str | None:
        """The full name of the branch HEAD names, born or not (None when detached)."""
        ref = self.git.references.get("HEAD")
        target = ref.target if ref is not None else None
        return target if isinstance(target, str) and target.startswith("refs/heads/") else None

    def config_value(self, key: str) -> str | None:
        """A git config value as this repository sees it (local, global, -c), or None."""
        proc = self.run_git(["config", "--get", key], check=False)
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else None

    def web_url(self) -> tuple[str, str] | None:
        """(`https://<host>/<owner>/<repo>`, host) when origin is on GitHub or GitLab, else
        None: where a review or a report may link commits and files."""
        match = _WEB_REMOTE.match(self.config_value("remote.origin.url") or "")
        if match is None:
            return None
        return f"https://{match['host']}/{match['path'].removesuffix('.git')}", match["host"]

    def config_list(self, *, local: bool = False) -> dict[str, list[str]]:
        """Every config value git sees here (only .git/config with `local`), in one
        `git config --list`; keys lower-cased as git compares them, values in order."""
        proc = self.run_git(["config", *(["--local"] if local else []), "--null", "--list"], check=False)
        out: dict[str, list[str]] = {}
        for item in proc.stdout.split("\0"):
            if item:
                key, _, value = item.partition("\n")
                out.setdefault(key.lower(), []).append(value)
        return out

    def set_config(self, key: str, value: str, *, add: bool = False) -> None:
        """Set `key` in .git/config (`add`: one more value, as for refspecs)."""
        self.run_git(["config", "--local", "--add" if add else "--replace-all", key, value])

    def push(self, remote: str, refspecs: list[str], *, leases: Mapping[str, str | None] | None = None,
             atomic: bool = True) -> subprocess.CompletedProcess:
        """One `git push --porcelain` (atomic: every ref or none); `leases` maps a ref to the
        value the remote must still hold (None: must not exist) for a forced update of it.
        Never raises for a refused push: the caller reads git's per-ref lines."""
        args = ["push", "--porcelain", *(["--atomic"] if atomic else [])]
        args += [f"--force-with-lease={ref}:{expected or ''}" for ref, expected in (leases or {}).items()]
        return self.run_git([*args, remote, *refspecs], check=False)

    def remotes(self) -> list[str]:
        return self.run_git(["remote"], check=False).stdout.split()

    def hooks_dir(self) -> Path:
        """Where git looks for this repository's hooks (core.hooksPath respected)."""
        path = Path(self.run_git(["rev-parse", "--git-path", "hooks"]).stdout.strip())
        base = self.workdir or self.git_dir  # run_git's cwd: rev-parse answers relative to it
        return (path if path.is_absolute() else base / path).resolve()

    def committer_email(self) -> str | None:
        """The e-mail git itself would commit with (GIT_COMMITTER_*, EMAIL, user.email, host)."""
        ident = self.run_git(["var", "GIT_COMMITTER_IDENT"], check=False).stdout
        start, end = ident.find("<"), ident.find(">")
        return ident[start + 1:end] or None if 0 <= start < end else None

    def set_head(self, ref: str) -> None:
        """Point HEAD at branch `ref` (born or not), as `git symbolic-ref` does."""
        self.run_git(["symbolic-ref", "HEAD", ref])

    def worktrees(self) -> list[tuple[Path, str | None]] | None:
        """(top folder, checked-out branch ref) of every non-bare worktree whose folder
        exists; None when git cannot list them (a very old git)."""
        proc = self.run_git(["worktree", "list", "--porcelain"], check=False)
        if proc.returncode != 0:
            return None
        out = []
        for block in proc.stdout.split("\n\n"):
            fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
            if "worktree" in fields and "bare" not in fields and "prunable" not in fields \
                    and Path(fields["worktree"]).is_dir():
                out.append((Path(fields["worktree"]), fields.get("branch")))
        return out

    def apply_patch(self, base: str, diff: bytes) -> str:
        """The tree `git apply` makes of `base`'s tree and a unified diff, in a temporary
        index (never the user's): git gets quoting, renames, offsets and context right.
        PatchDoesNotApply carries git's own complaint."""
        # --whitespace=nowarn: a user's `apply.whitespace=error` must not decide what a proposal is
        apply = ["apply", "--cached", "--verbose", "--whitespace=nowarn"]
        with tempfile.TemporaryDirectory(prefix="aevolve-patch-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self.run_git(["read-tree", base], env=env)
            check = self.run_git([*apply, "--check"], input=diff, check=False, env=env)
            if check.returncode != 0:
                raise PatchDoesNotApply(check.stderr.decode(errors="replace"))
            self.run_git(apply, input=diff, env=env)
            return self.run_git(["write-tree"], env=env).stdout.strip()

    def diff_tree_records(self, old: str, new: str) -> list[bytes]:
        """`git diff-tree -r -z` between two trees, as alternating (meta, path) fields:
        bytes, because paths can be anything."""
        out = self.run_git(["diff-tree", "-r", "-z", "--no-renames", old, new], input=b"").stdout
        return out.split(b"\0")[:-1]  # every record ends with NUL

    def commits(self, tip: str, *, hide: str | None = None, by_time: bool = False) -> Iterator[pygit2.Commit]:
        """The history of `tip`, newest first in topological order (`by_time`: ties
        broken by commit time), without what `hide` reaches."""
        import pygit2

        order = pygit2.enums.SortMode.TOPOLOGICAL | (pygit2.enums.SortMode.TIME if by_time else 0)
        walker = self.git.walk(str(self.resolve(tip).id), order)
        if hide is not None:
            walker.hide(str(hide))
        return iter(walker)

    def is_dirty(self) -> bool:
        """Does the checkout differ from HEAD (staged, unstaged or untracked, not ignored)?"""
        import pygit2

        if self.workdir is None:
            return False
        ignored = pygit2.enums.FileStatus.IGNORED
        return any(not flags & ignored for flags in self.git.status(untracked_files="all").values())

    def index_files(self, gitlinks: list[str] | None = None) -> dict[str, TreeFile]:
        """The index's files. One `git ls-files -s` is ~3x faster than iterating
        pygit2's index on a 10,000-file state (one Python object per entry there).
        Submodules are no files of the state; their paths go to `gitlinks` when given."""
        out = self.run_git(["ls-files", "--stage", "-z"], input=b"").stdout
        files: dict[str, TreeFile] = {}
        for (mode, oid, stage), raw in _records(out):
            if mode == b"160000":
                if gitlinks is not None:
                    gitlinks.append(raw.decode("utf-8", "surrogateescape"))
                continue
            path = raw.decode("utf-8", "surrogateescape")
            if stage == b"0" or path not in files:  # a conflict: keep one side, the path exists
                files[path] = TreeFile(path, oid.decode(), int(mode, 8))
        return files

    def start_status(self) -> subprocess.Popen:
        """`git status --porcelain -z` of the work tree, started now and read later
        (beside other work), or taken from the command's start (`early`) when it was
        started in the folder this repository was opened from; --no-optional-locks:
        it never rewrites the user's index."""
        from aevolve._git import early

        return early.take(self.opened_from) or self.popen_git(early.STATUS, scrub=False)

    def index(self, path: str | os.PathLike | None = None) -> pygit2.Index:
        """The index, freshly read: the repository's own, or the index file at `path`
        (the one git set for a hook with GIT_INDEX_FILE)."""
        import pygit2

        index = pygit2.Index(str(Path(path).resolve())) if path else self.git.index
        index.read()
        return index

    def ref_target(self, name: str) -> str | None:
        """The hex id a ref points at, or None when it does not exist."""
        ref = self.git.references.get(name)
        if ref is None:
            return None
        return str(ref.resolve().target)

    def tree(self, rev_or_oid: str | pygit2.Oid) -> pygit2.Tree:
        import pygit2

        if isinstance(rev_or_oid, pygit2.Oid) or len(rev_or_oid) == 40:
            found = self.git.get(rev_or_oid)
            if found is not None:
                return found.peel(pygit2.Tree)
        return self.resolve(str(rev_or_oid)).peel(pygit2.Tree)

    def read(self, tree: pygit2.Tree, path: str) -> bytes | None:
        """Bytes of the blob at `path` in `tree`, or None when absent."""
        try:
            entry = tree[path]
        except KeyError:
            return None
        if entry.type_str != "blob":
            return None
        return self.blob(entry.id)

    def blob(self, oid: str | pygit2.Oid) -> bytes:
        # odb.read inflates once (Blob.data inflates again on every access). A big loose
        # blob (a memory file aevolve just wrote) comes from `git cat-file`, which
        # inflates it 3-4x faster than libgit2 (168 MB: 1.4 s against 6.1 s); one stat
        # decides, where a header read would cost small blobs in packs more
        hexid = str(oid)
        objects = self.__dict__.get("_loose_objects")
        if objects is None:  # objects_dir reads a file: once per Repo
            objects = self.__dict__["_loose_objects"] = str(self.objects_dir)
        try:
            big = os.stat(f"{objects}/{hexid[:2]}/{hexid[2:]}").st_size >= BIG_LOOSE_BLOB
        except OSError:
            big = False  # packed (or elsewhere): libgit2
        if big:
            return self.run_git(["cat-file", "blob", hexid], input=b"").stdout
        return self.git.odb.read(oid)[1]

    def walk(self, tree: pygit2.Tree, prefix: str = "") -> Iterator[TreeFile]:
        """Every file below `tree`, depth first, with paths relative to its root
        (in-process: the right tool for a small subtree)."""
        for entry in tree:
            path = f"{prefix}{entry.name}"
            if entry.type_str == "tree":
                yield from self.walk(self.tree(entry.id), path + "/")
            elif entry.type_str == "blob":
                yield TreeFile(path, str(entry.id), entry.filemode)
            # submodule entries ("commit") are not part of an agent's state

    def list_files(self, tree: pygit2.Tree, gitlinks: list[str] | None = None) -> list[TreeFile]:
        """Every file of a whole state's tree, as `walk` gives them; the paths of
        submodules (gitlinks, no files of the state) go to `gitlinks` when given.

        One `git ls-tree -r` lists a 10,000-skill tree 2-3x faster than walking
        it object by object from Python.
        """
        out = self.run_git(["ls-tree", "-r", "-z", "--full-tree", str(tree.id)], input=b"").stdout
        files = []
        for (mode, kind, oid), path in _records(out):
            if kind == b"blob":
                files.append(TreeFile(path.decode("utf-8", "surrogateescape"), oid.decode(), int(mode, 8)))
            elif kind == b"commit" and gitlinks is not None:
                gitlinks.append(path.decode("utf-8", "surrogateescape"))
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
        with self._writing_objects():
            tree = self._build_tree(base, edits, modes or {})
        self._check_written(tree)
        return tree

    def _build_tree(self, base: pygit2.Tree | None, edits: Mapping[str, bytes | None],
                    modes: Mapping[str, int]) -> pygit2.Oid:
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
            child_base = self.tree(existing.id) if existing is not None and existing.type_str == "tree" else None
            child_modes = {k.partition("/")[2]: v for k, v in modes.items() if k.startswith(name + "/")}
            child = self._build_tree(child_base, sub, child_modes)
            if len(self.tree(child)) == 0:
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

    def commit(self, tree: pygit2.Oid | str, parents: list, message: str,
               author: pygit2.Signature | None = None) -> pygit2.Oid:
        """Write a commit object; no ref moves (use create_ref / update_ref). `author`
        keeps another commit's author (a rebase); the committer is always us."""
        import pygit2

        tree_id = pygit2.Oid(hex=tree) if isinstance(tree, str) else tree
        with self._writing_objects():
            oid = self.git.create_commit(
                None, author or self.signature("author"), self.signature("committer"), message, tree_id,
                [pygit2.Oid(hex=str(p)) for p in parents],
            )
        # on a full disk libgit2 returns the id of a commit it never wrote (measured)
        self._check_written(oid, tree_id)
        return oid

    @property
    def objects_dir(self) -> Path:
        return Path(os.environ.get("GIT_OBJECT_DIRECTORY") or self.common_dir / "objects")

    @contextlib.contextmanager
    def _writing_objects(self) -> Iterator[None]:
        """libgit2 reports a full disk or a read-only folder as a bare OSError or
        GitError without errno: say it as the StorageError it is."""
        import pygit2

        try:
            yield
        except (pygit2.GitError, OSError) as exc:
            if storage_error(str(exc), self.objects_dir) is None and getattr(exc, "errno", None) not in _STORAGE:
                raise
            raise self._objects_error(str(exc)) from None

    def _check_written(self, *oids: pygit2.Oid) -> None:
        missing = [str(oid) for oid in oids if not self.git.odb.exists(oid)]
        if missing:
            raise self._objects_error(f"object {missing[0][:12]} is missing after writing it")

    def _objects_error(self, detail: str) -> StorageError:
        full = _no_space(str(self.objects_dir)) or any(s in detail for s in _FULL)
        what, fix = ("disk full", "free space on that file system") if full else \
            ("disk full or read-only", "free space or make it writable")
        return StorageError(f"could not write objects to {self.objects_dir}: {what} ({detail.strip()}); "
                            f"{fix}, then retry; no ref was moved", self.objects_dir)

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
            refuse_storage_faults(err, self.git_dir / name)
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
            refuse_storage_faults(str(exc), self.git_dir / name)
            raise RefMoved(f"{name} moved while updating it ({exc})") from None

    def begin_transaction(self) -> RefTransaction:
        """An open `git update-ref --stdin` transaction (see RefTransaction)."""
        return RefTransaction(self)

    def transaction(self, updates: list[tuple[str, str, str | None]]) -> None:
        """Move several refs atomically: each (ref, new, old) all or none;
        `new` = ZERO deletes, `old` = None or ZERO requires the ref not to exist."""
        txn = self.begin_transaction()
        txn.prepare(updates)
        txn.commit()

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
        return self.blob(note.id)

    def note_at(self, notes_commit: str | None, commit: str) -> bytes | None:
        """`commit`'s note in one notes commit (not the moving ref), or None."""
        if not notes_commit:
            return None
        tree = self.tree(notes_commit)
        return next((d for d in (self.read(tree, p) for p in note_paths(str(commit))) if d is not None), None)

    def write_note(self, commit: str, data: bytes, ref: str = NOTES_REF, attempts: int = 50) -> str:
        """Attach `data` as the note of `commit`, replacing any earlier one; returns
        the new notes commit."""
        return self.update_note(commit, lambda _old: data, ref, attempts)

    def update_note(self, commit: str, change: Callable[[bytes | None], bytes], ref: str = NOTES_REF,
                    attempts: int = 50) -> str:
        """Set `commit`'s note to `change(its current note)`, atomically.

        Builds the notes commit from objects and compare-and-swaps `ref`, calling
        `change` again on a lost race, so an edit made meanwhile is never dropped
        (`git notes add` from parallel processes loses notes). Returns the new
        notes commit id.
        """
        commit = str(commit)
        for attempt in range(attempts):
            old = self.ref_target(ref)
            new = self.note_commit(commit, change(self.note_at(old, commit)), old)
            try:
                self.update_ref(ref, new, old)
                return str(new)
            except RefMoved:
                time.sleep(min(0.2, 0.005 * (attempt + 1)))
        raise RefMoved(f"could not write note on {commit[:12]}: {ref} kept moving")

    def note_commit(self, commit: str, data: bytes, parent: str | None, ref: str = NOTES_REF) -> pygit2.Oid:
        """The notes commit that adds or replaces `commit`'s note on top of `parent`."""
        base = self.git[parent].tree if parent else None
        # Always git's 2/38 fan-out: a lookup then reads one small subtree, where a
        # flat tree of 10k notes is parsed whole for every note (git reads either
        # layout, and mixed ones). A copy at another depth is dropped.
        fanned, *others = note_paths(commit)
        edits: dict[str, bytes | None] = {fanned: data}
        edits.update((p, None) for p in others if base is not None and self.read(base, p) is not None)
        tree = self.build_tree(base, edits)
        return self.commit(tree, [parent] if parent else [], f"aevolve: note on {commit}\n")

    # -- git command ---------------------------------------------------------
    def run_git(
        self, args: list[str], input: str | bytes | None = None, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """Run `git` in this repository with an argv list (never a shell string)."""
        return run_git(args, git_dir=self.git_dir, cwd=self.workdir or self.git_dir, input=input,
                       check=check, env=env)

    def popen_git(self, args: list[str], *, text: bool = False, scrub: bool = True) -> subprocess.Popen:
        """A `git` in this repository talking over pipes while we go on (a batch reader,
        a ref transaction, a status run beside other work). With `scrub`, GIT_DIR and
        GIT_INDEX_FILE from a hook do not leak into it."""
        environ = {k: v for k, v in os.environ.items() if not (scrub and k in ("GIT_DIR", "GIT_INDEX_FILE"))}
        return subprocess.Popen(["git", "--git-dir", str(self.git_dir), *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text, env=environ,
                                cwd=str(self.workdir or self.git_dir))

    # -- lock ----------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str = "refs", timeout: float = 30.0) -> Iterator[None]:
        """An exclusive lock shared by every aevolve process on this repository.

        It orders aevolve's own multi-step updates; the ref CAS stays the real
        guarantee against other writers (plain git, a push).
        """
        folder = self.common_dir / "aevolve"  # shared by linked worktrees: one lock for all
        path = folder / f"{name}.lock"
        try:
            folder.mkdir(exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # flock never goes stale; only its file can be impossible to make
            if exc.errno not in _STORAGE:
                raise
            raise StorageError(f"cannot create the lock file {path}: "
                               f"{'disk full' if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 'read-only'} "
                               f"({exc.strerror}); make {folder} writable, then retry", path) from None
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


def _records(out: bytes) -> Iterator[tuple[list[bytes], bytes]]:
    """(space-separated fields, path) of each `-z` record of ls-tree / ls-files: the
    layouts differ (the index has a conflict stage), the split does not."""
    for record in out.split(b"\0"):
        if record:
            meta, _, path = record.partition(b"\t")
            yield meta.split(b" "), path


def pipes(proc: subprocess.Popen) -> tuple[IO, IO, IO]:
    """A process's three pipes (all asked for with PIPE, so none is None)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    return proc.stdin, proc.stdout, proc.stderr


def run_git(args: list[str], *, git_dir: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None,
            input: str | bytes | None = None, check: bool = True, env: dict | None = None,
            unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The one place aevolve starts `git` and waits for it: an argv list, output
    captured, GitCommandFailed naming the command when `check` and it fails.
    `unset` drops variables (a hook's GIT_DIR must not steer a git run elsewhere)."""
    text = not isinstance(input, bytes)
    prefix = ["--git-dir", str(git_dir)] if git_dir is not None else []
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.run(["git", *prefix, *args], input=input, capture_output=True, text=text,
                          cwd=str(cwd) if cwd is not None else None, env={**environ, **(env or {})})
    if check and proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        storage = storage_error(err, git_dir or cwd or ".")
        if storage is not None:
            raise storage
        raise GitCommandFailed(f"git {' '.join(args[:2])} failed: {err.strip()}")
    return proc


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


# -- storage faults are not contention -----------------------------------------------------
# git: "Unable to create '/r/.git/refs/heads/main.lock': File exists."
# libgit2: "failed to lock file '/r/.git/refs/heads/main.lock' for writing: "
_LOCK_HELD = (re.compile(r"Unable to create '([^']+\.lock)': File exists"),
              re.compile(r"failed to lock file '([^']+\.lock)'"))
_QUOTED_PATH = re.compile(r"'(/[^']+)'")
_FULL = ("No space left on device", "Disk quota exceeded", "Out of diskspace")
_STORAGE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
_READ_ONLY = ("Read-only file system", "Permission denied", "Operation not permitted")


def held_lock(message: str) -> Path | None:
    """The lock file git or libgit2 found already there, when that is the complaint."""
    for pattern in _LOCK_HELD:
        found = pattern.search(message)
        if found:
            return Path(found.group(1))
    return None


def storage_error(message: str, fallback: str | os.PathLike) -> StorageError | None:
    """The StorageError a git or libgit2 complaint amounts to (disk full, read-only), or
    None when it is something else (a lost race, a missing object, a remote refusing)."""
    found = _QUOTED_PATH.search(message)
    path = found.group(1) if found else str(fallback)
    said = _first_line(message)
    # git says only "couldn't write '<lock>'" when the disk is full: ask the file system
    if any(s in message for s in _FULL) or ("couldn't write" in message and _no_space(path)):
        return StorageError(f"cannot write {path}: disk full ({said}); free space on that file system, "
                            "then retry", path)
    # a quoted path: "Permission denied (publickey)" from a remote is not our disk
    if found and any(s in message for s in _READ_ONLY):
        return StorageError(f"cannot write {path}: read-only ({said}); make {Path(path).parent} writable "
                            "(the mount, the permissions), then retry", path)
    if "couldn't write" in message:
        return StorageError(f"cannot write {path} ({said}); check free space and permissions, then retry", path)
    return None


def _first_line(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0].removeprefix("fatal: ").strip() if lines else message.strip()


def _no_space(path: str, margin: int = 64 * 1024) -> bool:
    """Is the file system holding `path` (or its nearest existing folder) full?"""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < margin


def check_lock(path: Path) -> None:
    """Wait out a lock file a live git holds (milliseconds); StaleLock when the same file
    outlives STALE_LOCK_SECONDS, which only a process that died holding it does."""
    def identity() -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    first = identity()
    deadline = time.monotonic() + STALE_LOCK_SECONDS
    while first is not None and identity() == first:  # gone or replaced: it was contention
        age = time.time() - first[1] / 1e9
        if age > STALE_LOCK_SECONDS or time.monotonic() > deadline:
            raise StaleLock(
                f"{path} exists ({age:.0f}s old): another git process seems to be running in this repository, "
                "or one crashed there earlier and left it. Make sure no git process is running in this "
                f"repository, then remove the file manually (rm '{path}') and retry.", path)
        time.sleep(0.01)


def refuse_storage_faults(message: str, fallback: str | os.PathLike) -> None:
    """Raise StaleLock or StorageError when `message` (git's or libgit2's) says the
    repository cannot be written; return when it was contention (retry) or another error."""
    lock = held_lock(message)
    if lock is not None:
        check_lock(lock)
        return
    error = storage_error(message, fallback)
    if error is not None:
        raise error


def short(oid: str | pygit2.Oid) -> str:
    return str(oid)[:12]


class RefTransaction:
    """`git update-ref --stdin` opened *before* the old values are read.

    Values read from disk can go stale in the milliseconds a `git` process takes
    to start; with the process already waiting, only a pipe round trip separates
    reading the refs from `prepare`, which locks them and checks every old
    value. A parallel note writer (a gate finishing) then rarely makes us retry.
    """

    def __init__(self, repo: Repo):
        self.git_dir = repo.git_dir
        self.proc = repo.popen_git(["update-ref", "--stdin"], text=True)
        self._in, self._out, self._err = pipes(self.proc)
        self._say("start")

    def _say(self, *lines: str) -> None:
        try:
            self._in.write("".join(line + "\n" for line in lines))
            self._in.flush()
        except (BrokenPipeError, OSError):
            pass  # git died: its stderr says why
        answer = self._out.readline()
        if not answer.endswith(": ok\n"):
            self.abort()
            said = self.error or answer.strip()
            # a stale lock, a read-only folder or a full disk: never a reason to retry
            refuse_storage_faults(said, self.git_dir)
            raise RefMoved("refs moved concurrently, nothing was changed: " + said)

    def prepare(self, updates: list[tuple[str, str, str | None]]) -> None:
        """Lock every ref and check its old value (RefMoved when one moved)."""
        self._say(*(f"update {name} {new} {old or ZERO}" for name, new, old in updates), "prepare")

    def commit(self) -> None:
        self._say("commit")
        self.close()

    def abort(self) -> None:
        self.error = ""
        if self.proc.poll() is None:
            try:
                self._in.write("abort\n")
                self._in.flush()
            except (BrokenPipeError, OSError):
                pass
        self.close()

    def close(self) -> None:
        try:
            self._in.close()
        except (BrokenPipeError, OSError):
            pass
        self.error = (self._err.read() or "").strip()
        self.proc.wait()

    error = ""
