"""Stale locks, a read-only `.git/refs` and a full disk are each reported as what they
are (exit 7, the path, the fix), at once, never as contention; once fixed, the same
command works. Read-only folders and full disks need mounts (root in a container):
without them those tests skip."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aevolve._errors import STORAGE, StaleLock, StorageError
from aevolve._git.notes import write_gate_report
from aevolve._git.repo import MAIN, NOTES_REF, Repo

from conftest import git, make_state_repo, run_cli, verdict_for, wait_until

HOUR_AGO = time.time() - 3600


def gated_candidate(repo: Repo, branch: str = "evolve/x") -> str:
    main = repo.ref_target(MAIN)
    tree = repo.build_tree(repo.resolve(main).tree, {"prompts/system.md": b"Be precise.\n"})
    commit = str(repo.commit(tree, [main], "evolve: a change\n"))
    repo.create_ref(f"refs/heads/{branch}", commit)
    write_gate_report(repo, verdict_for(repo, commit))
    return commit


def leave_lock(path: Path, mtime: float | None = HOUR_AGO) -> Path:
    """A lock file as a process that died holding it leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def repo(state_repo) -> Repo:
    return Repo.open(state_repo)


# -- stale locks -------------------------------------------------------------------------------

@pytest.mark.parametrize("lock", ["refs/heads/main.lock", "HEAD.lock", "refs/notes/aevolve.lock"])
def test_a_stale_lock_on_a_ref_promote_moves_is_exit_7_with_its_path(repo, lock):
    root = repo.workdir
    old = repo.ref_target(MAIN)
    cand = gated_candidate(repo)
    path = leave_lock(repo.git_dir / lock)
    result = run_cli("promote", "evolve/x", "--no-regate", cwd=root)
    assert result.returncode == STORAGE, result.stderr
    assert str(path) in result.stderr and "no git process is running" in result.stderr
    assert "kept moving" not in result.stderr
    assert repo.ref_target(MAIN) == old
    path.unlink()
    again = run_cli("promote", "evolve/x", "--no-regate", cwd=root)
    assert again.returncode == 0, again.stderr
    assert repo.ref_target(MAIN) == cand


def test_a_lock_left_a_moment_ago_is_called_stale_once_it_outlives_a_live_git(repo):
    cand = gated_candidate(repo)
    path = leave_lock(repo.git_dir / "refs/heads/main.lock", mtime=None)  # just now: could be a live git
    result = run_cli("promote", cand, "--no-regate", cwd=repo.workdir)
    assert result.returncode == STORAGE and str(path) in result.stderr


def test_a_stale_notes_lock_stops_a_note_write_with_its_path(repo):
    path = leave_lock(repo.git_dir / "refs/notes/aevolve.lock")
    with pytest.raises(StaleLock) as err:
        repo.write_note(repo.ref_target(MAIN), b"{}")
    assert err.value.path == str(path) and err.value.exit_code == STORAGE


def test_a_stale_lock_on_a_ref_being_created_is_exit_7(repo, tmp_path):
    path = leave_lock(repo.git_dir / "refs/aevolve/observations.lock")
    source = tmp_path / "o.jsonl"
    source.write_text(json.dumps({"id": "o-1", "task": "t", "output": "o", "ts": "2025-01-01T10:00:00Z",
                                  "feedback": {"success": False}}) + "\n")
    result = run_cli("observe", source, cwd=repo.workdir)
    assert result.returncode == STORAGE, result.stderr
    assert str(path) in result.stderr
    path.unlink()
    assert run_cli("observe", source, cwd=repo.workdir).returncode == 0


def test_a_process_group_killed_inside_the_transaction_leaves_locks_the_next_promote_names(repo):
    """The issue's case: every later promotion waited 6-20 s, then blamed the notes ref."""
    root = repo.workdir
    cand = gated_candidate(repo)
    env = {**os.environ, "AEVOLVE_TEST_PAUSE_AT": "promote-prepare", "AEVOLVE_TEST_PAUSE_SECONDS": "60"}
    proc = subprocess.Popen([sys.executable, "-m", "aevolve", "promote", "evolve/x", "--no-regate"], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stderr.readline().strip() == "aevolve-test-pause promote-prepare"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # git update-ref dies holding its locks
        proc.communicate(timeout=30)
    locks = sorted(str(p) for p in repo.git_dir.rglob("*.lock") if "aevolve" not in p.parent.name)
    assert locks, "the killed transaction should have left its ref locks"
    result = run_cli("promote", "evolve/x", "--no-regate", cwd=root)
    assert result.returncode == STORAGE, result.stderr
    assert any(lock in result.stderr for lock in locks) and "kept moving" not in result.stderr
    for lock in locks:
        Path(lock).unlink()
    again = run_cli("promote", "evolve/x", "--no-regate", cwd=root)
    assert again.returncode == 0, again.stderr
    assert repo.ref_target(MAIN) == cand
    assert git(root, "status", "--porcelain") == ""


# -- read-only folders ---------------------------------------------------------------------------

@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` read-only: a read-only bind mount as root (root ignores permissions),
    the write bits off otherwise."""
    if os.geteuid() == 0:
        proc = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot make a read-only mount here: {proc.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)
        return
    folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    for path in folders:
        path.chmod(0o555)
    try:
        yield
    finally:
        for path in folders:
            path.chmod(0o755)


def test_a_read_only_refs_folder_is_exit_7_naming_it(repo):
    root = repo.workdir
    old = repo.ref_target(MAIN)
    cand = gated_candidate(repo)
    with read_only(repo.git_dir / "refs"):
        result = run_cli("promote", "evolve/x", "--no-regate", cwd=root)
    assert result.returncode == STORAGE, result.stderr
    assert "read-only" in result.stderr and str(repo.git_dir / "refs") in result.stderr
    assert repo.ref_target(MAIN) == old
    assert not (repo.git_dir / "aevolve" / "promote-journal.json").exists()
    assert run_cli("promote", "evolve/x", "--no-regate", cwd=root).returncode == 0
    assert repo.ref_target(MAIN) == cand


def test_a_repository_lock_whose_file_cannot_be_created_is_a_storage_error(repo):
    folder = repo.git_dir / "aevolve"
    folder.mkdir(exist_ok=True)
    with read_only(folder), pytest.raises(StorageError, match="read-only") as err, repo.lock("promote"):
        pass
    assert err.value.path == str(folder / "promote.lock")


# -- a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A state repository on its own 4 MB tmpfs; `fill()` takes every free byte, `free()` gives them back."""
    if os.geteuid() != 0:
        pytest.skip("a small file system needs a mount (root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    root = make_state_repo(tmp_path / "state")
    shutil.copytree(root, mount / "state", symlinks=True)
    git(mount / "state", "update-index", "-q", "--refresh")  # new inodes: the index matches the files again
    filler = mount / "filler"

    class Disk:
        repo = Repo.open(mount / "state")

        @staticmethod
        def fill() -> None:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                for chunk in (65536, 1):  # then the last block, byte by byte
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * chunk)
            finally:
                os.close(fd)

        @staticmethod
        def free() -> None:
            filler.unlink()

    try:
        yield Disk
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_commit_on_a_full_disk_is_a_storage_error_not_an_id(full_disk):
    repo = full_disk.repo
    main = repo.ref_target(MAIN)
    full_disk.fill()
    with pytest.raises(StorageError, match="disk full") as err:
        repo.commit(repo.resolve(main).tree.id, [main], "a commit nobody can write\n")  # its tree exists
    assert str(repo.git_dir / "objects") in str(err.value)


def test_propose_on_a_full_disk_is_exit_7_and_works_once_there_is_room(full_disk, tmp_path):
    repo = full_disk.repo
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps([{"op": "write", "path": "prompts/new.md", "content": "new prompt\n"}]))
    argv = ["propose", "--edits", edits, "--title", "a new prompt", "--diagnosis", "d", "--change", "c",
            "--expected-effect", "e"]
    full_disk.fill()
    result = run_cli(*argv, cwd=repo.workdir)
    assert result.returncode == STORAGE, result.stderr
    assert "disk full" in result.stderr and "Traceback" not in result.stderr
    assert git(repo.workdir, "for-each-ref", "refs/heads/evolve/") == ""
    full_disk.free()
    assert run_cli(*argv, cwd=repo.workdir).returncode == 0


def test_moving_refs_on_a_full_disk_is_exit_7_not_contention(full_disk):
    repo = full_disk.repo
    cand = gated_candidate(repo)
    old, notes = repo.ref_target(MAIN), repo.ref_target(NOTES_REF)
    full_disk.fill()
    with pytest.raises(StorageError, match="disk full"):
        repo.transaction([(MAIN, cand, old)])
    with pytest.raises(StorageError, match="disk full"):
        repo.update_ref(MAIN, cand, old)
    with pytest.raises(StorageError, match="disk full"):
        repo.create_ref("refs/heads/another", cand)
    assert (repo.ref_target(MAIN), repo.ref_target(NOTES_REF)) == (old, notes)
    full_disk.free()
    wait_until(lambda: os.statvfs(repo.git_dir).f_bavail > 0, what="the space to come back")
    repo.transaction([(MAIN, cand, old)])
    assert repo.ref_target(MAIN) == cand


def test_promote_on_a_full_disk_is_exit_7_and_works_once_there_is_room(full_disk):
    repo = full_disk.repo
    old = repo.ref_target(MAIN)
    cand = gated_candidate(repo)
    full_disk.fill()
    result = run_cli("promote", "evolve/x", "--no-regate", cwd=repo.workdir)
    assert result.returncode == STORAGE, result.stderr
    assert "disk full" in result.stderr and str(repo.git_dir) in result.stderr
    assert repo.ref_target(MAIN) == old
    full_disk.free()
    again = run_cli("promote", "evolve/x", "--no-regate", cwd=repo.workdir)
    assert again.returncode == 0, again.stderr
    assert repo.ref_target(MAIN) == cand and git(repo.workdir, "status", "--porcelain") == ""


def test_a_touched_file_on_a_full_disk_is_not_taken_for_uncommitted_work(full_disk):
    repo = full_disk.repo
    gated_candidate(repo)
    os.utime(repo.workdir / "prompts/system.md")  # stat data stale, content unchanged: refreshing must write
    full_disk.fill()
    result = run_cli("promote", "evolve/x", "--no-regate", cwd=repo.workdir)
    assert result.returncode == STORAGE, result.stderr
    assert "disk full" in result.stderr and "uncommitted" not in result.stderr
