"""A read-only or full `.git/aevolve`, and growth without bound: `aevolve gate` either
decides without its cache (one warning naming the file) or stops with exit 7 naming
what cannot be written; `aevolve gc` and the automatic upkeep keep trees, cache rows
and loose objects bounded, and never pull a tree from under a running gate.

Full disks are small tmpfs mounts (root only; skipped otherwise), and, for any user,
a file-size limit (RLIMIT_FSIZE: a write past it fails with EFBIG, as on a full disk).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_gc import plant_loose

from conftest import git, run_cli, wait_until
from gate_support import GateRepo, cases_yaml

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs mounts, /proc")

CACHE_WARNING = "warning: the cache"


def gate_repo(tmp_path, gc: str = "", answers: dict | None = None) -> GateRepo:
    """A gate repository whose cases pass on main, with a `gc:` section in its aevolve.yaml."""
    g = GateRepo(tmp_path, answers or {"a": "right", "b": "right"}, cases_yaml("a", "b"))
    if gc:
        config = g.path / "aevolve.yaml"
        config.write_text(config.read_text() + "gc:\n" + textwrap.indent(gc.strip() + "\n", "  "))
        git(g.path, "commit", "-qam", "gc limits")
    return g


def tree_names(g: GateRepo) -> set[str]:
    folder = g.path / ".git/aevolve/trees"
    return {p.name for p in folder.iterdir() if "." not in p.name} if folder.is_dir() else set()


def cache_rows(g: GateRepo) -> int:
    conn = sqlite3.connect(g.path / ".git/aevolve/cache.sqlite")
    try:
        return conn.execute("SELECT count(*) FROM gate_runs").fetchone()[0]
    finally:
        conn.close()


def mount(*argv: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    proc = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here: {proc.stderr.strip()}")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        umount(path)


@contextlib.contextmanager
def read_only(path: Path):
    """`path` read-only: a read-only bind mount for root (whom mode bits do not stop),
    mode bits for anyone else."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        try:
            yield
        finally:
            os.chmod(path, 0o755)
        return
    mount("--bind", str(path), str(path))
    try:
        mount("-o", "remount,bind,ro", str(path))
        yield
    finally:
        umount(path)


def fill(folder: Path) -> None:
    """Write into `folder` until its file system is full."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


# -- read-only and full ---------------------------------------------------------------------

def test_a_read_only_aevolve_dir_gates_without_the_cache_and_warns_once(tmp_path):
    g = gate_repo(tmp_path)
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    assert run_cli("gate", "evolve/x", cwd=g.path).returncode == 0
    runs = g.runs()
    git(g.path, "update-ref", "-d", "refs/notes/aevolve-runs")  # the runs notes would serve them: this is about SQLite
    with read_only(g.path / ".git/aevolve"):
        proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(CACHE_WARNING) == 1 and str(g.path / ".git/aevolve/cache.sqlite") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert g.runs() == 2 * runs  # nothing came from the cache: every run ran again


def test_a_read_only_aevolve_dir_and_a_tree_never_materialized_is_exit_7_naming_the_path(tmp_path):
    g = gate_repo(tmp_path)
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    (g.path / ".git/aevolve/trees").mkdir(parents=True, exist_ok=True)
    with read_only(g.path / ".git/aevolve"):
        proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 7, proc.stderr
    assert "cannot write the materialized copy of tree" in proc.stderr and ".git/aevolve/trees" in proc.stderr
    assert "writable" in proc.stderr and "Traceback" not in proc.stderr


def test_a_full_disk_while_gating_skips_the_cache_with_one_warning(tmp_path):
    g = gate_repo(tmp_path)
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    g.answers_branch("evolve/y", a="right", b="right", c="other")
    aevolve = g.path / ".git/aevolve"
    with small_disk(aevolve, "1m"):
        (aevolve / "tree-locks").mkdir()
        with small_disk(aevolve / "trees", "8m"):  # trees fit; only the cache's disk fills
            assert run_cli("gate", "evolve/x", cwd=g.path).returncode == 0
            fill(aevolve)
            proc = run_cli("gate", "evolve/y", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(CACHE_WARNING) == 1 and str(aevolve / "cache.sqlite") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_full_disk_for_the_materialized_tree_is_exit_7_naming_the_path(tmp_path):
    g = gate_repo(tmp_path)
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    with small_disk(g.path / ".git/aevolve", "256k") as disk:
        fill(disk)
        proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 7, proc.stderr
    assert "No space left on device" in proc.stderr and ".git/aevolve/trees" in proc.stderr
    assert "free space" in proc.stderr and "Traceback" not in proc.stderr


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_file_size_limit_on_the_cache_is_one_warning_not_a_traceback(tmp_path):
    """Any user: past RLIMIT_FSIZE a write fails with EFBIG (Python ignores SIGXFSZ), as
    on a full disk. SQLite's pages are 4 KiB; the state's files are far smaller."""
    g = gate_repo(tmp_path)
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    proc = subprocess.run([sys.executable, "-m", "aevolve", "gate", "evolve/x"], cwd=g.path, capture_output=True,
                          text=True, timeout=120, preexec_fn=_file_size_limit(6000))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(CACHE_WARNING) == 1 and "Traceback" not in proc.stderr


def test_a_file_size_limit_on_a_materialized_file_is_exit_7(tmp_path):
    g = gate_repo(tmp_path)
    g.branch("evolve/big", {"prompts/big.md": "x" * 20000})
    proc = subprocess.run([sys.executable, "-m", "aevolve", "gate", "evolve/big"], cwd=g.path, capture_output=True,
                          text=True, timeout=120, preexec_fn=_file_size_limit(8192))
    assert proc.returncode == 7, proc.stderr
    assert "File too large" in proc.stderr and "prompts/big.md" in proc.stderr and "Traceback" not in proc.stderr


# -- bounded growth ----------------------------------------------------------------------------

def materialize_many(g: GateRepo, n: int) -> list[str]:
    """`n` materialized trees as `n` gates leave them (oldest first): copies of main's
    materialized tree under other ids (gc reads names and use times, never contents)."""
    from aevolve._gate.materialize import MaterializedTree, locks_dir

    main = MaterializedTree.open(g.repo, str(g.repo.tree("main").id))
    main.close()
    ids = []
    for i in range(n):
        tree = hashlib.sha1(b"tree %d" % i).hexdigest()
        shutil.copytree(main.root, main.root.with_name(tree))
        (locks_dir(g.repo) / tree).touch()
        os.utime(locks_dir(g.repo) / tree, (1_000_000 + i, 1_000_000 + i))  # used in this order, long ago
        ids.append(tree)
    os.utime(locks_dir(g.repo) / main.tree_id, (999_999, 999_999))  # main's own copy: the oldest
    return ids


def test_200_materialized_trees_are_pruned_to_keep_trees_by_gc(tmp_path):
    g = gate_repo(tmp_path, "keep_trees: 32\nmax_age_days: 1000000")
    ids = materialize_many(g, 200)
    proc = run_cli("gc", "--json", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["trees_removed"] == 169 and data["tree_bytes"] > 0  # with main's own copy
    assert tree_names(g) == set(ids[-32:])  # the most recently used
    assert len(list((g.path / ".git/aevolve/tree-locks").iterdir())) == 32


def test_cache_rows_are_pruned_by_gc(tmp_path):
    g = gate_repo(tmp_path, "max_cache_rows: 4")
    for n in range(3):
        g.answers_branch(f"evolve/x{n}", a="right", b="right", c=f"v{n}")
        assert run_cli("gate", f"evolve/x{n}", cwd=g.path).returncode == 0
    assert cache_rows(g) == 8  # 2 runs of main, 2 of each candidate: not past twice the limit
    proc = run_cli("gc", cwd=g.path)
    assert proc.returncode == 0 and "removed 4 cached result(s)" in proc.stdout
    assert cache_rows(g) == 4


BLOCKING_AGENT = textwrap.dedent('''
    import os, sys, time
    folder = os.path.dirname(sys.argv[1])
    open(os.path.join(folder, "started"), "a").close()
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(folder, "go")) and time.time() < deadline:
        time.sleep(0.01)
    print("right")
''')


def test_a_tree_in_use_by_a_concurrent_gate_survives_gc(tmp_path):
    g = gate_repo(tmp_path, "keep_trees: 0")
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    (tmp_path / "agent.py").write_text(BLOCKING_AGENT)  # the runner waits for tmp_path/go
    gate = subprocess.Popen([sys.executable, "-m", "aevolve", "gate", "evolve/x"], cwd=g.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (tmp_path / "started").exists(), what="the gate's first run")
        proc = run_cli("gc", "--json", cwd=g.path)
        data = json.loads(proc.stdout)
        assert data["trees_removed"] == 0 and data["trees_in_use"] == 2
        assert len(tree_names(g)) == 2
    finally:
        (tmp_path / "go").touch()
        out, err = gate.communicate(timeout=60)
    assert gate.returncode == 0, err
    assert "tampered" not in out + err and "modified" not in out + err
    assert run_cli("gc", cwd=g.path).returncode == 0
    assert tree_names(g) == set()  # once the gate is done, keep_trees 0 keeps none


def test_a_writing_command_prunes_trees_and_rows_once_past_twice_the_limit(tmp_path):
    g = gate_repo(tmp_path, "keep_trees: 1\nmax_cache_rows: 1")
    materialize_many(g, 3)
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    assert tree_names(g) <= {str(g.repo.tree("main").id), str(g.repo.tree("evolve/x").id)}
    assert len(tree_names(g)) == 1  # the gate's own trees were the most recently used
    assert cache_rows(g) == 1


def count_objects(path: Path) -> dict[str, int]:
    out = git(path, "count-objects", "-v")
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines()) if v.isdigit()}


def test_loose_objects_are_packed_after_enough_writes(tmp_path):
    g = gate_repo(tmp_path)
    git(g.path, "config", "gc.auto", "16")
    git(g.path, "config", "gc.autoDetach", "false")  # in the foreground, so the test sees the result
    g.answers_branch("evolve/x", a="right", b="right", c="new")
    plant_loose(g.path, 2)  # as many writes would: past gc.auto/256 in objects/17
    before = count_objects(g.path)
    assert before["in-pack"] == 0
    proc = run_cli("gate", "evolve/x", cwd=g.path)
    assert proc.returncode == 0, proc.stderr
    after = count_objects(g.path)
    assert after["in-pack"] > 0 and after["count"] < before["count"]
    assert git(g.path, "fsck", "--no-dangling") == ""
