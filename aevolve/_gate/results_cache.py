"""Cached case runs and rubric verdicts in the repository's SQLite cache.

A run is keyed by (evaluated tree id, case content hash, runner config hash,
repeat index): the same state, the same case and the same runner give the same
run, so the baseline on main is run once for every candidate, and re-gating an
unchanged candidate starts no runner at all. Only successful runs are stored;
errors (timeouts, crashes) are retried on the next gate.

Every row records when it was last used (`used`), so `aevolve gc` keeps the
rows gates still read and drops the rest (`prune`). A cache that cannot be
written (read-only, full) is skipped with one warning (`_state/cache.py`).
"""

from __future__ import annotations

import json
import time

from aevolve._gate.runner import RunResult
from aevolve._state.cache import open_cache

RUNS_TABLE = """CREATE TABLE IF NOT EXISTS gate_runs (
    tree TEXT NOT NULL, case_hash TEXT NOT NULL, runner_hash TEXT NOT NULL, rep INTEGER NOT NULL,
    result TEXT NOT NULL, created REAL NOT NULL, used REAL,
    PRIMARY KEY (tree, case_hash, runner_hash, rep))"""
RUBRIC_TABLE = """CREATE TABLE IF NOT EXISTS gate_rubrics (
    model TEXT NOT NULL, rubric TEXT NOT NULL, output TEXT NOT NULL, verdict TEXT NOT NULL, used REAL,
    PRIMARY KEY (model, rubric, output))"""
TABLES = ("gate_runs", "gate_rubrics")
_KEY_WHERE = "tree = ? AND case_hash = ? AND runner_hash = ? AND rep = ?"

Key = tuple[str, str, str, int]  # (tree, case_hash, runner_hash, rep)


class ResultsCache:
    """Run results for one gate; use from one thread (workers hand results back)."""

    def __init__(self, repo, enabled: bool = True):
        self.enabled = enabled
        self.conn = open_cache(repo) if enabled else None
        if self.conn is not None:
            ensure_tables(self.conn)

    def get_many(self, keys: list[Key]) -> dict[Key, RunResult]:
        if self.conn is None or not keys:  # no connection: the cache is disabled
            return {}
        wanted = set(keys)
        found: dict[Key, RunResult] = {}
        trees = {k[0] for k in keys}
        for tree in trees:
            for row in self.conn.execute(
                "SELECT tree, case_hash, runner_hash, rep, result FROM gate_runs WHERE tree = ?", (tree,)
            ):
                key = (row[0], row[1], row[2], row[3])
                if key in wanted:
                    found[key] = RunResult.from_dict(json.loads(row[4]), cached=True)
        if found:  # a hit is a use: gc keeps what gates still read
            _write(self.conn, f"UPDATE gate_runs SET used = ? WHERE {_KEY_WHERE}",
                   [(time.time(), *key) for key in found])
        return found

    def put_many(self, items: list[tuple[Key, RunResult]]) -> None:
        now = time.time()
        rows = [(*k, json.dumps(r.to_dict(), ensure_ascii=False), now, now) for k, r in items if r.status == "ok"]
        if self.conn is None or not rows:
            return
        _write(self.conn, "INSERT OR REPLACE INTO gate_runs (tree, case_hash, runner_hash, rep, result, created, used) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def rubric_get(repo, model: str, rubric: str, output: str) -> dict | None:
    conn = open_cache(repo)
    try:
        ensure_tables(conn)
        where = "model = ? AND rubric = ? AND output = ?"
        row = conn.execute(f"SELECT verdict FROM gate_rubrics WHERE {where}", (model, rubric, output)).fetchone()
        if row:
            conn.execute(f"UPDATE gate_rubrics SET used = ? WHERE {where}", (time.time(), model, rubric, output))
        return json.loads(row[0]) if row else None
    finally:
        conn.close()


def rubric_put(repo, model: str, rubric: str, output: str, verdict: dict) -> None:
    conn = open_cache(repo)
    try:
        ensure_tables(conn)
        conn.execute("INSERT OR REPLACE INTO gate_rubrics (model, rubric, output, verdict, used) "
                     "VALUES (?, ?, ?, ?, ?)", (model, rubric, output, json.dumps(verdict), time.time()))
    finally:
        conn.close()


# -- the tables and their upkeep -------------------------------------------------

def ensure_tables(conn) -> None:
    """Create the tables, and add `used` to tables an older aevolve made (their rows
    count as used when they were made: runs) or now (rubric verdicts, which kept no time)."""
    conn.execute(RUNS_TABLE)
    conn.execute(RUBRIC_TABLE)
    if all(_has_used(conn, table) for table in TABLES):
        return
    conn.execute("BEGIN IMMEDIATE")  # under the write lock: two processes must not both migrate
    try:
        for table in TABLES:
            if not _has_used(conn, table):
                conn.execute(f"ALTER TABLE {table} ADD COLUMN used REAL")
        conn.execute("UPDATE gate_runs SET used = created WHERE used IS NULL")
        conn.execute("UPDATE gate_rubrics SET used = ? WHERE used IS NULL", (time.time(),))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _has_used(conn, table: str) -> bool:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    return not columns or "used" in columns  # no columns: a skipped cache, nothing to migrate


def _write(conn, sql: str, rows: list) -> None:
    """Many rows in one transaction (the connection is in autocommit mode)."""
    conn.execute("BEGIN")
    try:
        conn.executemany(sql, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def count_rows(conn) -> int:
    """Rows of the largest gate table (the limit applies to each table)."""
    ensure_tables(conn)
    rows = [conn.execute(f"SELECT count(*) FROM {table}").fetchone() for table in TABLES]
    return max((row[0] for row in rows if row), default=0)  # a skipped cache answers no rows


def prune(conn, max_rows: int, max_age_s: float, now: float | None = None) -> int:
    """Delete rows unused for `max_age_s`, then the least recently used beyond
    `max_rows` in each table; the number of rows deleted."""
    ensure_tables(conn)
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in TABLES:
            old = conn.execute(f"DELETE FROM {table} WHERE used < ?", (cutoff,))
            extra = conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                                 "ORDER BY used DESC LIMIT -1 OFFSET ?)", (max(0, max_rows),))
            removed += max(0, old.rowcount) + max(0, extra.rowcount)  # -1 from a skipped cache
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return removed
