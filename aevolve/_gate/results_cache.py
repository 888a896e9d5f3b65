"""Cached case runs and rubric verdicts in the repository's SQLite cache.

A run is keyed by (evaluated tree id, case content hash, runner config hash,
repeat index): the same state, the same case and the same runner give the same
run, so the baseline on main is run once for every candidate, and re-gating an
unchanged candidate starts no runner at all. Only successful runs are stored;
errors (timeouts, crashes) are retried on the next gate.
"""

from __future__ import annotations

import json
import time

from aevolve._gate.runner import RunResult
from aevolve._state.cache import open_cache

RUNS_TABLE = """CREATE TABLE IF NOT EXISTS gate_runs (
    tree TEXT NOT NULL, case_hash TEXT NOT NULL, runner_hash TEXT NOT NULL, rep INTEGER NOT NULL,
    result TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (tree, case_hash, runner_hash, rep))"""
RUBRIC_TABLE = """CREATE TABLE IF NOT EXISTS gate_rubrics (
    model TEXT NOT NULL, rubric TEXT NOT NULL, output TEXT NOT NULL, verdict TEXT NOT NULL,
    PRIMARY KEY (model, rubric, output))"""

Key = tuple[str, str, str, int]  # (tree, case_hash, runner_hash, rep)


class ResultsCache:
    """Run results for one gate; use from one thread (workers hand results back)."""

    def __init__(self, repo, enabled: bool = True):
        self.enabled = enabled
        self.conn = open_cache(repo) if enabled else None
        if self.conn is not None:
            self.conn.execute(RUNS_TABLE)

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
        return found

    def put_many(self, items: list[tuple[Key, RunResult]]) -> None:
        rows = [(*k, json.dumps(r.to_dict(), ensure_ascii=False), time.time()) for k, r in items if r.status == "ok"]
        if self.conn is None or not rows:
            return
        self.conn.execute("BEGIN")  # one transaction: the connection is in autocommit mode
        try:
            self.conn.executemany("INSERT OR REPLACE INTO gate_runs VALUES (?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def rubric_get(repo, model: str, rubric: str, output: str) -> dict | None:
    conn = open_cache(repo)
    try:
        conn.execute(RUBRIC_TABLE)
        row = conn.execute(
            "SELECT verdict FROM gate_rubrics WHERE model = ? AND rubric = ? AND output = ?", (model, rubric, output)
        ).fetchone()
        return json.loads(row[0]) if row else None
    finally:
        conn.close()


def rubric_put(repo, model: str, rubric: str, output: str, verdict: dict) -> None:
    conn = open_cache(repo)
    try:
        conn.execute(RUBRIC_TABLE)
        conn.execute("INSERT OR REPLACE INTO gate_rubrics VALUES (?, ?, ?, ?)",
                     (model, rubric, output, json.dumps(verdict)))
    finally:
        conn.close()
