"""The SQLite file under the git dir where aevolve caches derived results.

One file, `.git/aevolve/cache.sqlite`, shared by validation and the gate; each
module owns its tables. WAL mode and a busy timeout let several aevolve
processes read and write it at once. Losing the file loses only time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def open_cache(repo) -> sqlite3.Connection:
    """The repository's cache database (created on first use)."""
    return connect(repo.aevolve_dir / "cache.sqlite")
