"""The SQLite file under the git dir where aevolve caches derived results.

One file, `.git/aevolve/cache.sqlite`, shared by validation and the gate; each
module owns its tables. WAL mode and a busy timeout let several aevolve
processes read and write it at once. Losing the file loses only time.

A cache must never stop a command: when the file cannot be opened, read or
written (a read-only folder, a full disk, a corrupt file, a lock held past the
busy timeout), the connection prints one warning naming the file and from then
on behaves as an empty cache that stores nothing.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

CACHE_FILE = "cache.sqlite"

# SQLite's primary result codes that mean "this location is unusable", not "bad SQL"
_STORAGE_CODES = {
    3: "access denied",  # SQLITE_PERM
    5: "locked by another process",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "disk I/O error",  # SQLITE_IOERR
    11: "corrupt",  # SQLITE_CORRUPT
    13: "disk full",  # SQLITE_FULL
    14: "cannot be opened",  # SQLITE_CANTOPEN
    26: "not a database",  # SQLITE_NOTADB
}
_warned: set[str] = set()
_warned_lock = threading.Lock()
_null: sqlite3.Connection | None = None


def _empty_cursor() -> sqlite3.Cursor:
    """A cursor over no rows: what a skipped cache answers to every statement."""
    global _null
    if _null is None:
        _null = sqlite3.connect(":memory:", check_same_thread=False)
    return _null.execute("SELECT 1 WHERE 0")


def storage_problem(exc: BaseException) -> str | None:
    """What is wrong with the cache's location, when `exc` says so; None for other errors."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return _STORAGE_CODES.get(code & 0xFF)  # the primary code of an extended one
    return None  # not an error SQLite reported (a closed connection, a bad parameter)


def warn_once(path: str, what: str, detail: str) -> None:
    """One warning per cache file and process, on stderr (the command goes on)."""
    with _warned_lock:
        if path in _warned:
            return
        _warned.add(path)
    folder = str(Path(path).parent)
    sys.stderr.write(f"aevolve: warning: the cache {path} is unusable ({what}: {detail}); going on without it, "
                     f"so results are not reused. Free space on that file system or make {folder} writable "
                     "(deleting the file is safe; `aevolve gc` prunes it).\n")


class CacheConnection(sqlite3.Connection):
    """A connection that turns a storage failure into a skipped cache: one warning,
    then every statement answers no rows and stores nothing."""

    path = ""
    degraded = False

    def execute(self, sql, parameters=(), /):
        if self.degraded:
            return _empty_cursor()
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)
            return _empty_cursor()

    def executemany(self, sql, parameters, /):
        if self.degraded:
            return _empty_cursor()
        try:
            return super().executemany(sql, parameters)
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)
            return _empty_cursor()

    def commit(self) -> None:
        if self.degraded:
            return
        try:
            super().commit()
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)

    def close(self) -> None:
        try:
            super().close()
        except sqlite3.DatabaseError as exc:  # the last checkpoint on close can hit a full disk
            if storage_problem(exc) is None:
                raise

    def _give_up(self, exc: sqlite3.DatabaseError) -> None:
        """Re-raise a real bug; otherwise warn once and stop using the file."""
        what = storage_problem(exc)
        if what is None:
            raise exc
        self.degraded = True
        if self.in_transaction:
            try:
                super().execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass  # SQLite may have rolled it back already
        warn_once(self.path, what, str(exc))


def connect(path: Path) -> CacheConnection:
    """The cache at `path`; a skipped (empty) cache when it cannot be opened."""
    try:
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, factory=CacheConnection)
    except sqlite3.DatabaseError as exc:
        what = storage_problem(exc)
        if what is None:
            raise
        warn_once(str(path), what, str(exc))
        return _skipped(path)
    assert isinstance(conn, CacheConnection)
    conn.path = str(path)
    conn.execute("PRAGMA journal_mode=WAL")  # the first statement: a read-only or full location shows here
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _skipped(path: Path) -> CacheConnection:
    conn = sqlite3.connect(":memory:", isolation_level=None, factory=CacheConnection)
    assert isinstance(conn, CacheConnection)
    conn.path, conn.degraded = str(path), True
    return conn


def cache_path(repo) -> Path:
    return Path(repo.git_dir) / "aevolve" / CACHE_FILE


def open_cache(repo) -> CacheConnection:
    """The repository's cache database (created on first use; skipped with one
    warning when its location cannot be used)."""
    path = cache_path(repo)
    try:
        path = repo.aevolve_dir / CACHE_FILE  # creates the folder
    except OSError as exc:
        warn_once(str(path), "cannot be opened", f"{exc.strerror or exc}: {exc.filename or path.parent}")
        return _skipped(path)
    return connect(path)
