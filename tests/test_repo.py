"""The git layer: reading at refs, building commits without a worktree, CAS refs, notes, lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pygit2
import pytest

from aevolve._errors import LockBusy, RefMoved, RefNotFound
from aevolve._git.repo import MAIN, ZERO, Repo

from conftest import git, make_state_repo, write

ROOT = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> tuple[str, bytes]:
    """What the user sees of their checkout: porcelain status and the index file's bytes."""
    return git(root, "status", "--porcelain", "--untracked-files=all"), (root / ".git" / "index").read_bytes()


# -- reading -------------------------------------------------------------------------


def test_read_at_a_ref_does_not_touch_the_worktree(state_repo):
    repo = Repo.open(state_repo)
    first = repo.ref_target(MAIN)
    (state_repo / "prompts" / "system.md").write_text("changed in the worktree\n")
    git(state_repo, "commit", "-qam", "second")
    (state_repo / "prompts" / "system.md").write_text("uncommitted edit\n")
    before = snapshot(state_repo)

    old = repo.read(repo.tree(first), "prompts/system.md")
    new = repo.read(repo.tree("main"), "prompts/system.md")

    assert old == b"You are a helpful support agent.\nAnswer briefly.\n"
    assert new == b"changed in the worktree\n"
    assert snapshot(state_repo) == before


def test_read_returns_none_for_missing_paths_and_folders(state_repo):
    repo = Repo.open(state_repo)
    tree = repo.tree("main")
    assert repo.read(tree, "no/such/file") is None
    assert repo.read(tree, "skills") is None


def test_blob_reads_a_big_loose_blob_and_a_small_one_exactly(state_repo):
    import random

    repo = Repo.open(state_repo)
    big = random.Random(3).randbytes(3 << 20)  # incompressible: its loose file passes the threshold
    oids = [repo.git.create_blob(data) for data in (big, b"small\n", b"")]
    assert [repo.blob(oid) for oid in oids] == [big, b"small\n", b""]
    assert repo.blob(str(oids[0])) == big


def test_walk_lists_every_file_with_its_blob_id(state_repo):
    repo = Repo.open(state_repo)
    files = {f.path: f.oid for f in repo.walk(repo.tree("main"))}
    listed = dict(
        reversed(line.split("\t")[0].split()[2:3] + [line.split("\t")[1]])
        for line in git(state_repo, "ls-tree", "-r", "main").splitlines()
    )
    assert files == listed


def test_resolve_unknown_revision_raises_ref_not_found(state_repo):
    with pytest.raises(RefNotFound, match="nope"):
        Repo.open(state_repo).resolve("nope")


# -- build_tree -----------------------------------------------------------------------


def test_build_tree_edits_adds_and_deletes(state_repo):
    repo = Repo.open(state_repo)
    base = repo.tree("main")
    tree = repo.git[repo.build_tree(base, {
        "prompts/system.md": b"new prompt\n",
        "memory/episodic.jsonl": None,
        "skills/new-skill/SKILL.md": b"---\nname: new-skill\ndescription: d\n---\nbody\n",
    })]
    assert repo.read(tree, "prompts/system.md") == b"new prompt\n"
    assert repo.read(tree, "memory/episodic.jsonl") is None
    assert repo.read(tree, "skills/new-skill/SKILL.md").startswith(b"---\nname: new-skill")
    # untouched subtrees are shared, not rewritten
    assert tree["tools"].id == base["tools"].id
    assert repo.read(tree, "skills/refund-policy/SKILL.md") == repo.read(base, "skills/refund-policy/SKILL.md")


def test_build_tree_creates_deeply_nested_paths(state_repo):
    repo = Repo.open(state_repo)
    tree = repo.git[repo.build_tree(repo.tree("main"), {"skills/a/references/deep/x.md": b"x"})]
    assert repo.read(tree, "skills/a/references/deep/x.md") == b"x"


def test_build_tree_removes_folders_left_empty(state_repo):
    repo = Repo.open(state_repo)
    tree = repo.git[repo.build_tree(repo.tree("main"), {"memory/episodic.jsonl": None,
                                                         "skills/refund-policy/SKILL.md": None})]
    assert "memory" not in tree
    assert "skills" not in tree
    assert "prompts" in tree


def test_build_tree_deleting_a_missing_path_is_a_no_op(state_repo):
    repo = Repo.open(state_repo)
    base = repo.tree("main")
    assert repo.build_tree(base, {"nothing/here.txt": None}) == base.id


def test_build_tree_from_nothing(state_repo):
    repo = Repo.open(state_repo)
    tree = repo.git[repo.build_tree(None, {"a/b.txt": b"b", "c.txt": b"c"})]
    assert sorted(f.path for f in repo.walk(tree)) == ["a/b.txt", "c.txt"]


def test_build_tree_keeps_an_executable_mode(state_repo):
    repo = Repo.open(state_repo)
    tree = repo.git[repo.build_tree(repo.tree("main"), {"tools/run.sh": b"#!/bin/sh\n"},
                                    modes={"tools/run.sh": pygit2.enums.FileMode.BLOB_EXECUTABLE})]
    assert tree["tools/run.sh"].filemode == pygit2.enums.FileMode.BLOB_EXECUTABLE


# -- commits and refs -------------------------------------------------------------------


def test_commit_never_touches_the_users_worktree_or_index(state_repo):
    (state_repo / "prompts" / "system.md").write_text("work in progress\n")
    write(state_repo, {"notes.txt": "untracked\n"})
    git(state_repo, "add", "notes.txt")
    before = snapshot(state_repo)
    repo = Repo.open(state_repo)
    old = repo.ref_target(MAIN)

    tree = repo.build_tree(repo.tree(old), {"memory/episodic.jsonl": b'{"id": "m-2", "content": "x"}\n'})
    new = repo.commit(tree, [old], "evolve(memory): add m-2\n")
    repo.create_ref("refs/heads/evolve/m-2", new)  # moving checked-out main would change status

    assert snapshot(state_repo) == before
    assert git(state_repo, "rev-parse", "evolve/m-2") == str(new)
    assert git(state_repo, "show", "evolve/m-2:memory/episodic.jsonl") == '{"id": "m-2", "content": "x"}'
    assert (git(state_repo, "log", "-1", "--format=%an <%ae>|%s", "evolve/m-2")
            == "Test Author <author@example.com>|evolve(memory): add m-2")
    assert git(state_repo, "fsck", "--no-progress") == ""


def test_update_ref_fails_cleanly_when_the_ref_moved(state_repo):
    repo = Repo.open(state_repo)
    old = repo.ref_target(MAIN)
    mine = repo.commit(repo.tree(old).id, [old], "mine\n")
    git(state_repo, "commit", "-q", "--allow-empty", "-m", "someone else")
    theirs = git(state_repo, "rev-parse", "main")

    with pytest.raises(RefMoved):
        repo.update_ref(MAIN, mine, old)
    assert git(state_repo, "rev-parse", "main") == theirs


def test_create_ref_refuses_an_existing_ref(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    repo.create_ref("refs/heads/evolve/x", head)
    with pytest.raises(RefMoved, match="already exists"):
        repo.create_ref("refs/heads/evolve/x", head)
    with pytest.raises(RefMoved):
        repo.update_ref("refs/heads/evolve/x", head, None)


def test_update_ref_works_on_packed_refs(state_repo):
    git(state_repo, "pack-refs", "--all")
    repo = Repo.open(state_repo)
    old = repo.ref_target(MAIN)
    new = repo.commit(repo.tree(old).id, [old], "next\n")
    repo.update_ref(MAIN, new, old)
    assert git(state_repo, "rev-parse", "main") == str(new)


def test_transaction_moves_every_ref_or_none(state_repo):
    repo = Repo.open(state_repo)
    old = repo.ref_target(MAIN)
    new = str(repo.commit(repo.tree(old).id, [old], "next\n"))
    repo.create_ref("refs/heads/evolve/a", old)

    with pytest.raises(RefMoved, match="nothing was changed"):
        repo.transaction([(MAIN, new, old), ("refs/heads/evolve/a", new, new)])  # second old is wrong
    assert repo.ref_target(MAIN) == old
    assert repo.ref_target("refs/heads/evolve/a") == old

    repo.transaction([(MAIN, new, old), ("refs/heads/evolve/a", ZERO, old), ("refs/heads/evolve/b", new, None)])
    assert repo.ref_target(MAIN) == new
    assert repo.ref_target("refs/heads/evolve/a") is None
    assert repo.ref_target("refs/heads/evolve/b") == new


def test_refs_lists_refs_under_a_prefix(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    repo.create_ref("refs/heads/evolve/one", head)
    repo.create_ref("refs/heads/evolve/two", head)
    assert repo.refs("refs/heads/evolve/") == {"refs/heads/evolve/one": head, "refs/heads/evolve/two": head}


# -- notes -------------------------------------------------------------------------------


def test_write_note_is_read_by_git_notes(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    repo.write_note(head, b"first\n")
    repo.write_note(head, b"second\n")  # replaces
    assert repo.read_note(head) == b"second\n"
    assert git(state_repo, "notes", "--ref", "aevolve", "show", head) == "second"


def test_read_note_of_a_commit_without_one_is_none(state_repo):
    repo = Repo.open(state_repo)
    assert repo.read_note(repo.ref_target(MAIN)) is None


def test_write_note_respects_notes_written_by_git_with_fanout(state_repo):
    head = git(state_repo, "rev-parse", "main")
    git(state_repo, "notes", "--ref", "aevolve", "add", "-m", "from git", head)
    repo = Repo.open(state_repo)
    other = str(repo.commit(repo.tree(head).id, [head], "other\n"))
    repo.write_note(other, b"from aevolve\n")
    assert git(state_repo, "notes", "--ref", "aevolve", "show", head) == "from git"
    assert git(state_repo, "notes", "--ref", "aevolve", "show", other) == "from aevolve"


def test_write_note_puts_the_note_at_the_two_level_fanout_path(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    notes_commit = repo.write_note(head, b"fanned\n")
    assert git(state_repo, "ls-tree", "-r", "--name-only", notes_commit) == f"{head[:2]}/{head[2:]}"
    assert git(state_repo, "notes", "--ref", "aevolve", "show", head) == "fanned"


def test_write_note_replaces_a_flat_note_instead_of_keeping_two(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    flat_tree = repo.build_tree(None, {head: b"old flat\n"})
    repo.update_ref("refs/notes/aevolve", repo.commit(flat_tree, [], "flat notes\n"), None)
    assert repo.read_note(head) == b"old flat\n"  # an older flat layout still reads
    notes_commit = repo.write_note(head, b"new\n")
    assert git(state_repo, "ls-tree", "-r", "--name-only", notes_commit) == f"{head[:2]}/{head[2:]}"
    assert repo.note_at(notes_commit, head) == b"new\n"


def test_reader_notes_of_many_commits_reads_flat_and_fanned_notes(state_repo):
    from aevolve._git.reader import GitReader

    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    commits = [str(repo.commit(repo.tree(head).id, [head], f"c{i}\n")) for i in range(20)]
    flat = repo.commit(repo.build_tree(None, {commits[0]: b"flat\n"}), [], "flat notes\n")
    repo.update_ref("refs/notes/aevolve", flat, None)
    for commit in commits[1:10]:
        repo.write_note(commit, f"n {commit}\n".encode())
    with GitReader(repo) as reader:
        notes = reader.notes_of(repo.ref_target("refs/notes/aevolve"), commits)
    assert notes[commits[0]] == b"flat\n"
    assert all(notes[c] == f"n {c}\n".encode() for c in commits[1:10])
    assert all(notes[c] is None for c in commits[10:])


NOTE_WRITER = textwrap.dedent("""
    import sys
    from aevolve._git.repo import Repo
    repo = Repo.open(sys.argv[1])
    for commit in sys.argv[2:]:
        repo.write_note(commit, f"note for {commit}\\n".encode())
""")


def test_parallel_note_writers_lose_no_note(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    tree = repo.tree(head).id
    commits = [str(repo.commit(tree, [head], f"c{i}\n")) for i in range(8 * 5)]
    procs = [
        subprocess.Popen([sys.executable, "-c", NOTE_WRITER, str(state_repo), *commits[i::8]],
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for i in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    listed = git(state_repo, "notes", "--ref", "aevolve", "list").splitlines()
    assert len(listed) == len(commits)
    # what `git notes show` prints for each commit, read by one git process: header, note, blank line
    blobs = dict(reversed(line.split()) for line in listed)
    batch = subprocess.run(["git", "cat-file", "--batch"], cwd=state_repo, capture_output=True, text=True, check=True,
                           input="".join(blobs[commit] + "\n" for commit in commits)).stdout.splitlines()
    assert batch[1::3] == [f"note for {commit}" for commit in commits]


# -- lock ----------------------------------------------------------------------------------


HOLDER = textwrap.dedent("""
    import sys, time
    from aevolve._git.repo import Repo
    with Repo.open(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_lock_excludes_a_second_process(state_repo):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state_repo), "30"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy, match="another aevolve process"), Repo.open(state_repo).lock(timeout=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder
    with Repo.open(state_repo).lock(timeout=5):
        pass


def test_lock_is_released_after_use(state_repo):
    repo = Repo.open(state_repo)
    with repo.lock():
        pass
    with repo.lock(timeout=0.1):
        pass


def test_open_outside_a_repository_says_to_run_init(tmp_path):
    from aevolve._errors import NotARepository

    with pytest.raises(NotARepository, match="aevolve init"):
        Repo.open(tmp_path)


def test_run_git_runs_in_the_repository(state_repo):
    repo = Repo.open(state_repo)
    assert repo.run_git(["rev-parse", "main"]).stdout.strip() == repo.ref_target(MAIN)


def test_bare_repository_is_readable(tmp_path):
    src = make_state_repo(tmp_path / "src")
    git(tmp_path, "clone", "-q", "--bare", str(src), "bare.git")
    repo = Repo.open(tmp_path / "bare.git")
    assert repo.workdir is None
    assert repo.read(repo.tree("main"), "prompts/system.md").startswith(b"You are")


CREATOR = textwrap.dedent("""
    import sys
    from aevolve._errors import RefMoved
    from aevolve._git.repo import Repo
    repo = Repo.open(sys.argv[1])
    try:
        repo.create_ref("refs/heads/evolve/race", sys.argv[2])
        print("created")
    except RefMoved:
        print("refused")
""")


def test_parallel_creators_of_one_ref_exactly_one_wins(state_repo):
    repo = Repo.open(state_repo)
    head = repo.ref_target(MAIN)
    commits = [str(repo.commit(repo.tree(head).id, [head], f"c{i}\n")) for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(state_repo), c], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for c in commits]
    outcomes = {}
    for commit, proc in zip(commits, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outcomes[commit] = out.strip()
    winners = [c for c, o in outcomes.items() if o == "created"]
    assert len(winners) == 1
    assert git(state_repo, "rev-parse", "evolve/race") == winners[0]


def test_list_files_of_a_whole_tree_equals_walking_it(tmp_path):
    root = make_state_repo(tmp_path / "state", {
        "prompts/system.md": "hi\n", "skills/a b/SKILL.md": "x\n", "memory/é.jsonl": "{}\n",
        "tools/run.sh": "#!/bin/sh\n", "deep/er/still/file.txt": "d\n",
    })
    (root / "tools/run.sh").chmod(0o755)
    (root / "link.md").symlink_to("prompts/system.md")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "more")
    repo = Repo.open(root)
    tree = repo.tree("main")

    assert repo.list_files(tree) == list(repo.walk(tree))
    modes = {f.path: f.mode for f in repo.list_files(tree)}
    assert modes["tools/run.sh"] == 0o100755 and modes["link.md"] == 0o120000 and "memory/é.jsonl" in modes


# -- storage faults are not contention --------------------------------------------------------


def test_a_lock_released_while_waiting_is_contention_not_a_stale_lock(state_repo):
    import threading

    from aevolve._git.repo import check_lock

    lock = Path(state_repo) / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    threading.Timer(0.05, lock.unlink).start()  # a live git finishing its write
    check_lock(lock)  # returns: the caller retries
    assert not lock.exists()


def test_a_lock_still_there_after_a_live_git_would_be_done_is_stale(state_repo):
    from aevolve._errors import StaleLock
    from aevolve._git.repo import check_lock

    lock = Path(state_repo) / ".git" / "HEAD.lock"
    lock.write_text("")
    with pytest.raises(StaleLock, match="remove the file manually") as err:
        check_lock(lock)
    assert err.value.path == str(lock) and err.value.exit_code == 7


def test_a_remote_refusing_permission_is_not_a_storage_error():
    from aevolve._git.repo import storage_error

    assert storage_error("git@example.com: Permission denied (publickey).\nfatal: Could not read from "
                         "remote repository.", "/r/.git") is None


def test_read_only_and_full_disk_complaints_are_storage_errors_naming_the_path():
    from aevolve._git.repo import storage_error

    ro = storage_error("fatal: cannot lock ref 'refs/heads/main': Unable to create '/r/.git/refs/heads/main.lock': "
                       "Read-only file system", "/r/.git")
    full = storage_error("failed to write out file: No space left on device", "/r/.git/objects")
    assert ro is not None and ro.path == "/r/.git/refs/heads/main.lock" and "read-only" in str(ro)
    assert full is not None and full.path == "/r/.git/objects" and "disk full" in str(full)


def test_linked_worktrees_share_the_repository_lock(state_repo, tmp_path):
    linked = tmp_path / "linked"
    git(state_repo, "worktree", "add", "-q", "-b", "other", str(linked))
    main, other = Repo.open(state_repo), Repo.open(linked)
    assert other.git_dir != main.git_dir and other.common_dir == main.common_dir == main.git_dir
    with main.lock("promote"), pytest.raises(LockBusy), other.lock("promote", timeout=0.1):
        pass
