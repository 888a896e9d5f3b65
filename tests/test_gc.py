"""`aevolve gc` and the automatic upkeep: which trees and cache rows go, which stay."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time

import pytest

from aevolve._gate import gc
from aevolve._gate.materialize import LEFTOVER_AGE_S, MaterializedTree, list_trees, locks_dir, trees_dir
from aevolve._gate.results_cache import ResultsCache, count_rows
from aevolve._gate.runner import RunResult
from aevolve._git.repo import Repo
from aevolve._state.cache import connect, open_cache
from aevolve.cli.gc_cmds import command_of

from conftest import git, run_cli, wait_until, write

DAY = 86400.0


@pytest.fixture
def repo(state_repo) -> Repo:
    return Repo.open(state_repo)


def make_trees(repo: Repo, n: int, start: int = 0) -> list[str]:
    """`n` materialized trees, the first used longest ago (one second apart)."""
    base = repo.tree("main")
    ids = []
    for i in range(start, start + n):
        tree = str(repo.build_tree(base, {"memory/extra.jsonl": f'{{"id": "x{i}", "content": "c"}}\n'.encode()}))
        MaterializedTree.open(repo, tree).close()
        used = time.time() - 1000 + i
        os.utime(locks_dir(repo) / tree, (used, used))
        ids.append(tree)
    return ids


def present(repo: Repo) -> set[str]:
    return {t.tree_id for t in list_trees(repo)}


def limits(keep_trees=32, max_cache_rows=20000, max_age_days=30.0) -> gc.Limits:
    return gc.Limits(keep_trees, max_cache_rows, max_age_days)


# -- trees ----------------------------------------------------------------------------

def test_gc_keeps_the_most_recently_used_trees_and_reports_the_bytes_it_removed(repo):
    ids = make_trees(repo, 5)
    result = gc.collect(repo, limits(keep_trees=2))
    assert present(repo) == set(ids[-2:])
    assert (result.trees_removed, result.trees_kept) == (3, 2) and result.tree_bytes > 0
    assert sorted(p.name for p in locks_dir(repo).iterdir()) == sorted(ids[-2:])  # no lock file left behind


def test_a_tree_used_again_counts_as_recent(repo):
    ids = make_trees(repo, 3)
    MaterializedTree.open(repo, ids[0]).close()  # the oldest is used again: now the newest
    gc.collect(repo, limits(keep_trees=1))
    assert present(repo) == {ids[0]}


def test_trees_unused_for_max_age_days_go_even_under_the_count(repo):
    ids = make_trees(repo, 2)
    old = time.time() - 40 * DAY
    os.utime(locks_dir(repo) / ids[0], (old, old))
    gc.collect(repo, limits(keep_trees=10, max_age_days=30))
    assert present(repo) == {ids[1]}


def test_a_tree_without_a_lock_file_is_aged_by_its_folder(repo):
    ids = make_trees(repo, 2)
    (locks_dir(repo) / ids[0]).unlink()  # made by an aevolve without lock files
    old = time.time() - 40 * DAY
    os.utime(trees_dir(repo) / ids[0], (old, old))
    gc.collect(repo, limits(max_age_days=30))
    assert present(repo) == {ids[1]}


def test_a_tree_a_gate_holds_is_never_removed(repo):
    ids = make_trees(repo, 3)
    held = MaterializedTree.open(repo, ids[0])
    try:
        result = gc.collect(repo, limits(keep_trees=0))
        assert present(repo) == {ids[0]} and result.trees_in_use == 1
        assert held.end(held.begin()) == []  # its runs see an untouched folder
    finally:
        held.close()
    gc.collect(repo, limits(keep_trees=0))
    assert present(repo) == set()


def waiting_on(inode: int) -> bool:
    """Does a process wait for a lock on this inode (a "->" line of /proc/locks)?"""
    with open("/proc/locks") as fh:
        return any(len(f := line.split()) > 1 and f[1] == "->" and f":{inode} " in line for line in fh)


def test_a_gate_waiting_while_gc_removes_its_tree_rebuilds_it(repo):
    """The protocol of remove_tree, step by step: a gate that blocked on the lock file
    gc held finds it unlinked, takes a new one and builds the folder again."""
    (tree,) = make_trees(repo, 1)
    lock = locks_dir(repo) / tree
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    opened: list[MaterializedTree] = []
    opener = threading.Thread(target=lambda: opened.append(MaterializedTree.open(repo, tree)))
    opener.start()
    inode = os.fstat(fd).st_ino
    wait_until(lambda: waiting_on(inode), what="the gate to wait for the lock")
    os.rename(trees_dir(repo) / tree, trees_dir(repo) / f"{tree}.stale-test")
    lock.unlink()
    os.close(fd)
    opener.join(30)
    assert opened and opened[0].repaired == []
    assert (trees_dir(repo) / tree / "prompts/system.md").exists()
    assert os.stat(lock).st_ino != inode
    opened[0].close()


def test_folders_left_by_killed_gates_go_once_an_hour_old(repo):
    folder = trees_dir(repo)
    for name in (".tmp-abc-old", "f" * 40 + ".stale-old", ".tmp-abc-new"):
        write(folder, {f"{name}/file": "x"})
    old = time.time() - LEFTOVER_AGE_S - 60
    for name in (".tmp-abc-old", "f" * 40 + ".stale-old"):
        os.utime(folder / name, (old, old))
    result = gc.collect(repo, limits())
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-abc-new"]
    assert result.leftovers_removed == 2


# -- cache rows -------------------------------------------------------------------------

def put_rows(repo: Repo, n: int) -> list[tuple]:
    keys = [(f"tree{i}", "case", "runner", 0) for i in range(n)]
    cache = ResultsCache(repo)
    try:
        cache.put_many([(k, RunResult("ok", output=f"out {k[0]}")) for k in keys])
    finally:
        cache.close()
    return keys


def rows(repo: Repo) -> dict[str, float]:
    conn = sqlite3.connect(repo.git_dir / "aevolve" / "cache.sqlite")
    try:
        return dict(conn.execute("SELECT tree, used FROM gate_runs"))
    finally:
        conn.close()


def test_cache_rows_beyond_the_limit_go_least_recently_used_first(repo):
    keys = put_rows(repo, 5)
    conn = sqlite3.connect(repo.git_dir / "aevolve" / "cache.sqlite")
    with conn:
        conn.execute("UPDATE gate_runs SET used = used - 100")  # all older...
    conn.close()
    cache = ResultsCache(repo)
    assert set(cache.get_many([keys[0], keys[3]])) == {keys[0], keys[3]}  # ...but two read again
    cache.close()
    result = gc.collect(repo, limits(max_cache_rows=2))
    assert set(rows(repo)) == {"tree0", "tree3"} and result.rows_removed == 3


def test_cache_rows_unused_for_max_age_days_go(repo):
    put_rows(repo, 3)
    conn = sqlite3.connect(repo.git_dir / "aevolve" / "cache.sqlite")
    with conn:
        conn.execute("UPDATE gate_runs SET used = used - ? WHERE tree = 'tree1'", (40 * DAY,))
    conn.close()
    gc.collect(repo, limits(max_age_days=30))
    assert set(rows(repo)) == {"tree0", "tree2"}


def test_gc_gives_the_space_of_many_pruned_rows_back(repo):
    cache = ResultsCache(repo)
    cache.put_many([((f"t{i}", "c", "r", 0), RunResult("ok", output="x" * 2000)) for i in range(300)])
    cache.close()
    result = gc.collect(repo, limits(max_cache_rows=1))
    assert result.rows_removed == 299 and result.cache_bytes > 300 * 1000


def test_a_cache_made_by_an_older_aevolve_gains_its_used_column(repo):
    conn = sqlite3.connect(repo.aevolve_dir / "cache.sqlite")
    with conn:
        conn.execute("CREATE TABLE gate_runs (tree TEXT NOT NULL, case_hash TEXT NOT NULL, runner_hash TEXT NOT NULL,"
                     " rep INTEGER NOT NULL, result TEXT NOT NULL, created REAL NOT NULL,"
                     " PRIMARY KEY (tree, case_hash, runner_hash, rep))")
        conn.execute("CREATE TABLE gate_rubrics (model TEXT NOT NULL, rubric TEXT NOT NULL, output TEXT NOT NULL,"
                     " verdict TEXT NOT NULL, PRIMARY KEY (model, rubric, output))")
        conn.execute("INSERT INTO gate_runs VALUES ('t', 'c', 'r', 0, ?, 123.0)",
                     (json.dumps(RunResult("ok", output="old").to_dict()),))
    conn.close()
    cache = ResultsCache(repo)
    found = cache.get_many([("t", "c", "r", 0)])
    cache.close()
    assert found[("t", "c", "r", 0)].output == "old"
    assert rows(repo)["t"] > 123.0  # migrated (used = created), then touched by the read
    conn = open_cache(repo)
    assert count_rows(conn) == 1
    conn.close()


def test_the_automatic_check_prunes_rows_only_past_twice_the_limit(repo):
    put_rows(repo, 4)
    write(repo.workdir, {"aevolve.yaml": "version: 1\ngc:\n  max_cache_rows: 2\n"})
    git(repo.workdir, "commit", "-qam", "small cache")
    assert gc.maintain(repo) is None and len(rows(repo)) == 4  # 4 is not past 2 x 2
    put_rows(repo, 5)
    result = gc.maintain(repo)
    assert result is not None and result.rows_removed == 3 and len(rows(repo)) == 2


def test_the_automatic_check_prunes_trees_only_past_twice_the_limit(repo):
    write(repo.workdir, {"aevolve.yaml": "version: 1\ngc:\n  keep_trees: 2\n"})
    git(repo.workdir, "commit", "-qam", "few trees")
    ids = make_trees(repo, 4)
    assert gc.maintain(repo) is None and len(present(repo)) == 4
    ids += make_trees(repo, 1, start=4)
    assert gc.maintain(repo) is not None and present(repo) == set(ids[-2:])


# -- the cache's storage ----------------------------------------------------------------

def test_a_cache_file_that_cannot_be_opened_is_skipped_with_one_warning(tmp_path, capsys):
    path = tmp_path / "cache.sqlite"
    path.mkdir()  # not a file: SQLite cannot open it
    conn = connect(path)
    conn.execute("CREATE TABLE t (a)")
    assert conn.execute("SELECT * FROM t").fetchall() == []
    conn.executemany("INSERT INTO t VALUES (?)", [(1,)])
    conn.close()
    connect(path).close()
    err = capsys.readouterr().err
    assert err.count("warning: the cache") == 1 and str(path) in err


def test_a_corrupt_cache_file_is_skipped_not_fatal(tmp_path, capsys):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 200)
    conn = connect(path)
    assert conn.execute("SELECT 1").fetchall() == []
    assert conn.degraded and "not a database" in capsys.readouterr().err


def test_a_bad_statement_is_still_an_error(tmp_path):
    conn = connect(tmp_path / "cache.sqlite")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("SELEKT 1")  # a bug must not hide behind a skipped cache
    conn.close()


# -- configuration, command line, git ------------------------------------------------------

def test_limits_come_from_mains_aevolve_yaml_and_bad_values_keep_the_defaults(repo):
    write(repo.workdir, {"aevolve.yaml": "version: 1\ngc:\n  keep_trees: 3\n  max_cache_rows: -1\n"
                                         "  max_age_days: .nan\n"})
    git(repo.workdir, "commit", "-qam", "gc limits")
    assert gc.limits(repo) == gc.Limits(3, 5000, 30.0)


def test_gc_command_prints_what_it_removed_and_json(repo):
    make_trees(repo, 3)
    write(repo.workdir, {"aevolve.yaml": "version: 1\ngc:\n  keep_trees: 1\n"})
    git(repo.workdir, "commit", "-qam", "keep one tree")
    proc = run_cli("gc", cwd=repo.workdir)
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 materialized tree(s)" in proc.stdout and "kept 1" in proc.stdout
    proc = run_cli("gc", "--json", cwd=repo.workdir)
    data = json.loads(proc.stdout)
    assert data["trees_removed"] == 0 and data["trees_kept"] == 1 and data["limits"]["keep_trees"] == 1


def test_the_command_line_names_its_command_and_repository():
    assert command_of(["-C", "repo", "gate", "x", "--json"]) == ("gate", "repo")
    assert command_of(["-Crepo", "propose"]) == ("propose", "repo")
    assert command_of(["gate", "--help"]) == (None, ".")
    assert command_of(["--version"]) == (None, ".")
    assert command_of([]) == (None, ".")


def plant_loose(path, n: int) -> None:
    """`n` loose objects whose ids start with 17: the folder git samples for `gc --auto`."""
    i = 0
    while n:
        data = f"filler {i}\n".encode()
        i += 1
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=path, input=data, check=True,
                           capture_output=True)
            n -= 1


def test_git_is_asked_below_the_limits_only_when_its_sample_folder_has_work(repo):
    assert gc.pack_commands(repo) == []
    plant_loose(repo.workdir, 2)  # objects/17: a low gc.auto of the user's may apply
    assert gc.pack_commands(repo) == [gc.GC_AUTO]


def test_a_few_packs_start_no_git_after_a_command(repo):
    for i in range(2):
        plant_objects(repo.workdir, 3, tag=str(i))
        git(repo.workdir, "repack", "-d", "-l", "-q")
    assert gc.pack_commands(repo) == []


def test_packs_marked_keep_are_not_counted_towards_the_pack_limit(repo):
    for i in range(gc.PACK_LIMIT + 1):
        plant_objects(repo.workdir, 3, tag=str(i))
        git(repo.workdir, "repack", "-d", "-l", "-q")
    for pack in (repo.common_dir / "objects" / "pack").glob("*.pack"):
        pack.with_suffix(".keep").write_text("")
    assert gc.pack_commands(repo) == []


# -- packing git's objects sooner than git's own gc.auto -----------------------------

def plant_objects(path, n: int, tag: str = "x") -> None:
    """`n` loose blobs, reachable from refs/planted/<tag> (git packs only reachable objects)."""
    folder = path.parent / f"blobs-{tag}"
    folder.mkdir()
    for i in range(n):
        (folder / str(i)).write_text(f"blob {tag} {i}\n")
    ids = subprocess.run(["git", "hash-object", "-w", "--stdin-paths"], cwd=path, check=True, capture_output=True,
                         input="".join(f"{folder / str(i)}\n" for i in range(n)).encode()).stdout.split()
    listing = "".join(f"100644 blob {oid.decode()}\t{i}\n" for i, oid in enumerate(ids))
    tree = subprocess.run(["git", "mktree"], cwd=path, check=True, capture_output=True, input=listing.encode())
    commit = git(path, "commit-tree", "-m", f"planted {tag}", tree.stdout.decode().strip())
    git(path, "update-ref", f"refs/planted/{tag}", commit)


def counts(path) -> dict[str, int]:
    out = git(path, "count-objects", "-v")
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines()) if k in ("count", "packs")}


def test_the_upkeep_packs_loose_objects_once_the_limit_piled_up(repo):
    plant_objects(repo.workdir, 3 * gc.LOOSE_LIMIT)
    gc.maintain(repo)
    assert counts(repo.workdir) == {"count": 0, "packs": 1}


def test_fewer_loose_objects_than_the_limit_stay_loose(repo):
    before = counts(repo.workdir)["count"]
    plant_objects(repo.workdir, gc.LOOSE_LIMIT // 4)
    gc.maintain(repo)
    assert counts(repo.workdir)["count"] == before + gc.LOOSE_LIMIT // 4 + 2  # and a tree and a commit


def test_a_gc_auto_the_user_set_is_left_to_git(repo):
    git(repo.workdir, "config", "gc.auto", "0")  # automatic packing off
    plant_objects(repo.workdir, 3 * gc.LOOSE_LIMIT)
    gc.maintain(repo)
    assert counts(repo.workdir)["packs"] == 0


def test_aevolve_gc_packs_every_loose_object(repo):
    plant_objects(repo.workdir, 5)
    result = gc.collect(repo, limits())
    assert result.loose_before >= 5 + 2 and result.loose_after == 0
    assert counts(repo.workdir)["packs"] == 1


def test_aevolve_gc_merges_packs_past_the_pack_limit(repo):
    for i in range(gc.PACK_LIMIT + 1):
        plant_objects(repo.workdir, 3, tag=str(i))
        git(repo.workdir, "repack", "-d", "-l", "-q")
    assert counts(repo.workdir)["packs"] == gc.PACK_LIMIT + 1
    gc.collect(repo, limits())
    assert counts(repo.workdir) == {"count": 0, "packs": 1}
