"""`aevolve diff` of big memory files: bounded memory, and the same answer as a line multiset diff.

The shared start and end of two blobs are skipped by comparing bytes, so an
append parses (and splits) only the appended lines; between them lines are
matched by hash, never held as lists of lines or records.
"""

from __future__ import annotations

import random
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from aevolve._git.repo import Repo
from aevolve._review.diff import INDEX, WORKTREE, semantic_diff
from aevolve._review.semdiff import memory

from conftest import git, make_state_repo, run_cli, write

BIG = 200_000  # records of the file appended to
MID = 50_000  # records of the files edited elsewhere: enough for several chunks
PATH = "memory/big.jsonl"


def line(i: int, version: int = 0) -> str:
    return f'{{"id": "m-{i:06d}", "n": {version}}}'


def big_text(records: int = BIG) -> str:
    return "\n".join(line(i) for i in range(records)) + "\n"


def commit(repo: Path, data: str | bytes) -> str:
    write(repo, {PATH: data})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "memory")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_state_repo(tmp_path / "state")


def memory_of(repo: Path, a: str, b: str):
    [m] = [m for m in semantic_diff(Repo.open(repo), a, b).memory if m.path == PATH]
    return m


def parsed_lines(monkeypatch) -> list:
    """Every line the memory differ decodes, as it decodes it."""
    seen: list = []
    original = memory.loads
    monkeypatch.setattr(memory, "loads", lambda raw: seen.append(raw) or original(raw))
    return seen


def split_lines(monkeypatch) -> list[int]:
    """How many lines the memory differ splits out of the blobs, chunk by chunk."""
    counts: list[int] = []
    original = memory.chunks

    def counting(*args):
        for number, lines in original(*args):
            counts.append(len(lines))
            yield number, lines

    monkeypatch.setattr(memory, "chunks", counting)
    return counts


def test_appending_to_a_big_file_splits_and_parses_only_the_appended_lines(repo, monkeypatch):
    a = commit(repo, big_text())
    b = commit(repo, big_text() + line(BIG) + "\n" + line(BIG + 1) + "\n")
    parsed, split = parsed_lines(monkeypatch), split_lines(monkeypatch)
    m = memory_of(repo, a, b)
    assert [r.key for r in m.added] == [f"m-{BIG:06d}", f"m-{BIG + 1:06d}"]
    assert (m.removed, m.changed, m.invalid) == ([], [], [])
    assert parsed == [line(BIG).encode(), line(BIG + 1).encode()]
    assert sum(split) <= 4  # the appended lines (and empty ends), never the 200,000 shared ones


def test_appending_to_a_big_file_holds_little_beside_its_two_blobs(repo):
    text = big_text()
    a = commit(repo, text)
    b = commit(repo, text + line(BIG) + "\n")
    tracemalloc.start()
    try:
        m = memory_of(repo, a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(m.added) == 1
    blobs = 2 * len(text)  # 5 MB: a list of its lines alone would be 10 MB more
    assert peak < blobs + 3_000_000, f"peak {peak:,} bytes for two blobs of {len(text):,}"


def test_a_record_edited_in_the_middle_of_a_big_file_is_one_changed_record(repo, monkeypatch):
    a = commit(repo, big_text(MID))
    b = commit(repo, big_text(MID).replace(line(MID // 2), line(MID // 2, version=1)))
    parsed = parsed_lines(monkeypatch)
    m = memory_of(repo, a, b)
    [changed] = m.changed
    assert changed.key == f"m-{MID // 2:06d}" and [(f.field, f.old, f.new) for f in changed.fields] == [("n", 0, 1)]
    assert (m.added, m.removed) == ([], [])
    assert len(parsed) == 2  # the old and the new line


def test_scattered_edits_removals_and_additions_are_each_reported_once(repo):
    rng = random.Random(5)
    lines = [line(i) for i in range(MID)]
    edited, removed = rng.sample(range(MID), 30), rng.sample(range(MID), 20)
    new = [line(i, version=1) if i in edited else text for i, text in enumerate(lines)]
    new = [text for i, text in enumerate(new) if i not in removed or i in edited]
    new.insert(1234, line(MID))
    a = commit(repo, "\n".join(lines) + "\n")
    b = commit(repo, "\n".join(new) + "\n")
    m = memory_of(repo, a, b)
    assert sorted(r.key for r in m.changed) == sorted(f"m-{i:06d}" for i in edited)
    assert sorted(r.key for r in m.removed) == sorted(f"m-{i:06d}" for i in removed if i not in edited)
    assert [r.key for r in m.added] == [f"m-{MID:06d}"]


def test_a_record_removed_from_the_middle_of_a_big_file_is_one_removed_record(repo):
    a = commit(repo, big_text(MID))
    b = commit(repo, big_text(MID).replace(line(777) + "\n", ""))
    m = memory_of(repo, a, b)
    assert [(r.key, r.old) for r in m.removed] == [("m-000777", {"id": "m-000777", "n": 0})]
    assert (m.added, m.changed) == ([], [])


def test_reordered_lines_of_a_big_file_are_no_change(repo):
    lines = [line(i) for i in range(MID)]
    a = commit(repo, "\n".join(lines) + "\n")
    random.Random(3).shuffle(lines)
    b = commit(repo, "\n".join(lines) + "\n")
    m = memory_of(repo, a, b)
    assert (m.added, m.removed, m.changed, m.invalid) == ([], [], [], [])


def test_broken_lines_in_the_middle_of_a_big_file_keep_their_line_numbers(repo):
    lines = [line(i) for i in range(MID)]
    a = commit(repo, "\n".join(lines) + "\n")
    lines[10_000] = '{"id": "m-010000", '
    lines[40_000] = "[1, 2]"
    b = commit(repo, "\n".join(lines) + "\n")
    m = memory_of(repo, a, b)
    assert [(i["side"], i["line"], i["error"]) for i in m.invalid] == [
        ("b", 10_001, "broken JSON: Expecting property name enclosed in double quotes"),
        ("b", 40_001, "not a JSON object")]
    assert [r.key for r in m.removed] == ["m-010000", "m-040000"]  # what the broken lines replaced


def test_a_broken_line_appended_twice_is_reported_at_the_copy(repo):
    text = big_text(1000) + "{oops\n"
    a = commit(repo, text)
    b = commit(repo, text + line(1000) + "\n{oops\n")
    m = memory_of(repo, a, b)
    assert [(i["side"], i["line"]) for i in m.invalid] == [("b", 1003)]  # not 1001, which did not change
    assert [r.key for r in m.added] == ["m-001000"]


def test_a_byte_order_mark_alone_is_no_change(repo):
    a = commit(repo, big_text(1000))
    b = commit(repo, "\ufeff" + big_text(1000))
    m = memory_of(repo, a, b)
    assert (m.added, m.removed, m.changed, m.invalid) == ([], [], [], [])


def test_appending_to_a_file_that_starts_with_a_byte_order_mark(repo):
    a = commit(repo, "\ufeff" + big_text(1000))
    b = commit(repo, "\ufeff" + big_text(1000) + line(1000) + "\n")
    m = memory_of(repo, a, b)
    assert [r.key for r in m.added] == ["m-001000"] and (m.removed, m.invalid) == ([], [])


def test_an_edited_first_record_after_a_byte_order_mark_is_a_changed_record(repo):
    a = commit(repo, "\ufeff" + big_text(1000))
    b = commit(repo, "\ufeff" + big_text(1000).replace(line(0), line(0, version=2), 1))
    m = memory_of(repo, a, b)
    assert [(r.key, [(f.field, f.new) for f in r.fields]) for r in m.changed] == [("m-000000", [("n", 2)])]


def test_a_last_line_without_a_line_break_then_appended_to_stays_the_same_record(repo):
    text = big_text(1000).removesuffix("\n")  # "...m-000999"}" with no line break
    a = commit(repo, text)
    b = commit(repo, text + "\n" + line(1000) + "\n{oops\n")
    m = memory_of(repo, a, b)
    assert [r.key for r in m.added] == ["m-001000"] and (m.removed, m.changed) == ([], [])
    assert [(i["side"], i["line"]) for i in m.invalid] == [("b", 1002)]


def test_a_last_line_without_a_line_break_continued_by_the_append_is_that_line_changed(repo):
    text = big_text(1000) + '{"id": "m-tail", "n": 1'  # broken: its closing brace comes later
    a = commit(repo, text)
    b = commit(repo, text + "}\n" + line(1000) + "\n")  # a byte prefix, but the last line is another line now
    m = memory_of(repo, a, b)
    assert [r.key for r in m.added] == ["m-tail", "m-001000"] and m.removed == []
    assert [(i["side"], i["line"]) for i in m.invalid] == [("a", 1001)]


def test_an_appended_record_in_the_working_tree_and_the_index(repo):
    a = commit(repo, big_text(1000))
    write(repo, {PATH: big_text(1000) + line(1000) + "\n"})
    assert [r.key for r in memory_of(repo, a, WORKTREE).added] == ["m-001000"]
    git(repo, "add", PATH)
    assert [r.key for r in memory_of(repo, a, INDEX).added] == ["m-001000"]


def test_the_cli_lists_an_appended_record_of_a_big_file(repo):
    a = commit(repo, big_text(MID))
    b = commit(repo, big_text(MID) + line(MID) + "\n")
    proc = run_cli("diff", "--stat", a, b, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert any(row.split() == ["memory", "1", "file,", "1", "record", "added"] for row in proc.stdout.splitlines())


def reference(da: bytes, db: bytes) -> tuple[Counter, Counter]:
    """The multiset difference of the non-empty lines, as the whole-blob differ computed it."""
    ca, cb = Counter(da.split(b"\n")), Counter(db.split(b"\n"))
    ca.pop(b"", None), cb.pop(b"", None)
    return ca - cb, cb - ca


@pytest.mark.parametrize("chunk", [0, 1, 9, 64, 1 << 20])
def test_differing_lines_are_the_multiset_difference_at_any_chunk_size(monkeypatch, chunk):
    monkeypatch.setattr(memory, "CHUNK", chunk)
    monkeypatch.setattr(memory, "_BLOCK", 4)
    rng = random.Random(chunk)
    pool = [b"", b"x", b"yy", b'{"id": "a"}', b'{"id": "b"}', b"{broken", b" ", b"\xef\xbb\xbfx"]
    for _ in range(400):
        a = [rng.choice(pool) for _ in range(rng.randrange(12))]
        b = list(a)
        for _ in range(rng.randrange(4)):
            op = rng.randrange(4)
            if op == 0 and b:
                b.pop(rng.randrange(len(b)))
            elif op == 1:
                b.insert(rng.randrange(len(b) + 1), rng.choice(pool))
            elif op == 2:
                rng.shuffle(b)
            else:
                b.append(rng.choice(pool))
        da = b"\n".join(a) + rng.choice([b"", b"\n"])
        db = b"\n".join(b) + rng.choice([b"", b"\n"])
        if rng.random() < 0.3:
            db = da + db[:rng.randrange(len(db) + 1)]  # an append, with or without a line break between
        gone, came = memory.differing_lines(da, db)
        all_a, all_b = da.split(b"\n"), db.split(b"\n")
        assert all(all_a[n - 1] == raw for n, raw in gone) and all(all_b[n - 1] == raw for n, raw in came)
        got = (Counter(raw for _, raw in gone if raw), Counter(raw for _, raw in came if raw))
        assert got == reference(da, db), (da, db)
