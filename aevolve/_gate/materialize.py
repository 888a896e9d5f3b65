"""A guarded copy of a tree on disk, for runners to read (never the user's checkout).

One folder per tree id under `.git/aevolve/trees/<tree-id>`, read-only, shared by
every gate. Read-only bits do not stop a runner running as root (or one that
chmods first), so the folder is never trusted:

- `MaterializedTree.open` reuses the folder only when every file hashes to its
  blob id with the right mode and nothing was added; otherwise it rebuilds it
  and records what was wrong in `repaired`.
- `begin`/`end` around each run compare a stat snapshot (size, mtime, ctime,
  mode, inode: ctime cannot be reset by `utime`) so a run that wrote into its
  state dir is caught, and the folder is rebuilt before the next run.

A folder is written into a temporary folder and renamed into place, so a
concurrent gate sees either nothing or a complete copy. A rebuild moves the old
folder aside first (`<tree-id>.stale-<random>`): runs still using it as their
cwd keep a valid folder, and it is never reused (its name no longer matches).

While a gate uses a folder it holds a shared `flock` on `.git/aevolve/tree-locks/<tree-id>`
and sets that file's mtime (the tree's last use). `aevolve gc` removes a folder
only under an exclusive lock on the same file (`remove_tree`): it renames the
folder to a stale name, unlinks the lock file, then deletes; a gate waiting for
the lock finds its file unlinked, takes a new one and rebuilds the folder. The
kernel releases the lock of a killed gate. A folder that cannot be written (a
read-only `.git/aevolve`, a full disk) is a StorageError naming the path.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aevolve._errors import Conflict, StorageError
from aevolve._git.repo import BLOB_EXECUTABLE, LINK, Repo

_BAD_PARTS = {"", ".", "..", ".git"}
ROOT = "."  # the key of the folder itself in snapshots and in `repaired`
CONCURRENT_CHANGE = "(state dir was modified by a concurrent run)"
_INSTALL_ATTEMPTS = 5
_FILE_MODE = {True: 0o555, False: 0o444}  # executable?
_DIR_MODE = 0o555
LOCKS = "tree-locks"  # beside trees/, so a trees/ listing holds only copies
LEFTOVER_AGE_S = 3600.0  # a .tmp-/.stale- folder this old belongs to no live gate
# a location that cannot be written, as opposed to a bug
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})

Signature = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, mode, inode


@dataclass(frozen=True)
class RunToken:
    """One run between `begin` and `end`: the folder generation it started on."""

    generation: int


def trees_dir(repo: Repo) -> Path:
    path = repo.aevolve_dir / "trees"
    path.mkdir(exist_ok=True)
    return path


def locks_dir(repo: Repo) -> Path:
    return Path(repo.git_dir) / "aevolve" / LOCKS


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """An OSError of an unwritable location becomes a StorageError naming the path."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        path = exc.filename or what
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            fix = "free space on that file system (`aevolve gc` removes unused copies) and retry"
        else:
            fix = "make .git/aevolve writable by this user (or gate in a writable clone) and retry"
        raise StorageError(f"cannot write {what}: {exc.strerror} ({path}); {fix}", path) from None


def materialize(repo: Repo, tree_id: str) -> Path:
    """The folder holding tree `tree_id`'s files, read-only and verified (kept for old callers)."""
    return MaterializedTree.open(repo, tree_id).root


class TreeSource(Protocol):
    """Where a copy's files come from: the repository, or a tree shipped to a Ray node."""

    def files(self) -> dict[str, tuple[str, int]]: ...  # path -> (blob id, git mode)

    def blob(self, oid: str) -> bytes: ...


@dataclass(frozen=True)
class RepoTree:
    """A tree of this repository's object database."""

    repo: Repo
    tree_id: str

    def files(self) -> dict[str, tuple[str, int]]:
        return expected_files(self.repo, self.tree_id)

    def blob(self, oid: str) -> bytes:
        return self.repo.blob(oid)


class MaterializedTree:
    """The verified folder of one tree, watched across runs in parallel threads."""

    def __init__(self, source: TreeSource, tree_id: str, folder: Path):
        self.source = source
        self.tree_id = str(tree_id)
        self.root = folder / self.tree_id
        self._release: weakref.finalize | None = None  # closes the lock's fd, at `close` or when garbage
        self.repaired: list[str] = []
        self._files = source.files()  # path -> (blob id, mode)
        self._dirs = _parent_dirs(self._files)
        self._snapshot: dict[str, Signature] = {}
        self._generation = 0
        self._active: dict[int, int] = {}  # generation -> runs begun on it and not ended
        self._stale: list[tuple[int, Path]] = []  # (last generation that used it, folder)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, repo: Repo, tree_id: str) -> MaterializedTree:
        """The folder of `tree_id` under .git/aevolve/trees: reused when it verifies,
        else (re)built. Held (gc leaves it alone) until `close`, or until garbage."""
        return cls.open_from(RepoTree(repo, str(tree_id)), str(tree_id), trees_dir(repo), locks_dir(repo),
                             where=f"the materialized copy of tree {tree_id} under .git/aevolve/trees")

    @classmethod
    def open_from(cls, source: TreeSource, tree_id: str, folder: Path, locks: Path, *,
                  where: str = "") -> MaterializedTree:
        """The folder `folder/<tree_id>` of `source`, held through a lock file under `locks`."""
        with storage_errors(where or f"the materialized copy of tree {tree_id} under {folder}"):
            self = cls(source, tree_id, folder)
            _sweep_stale(self.root.parent)
            self._release = weakref.finalize(self, _unlock, _hold(locks, self.tree_id))
            try:
                self._open()
            except BaseException:
                self.close()
                raise
        return self

    def is_clean(self) -> bool:
        """True when nothing in the folder changed since it was last known clean."""
        with self._lock:
            return not _diff(self._snapshot, _scan(self.root))

    def _open(self) -> None:
        if os.path.lexists(self.root):
            # snapshot first: a write racing the check is either seen by the check or
            # changes a signature the next `end` compares
            snapshot = _scan(self.root)
            self.repaired = _verify(self.root, self._files, self._dirs)
            if not self.repaired:
                self._snapshot = snapshot
                return
            _discard(self.root)
        self._snapshot = self._build_into_place()

    def close(self) -> None:
        """Let gc remove the folder again (once no other gate holds it)."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> MaterializedTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def begin(self) -> RunToken:
        """Take just before a run starts; hand it back to `end` after the run."""
        with self._lock:
            self._active[self._generation] = self._active.get(self._generation, 0) + 1
            return RunToken(self._generation)

    def end(self, token: RunToken) -> list[str]:
        """[] when the folder is unchanged since it was last known clean (so since
        the run began); else the paths added, removed or changed.

        A change is repaired at once (the next run gets a clean copy). A run that
        began before a rebuild also gets a non-empty list: it may have read the
        poisoned files another run wrote.
        """
        with self._lock:
            try:
                changed = _diff(self._snapshot, _scan(self.root))
                rebuilt_meanwhile = token.generation != self._generation
                if changed:
                    with storage_errors(f"the materialized copy of tree {self.tree_id}"):
                        self._rebuild()
                if rebuilt_meanwhile:
                    changed.append(CONCURRENT_CHANGE)
            finally:
                self._active[token.generation] -= 1
                if not self._active[token.generation]:
                    del self._active[token.generation]
                unused = self._unused_stale()
        for folder in unused:  # outside the lock: other runs need not wait for a delete
            remove(folder)
        return changed

    # -- internals ----------------------------------------------------------
    def _build_into_place(self) -> dict[str, Signature]:
        """Build a fresh copy and rename it into place, or adopt the verified copy a
        concurrent gate finished first; its snapshot."""
        tmp = _build(self.source, self._files, self.root.parent, self.tree_id)
        installed = False
        try:
            for _ in range(_INSTALL_ATTEMPTS):
                snapshot = _scan(tmp)  # before it is in place: nothing can write into it yet
                try:
                    os.rename(tmp, self.root)
                except OSError:
                    if not os.path.lexists(self.root):
                        raise
                else:
                    installed = True
                    snapshot[ROOT] = _signature(os.lstat(self.root))  # a rename changes the folder's ctime
                    return snapshot
                snapshot = _scan(self.root)
                if not _verify(self.root, self._files, self._dirs):
                    return snapshot  # another gate finished the same tree first
                _discard(self.root)
            raise Conflict(f"could not install the materialized tree {self.root}: another process keeps "
                           "replacing it; stop the other gates on this repository and retry")
        finally:
            if not installed:
                remove(tmp)

    def _rebuild(self) -> None:
        """Replace the folder by a clean copy (caller holds the lock); runs that
        still have the old one as cwd keep it until they end."""
        tmp = _build(self.source, self._files, self.root.parent, self.tree_id)
        snapshot = _scan(tmp)  # before it is in place: nothing can write into it yet
        try:
            for _ in range(_INSTALL_ATTEMPTS):
                stale = _move_aside(self.root)
                if stale is not None:
                    self._stale.append((self._generation, stale))
                try:
                    os.rename(tmp, self.root)
                    break
                except OSError:
                    if not os.path.lexists(self.root):
                        raise
            else:
                raise Conflict(f"could not replace the materialized tree {self.root}: another process "
                               "keeps replacing it; stop the other gates on this repository and retry")
        except BaseException:
            remove(tmp)
            raise
        snapshot[ROOT] = _signature(os.lstat(self.root))  # a rename changes the folder's own ctime
        self._snapshot = snapshot
        self._generation += 1

    def _unused_stale(self) -> list[Path]:
        """Stale folders no running run can still be using (caller holds the lock)."""
        oldest = min(self._active, default=self._generation)
        unused = [folder for gen, folder in self._stale if gen < oldest]
        self._stale = [(gen, folder) for gen, folder in self._stale if gen >= oldest]
        return unused


# -- in use, and removing by gc ----------------------------------------------------

def _hold(locks: Path, tree_id: str) -> int | None:
    """A shared lock on the tree's lock file (its fd), marking it used now. None when
    the location cannot be written: then no gc can remove the folder either."""
    path = locks / tree_id
    while True:
        try:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS:
                return None
            raise
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a gc renames the folder away
        if _same_file(fd, path):
            with suppress(OSError):
                os.utime(fd)  # the last use, for gc
            return fd
        os.close(fd)  # a gc unlinked this file while we waited: take the new one


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing releases the flock


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class TreeCopy:
    """A materialized folder as gc sees it."""

    tree_id: str
    path: Path
    last_used: float  # the lock file's mtime; the folder's own for copies older than locks


def list_trees(repo: Repo) -> list[TreeCopy]:
    """Every materialized tree, most recently used first."""
    folder, locks = trees_dir(repo), locks_dir(repo)
    out = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or "." in entry.name:
            continue  # .tmp- folders, .stale- copies
        with suppress(FileNotFoundError):
            used = entry.stat(follow_symlinks=False).st_mtime
            with suppress(FileNotFoundError):
                used = os.stat(locks / entry.name).st_mtime
            out.append(TreeCopy(entry.name, Path(entry.path), used))
    return sorted(out, key=lambda t: (-t.last_used, t.tree_id))


def remove_tree(repo: Repo, copy: TreeCopy) -> int | None:
    """Delete one materialized tree; its size in bytes, or None when a gate holds it
    (or used it since it was listed)."""
    lock = locks_dir(repo) / copy.tree_id
    fd, created = _open_lock(lock)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a gate is using it
        if not _same_file(fd, lock) or (not created and os.fstat(fd).st_mtime > copy.last_used):
            return None  # another gc got there first, or a gate used it meanwhile
        size = folder_size(copy.path)
        stale = _move_aside(copy.path)
        os.unlink(lock)  # a gate waiting on this file sees it unlinked and takes a new one
    finally:
        os.close(fd)
    if stale is not None:
        remove(stale)
    return size


def _open_lock(path: Path) -> tuple[int, bool]:
    """The lock file's fd, and whether we created it (a copy older than lock files)."""
    path.parent.mkdir(exist_ok=True)
    while True:
        try:
            return os.open(path, os.O_RDONLY), False
        except FileNotFoundError:
            pass
        try:
            return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            continue  # a gate created it meanwhile


def remove_leftovers(repo: Repo, now: float | None = None) -> tuple[int, int]:
    """Folders killed gates left (`.tmp-`, `.stale-`) older than LEFTOVER_AGE_S, and lock
    files of trees that are gone: (folders removed, bytes)."""
    folder, cutoff = trees_dir(repo), (time.time() if now is None else now) - LEFTOVER_AGE_S
    count = size = 0
    for entry in os.scandir(folder):
        if not (entry.name.startswith(".tmp-") or ".stale-" in entry.name):
            continue
        with suppress(FileNotFoundError):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                size += folder_size(Path(entry.path))
                remove(Path(entry.path))
                count += 1
    locks = locks_dir(repo)
    if locks.is_dir():
        for entry in os.scandir(locks):
            if not os.path.lexists(folder / entry.name):
                _unlink_unheld(Path(entry.path), folder / entry.name)
    return count, size


def _unlink_unheld(lock: Path, tree: Path) -> None:
    """Unlink the lock file of a tree that is gone, unless a gate holds it (and may be
    building the tree right now)."""
    with suppress(FileNotFoundError):
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, lock) and not os.path.lexists(tree):
                os.unlink(lock)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


def folder_size(path: Path) -> int:
    """Bytes of the regular files under `path`."""
    return sum(st.st_size for st in _walk(path).values() if stat.S_ISREG(st.st_mode))


# -- building -------------------------------------------------------------------

def expected_files(repo: Repo, tree_id: str) -> dict[str, tuple[str, int]]:
    """The files a copy of the tree holds: path -> (blob id, git mode)."""
    files = {}
    for entry in repo.list_files(repo.tree(tree_id)):
        if any(p in _BAD_PARTS for p in entry.path.split("/")):
            continue  # a crafted tree must not write outside the copy
        if entry.mode == LINK:
            continue  # symlinks could point anywhere; validation reports them
        files[entry.path] = (entry.oid, entry.mode)
    return files


def _parent_dirs(files: dict) -> set[str]:
    dirs = set()
    for path in files:
        parts = path.split("/")[:-1]
        for n in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:n]))
    return dirs


def _build(source: TreeSource, files: dict[str, tuple[str, int]], parent: Path, tree_id: str) -> Path:
    """A complete, sealed copy in a new temporary folder under `parent`."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{tree_id[:12]}-", dir=parent))
    try:
        for path, (oid, mode) in files.items():
            target = tmp.joinpath(*path.split("/"))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.blob(oid))
            except OSError as exc:  # a failed write() names no file: say which one
                raise OSError(exc.errno, exc.strerror, exc.filename or str(target)) from None
            os.chmod(target, _FILE_MODE[mode == BLOB_EXECUTABLE])
        for dirpath, _dirnames, _files in os.walk(tmp, topdown=False):
            os.chmod(dirpath, _DIR_MODE)
    except BaseException:
        remove(tmp)
        raise
    return tmp


# -- checking -------------------------------------------------------------------

def _signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_ino)


def _walk(root: Path) -> dict[str, os.stat_result]:
    """lstat of the folder and of everything below it, never following a symlink."""
    try:
        out = {ROOT: os.lstat(root)}
    except FileNotFoundError:
        return {}
    if not stat.S_ISDIR(out[ROOT].st_mode):
        return out
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue  # vanished under us: the parent's signature already changed
        with entries:
            for entry in entries:
                rel = prefix + entry.name
                with suppress(FileNotFoundError):
                    out[rel] = entry.stat(follow_symlinks=False)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((rel + "/", entry.path))
    return out


def _scan(root: Path) -> dict[str, Signature]:
    return {rel: _signature(st) for rel, st in _walk(root).items()}


def _diff(before: dict[str, Signature], after: dict[str, Signature]) -> list[str]:
    """Paths added, removed or changed between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _verify(root: Path, files: dict[str, tuple[str, int]], dirs: set[str]) -> list[str]:
    """Paths where the folder differs from the tree (content, mode, kind, extra, missing)."""
    found = _walk(root)
    wrong = []
    for rel, st in found.items():
        if rel == ROOT or rel in dirs:
            ok = stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == _DIR_MODE
        elif rel in files:
            oid, mode = files[rel]
            ok = (stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == _FILE_MODE[mode == BLOB_EXECUTABLE]
                  and _blob_id(root / rel, len(oid)) == oid)
        else:
            ok = False  # added by someone
        if not ok:
            wrong.append(rel)
    wrong.extend(p for p in [ROOT, *dirs, *files] if p not in found)
    return sorted(wrong)


def _blob_id(path: Path, id_len: int) -> str:
    """git's blob id of a file's content (sha1, or sha256 in a sha256 repository)."""
    data = path.read_bytes()
    h = hashlib.sha1() if id_len == 40 else hashlib.sha256()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


# -- removing -------------------------------------------------------------------

def _move_aside(path: Path) -> Path | None:
    """Rename `path` to a unique stale name (never reused); None when it is gone."""
    stale = path.with_name(f"{path.name}.stale-{secrets.token_hex(6)}")
    try:
        os.rename(path, stale)
    except FileNotFoundError:
        return None
    return stale


def _discard(path: Path) -> None:
    stale = _move_aside(path)
    if stale is not None:
        remove(stale)


def _sweep_stale(folder: Path) -> None:
    """Delete stale copies left by earlier gates. Any run still using one was
    already told its folder changed, so deleting it cannot hide a tampering."""
    for stale in folder.glob("*.stale-*"):
        remove(stale)


def remove(path: Path) -> None:
    """Delete a (read-only) materialized folder; one already gone is fine."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        with suppress(FileNotFoundError):
            path.unlink()
        return

    def _writable(func, p, exc_info):
        if issubclass(exc_info[0], FileNotFoundError):
            return  # a concurrent sweep got there first
        os.chmod(os.path.dirname(p), 0o755)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o755)
        func(p)

    if os.geteuid() != 0:  # root needs no write bits (and must not chmod through a planted symlink)
        for dirpath, _dirnames, _files in os.walk(path):
            with suppress(FileNotFoundError):
                os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(path, onerror=_writable)
