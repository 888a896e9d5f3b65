"""The two sides of a diff and what differs between them.

A side is a commit's tree, or a `State` of the index or the working tree.
Trees are compared by id first, so an unchanged folder (10,000 untouched
skills) costs one comparison; only the blobs that differ are ever read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aevolve import _config as config_mod
from aevolve._errors import UsageError
from aevolve._git.reader import GitReader
from aevolve._git.repo import Repo

if TYPE_CHECKING:
    import pygit2
from aevolve._review.semdiff.result import INDEX, WORKTREE, Side
from aevolve._state.model import CONFIG_FILE, FileError, State, load_yaml

Entry = tuple[str, int]  # (blob id, git file mode) of one file on one side


class Source:
    """Blob ids and bytes of one side: a commit's tree, or a State (worktree, index)."""

    def __init__(self, repo: Repo, rev: str):
        self.repo = repo
        self.side = Side(rev)
        self.state: State | None = None
        self.tree: pygit2.Tree | None = None
        self._reader: GitReader | None = None
        if rev == WORKTREE:
            if repo.workdir is None:
                raise UsageError("a bare repository has no working tree to diff against; name two revisions")
            self.state = State.from_folder(repo.workdir, repo)
        elif rev == INDEX:
            self.state = State.from_index(repo)
        else:
            commit = repo.resolve(rev)
            self.tree = commit.tree
            self.side.commit, self.side.tree = str(commit.id), str(commit.tree.id)

    @property
    def commit_tree(self) -> pygit2.Tree:
        """The tree of a side that is a commit (a side without a State is one)."""
        assert self.tree is not None
        return self.tree

    def flat(self) -> dict[str, Entry]:
        if self.state is not None:
            return {p: (f.oid, f.mode) for p, f in self.state.files.items()}
        return {f.path: (f.oid, f.mode) for f in self.repo.list_files(self.commit_tree)}

    def read(self, path: str, oid: str) -> bytes:
        if self.state is not None:
            return self.state.read(path)
        return self.repo.blob(oid)

    def read_whole(self, path: str, oid: str) -> bytes:
        """`read` for a file that may be big (memory JSONL): the bytes of an object come
        from one `git cat-file --batch` per side, read into one buffer of the size git
        announces (`Repo.blob` briefly holds a second copy: a process reading a 168 MB
        blob peaked at 345 MB through it, at 181 MB through this)."""
        if self.state is not None and self.side.rev != INDEX:
            return self.state.read(path)  # the working tree: a file read, one buffer
        if self._reader is None:
            self._reader = GitReader(self.repo)  # ends with this Source (GitReader.__del__)
        [data] = self._reader.cat([oid])
        if data is None:
            return self.read(path, oid)  # not in the object database: let `read` say so
        return data

    def has_dir(self, folder: str) -> bool:
        if self.state is not None:
            prefix = folder + "/"
            return any(p.startswith(prefix) for p in self.state.files)
        try:
            return self.commit_tree[folder].type_str == "tree"
        except KeyError:
            return False

    def files_under(self, folder: str) -> dict[str, Entry]:
        prefix = folder + "/"
        if self.state is not None:
            return {p: (f.oid, f.mode) for p, f in self.state.files.items() if p.startswith(prefix)}
        try:
            sub = self.repo.tree(self.commit_tree[folder].id)
        except KeyError:
            return {}
        return {prefix + f.path: (f.oid, f.mode) for f in self.repo.walk(sub)}

    def entry(self, path: str) -> Entry | None:
        if self.state is not None:
            f = self.state.files.get(path)
            return (f.oid, f.mode) if f else None
        try:
            e = self.commit_tree[path]
        except KeyError:
            return None
        return (str(e.id), e.filemode) if e.type_str == "blob" else None


def delta(repo: Repo, sa: Source, sb: Source) -> list:
    """(path, a, b) for every file that differs between the sides, by path."""
    if sa.tree is not None and sb.tree is not None:
        out: list = []
        if sa.tree.id != sb.tree.id:
            tree_delta(repo, sa.tree, sb.tree, "", out)
        return out
    return flat_delta(sa.flat(), sb.flat())


def tree_delta(repo: Repo, ta, tb, prefix: str, out: list) -> None:
    """(path, a, b) for every blob that differs; equal subtrees are skipped by id."""
    a = {e.name: e for e in ta} if ta is not None else {}
    b = {e.name: e for e in tb} if tb is not None else {}
    for name in sorted(a.keys() | b.keys()):
        ea, eb = a.get(name), b.get(name)
        if ea is not None and eb is not None and ea.id == eb.id \
                and (ea.type_str == "tree" or ea.filemode == eb.filemode):  # filemode makes an enum: slow
            continue
        path = prefix + name
        sub_a = repo.tree(ea.id) if ea is not None and ea.type_str == "tree" else None
        sub_b = repo.tree(eb.id) if eb is not None and eb.type_str == "tree" else None
        if sub_a is not None or sub_b is not None:
            tree_delta(repo, sub_a, sub_b, path + "/", out)
        a_blob = (str(ea.id), ea.filemode) if ea is not None and ea.type_str == "blob" else None
        b_blob = (str(eb.id), eb.filemode) if eb is not None and eb.type_str == "blob" else None
        if a_blob != b_blob and (a_blob or b_blob):
            out.append((path, a_blob, b_blob))


def flat_delta(a: dict, b: dict) -> list:
    return [(p, a.get(p), b.get(p)) for p in sorted(a.keys() | b.keys()) if a.get(p) != b.get(p)]


def protection_config(sa: Source, sb: Source) -> dict:
    """Protected paths as the base side's aevolve.yaml says (ALWAYS_PROTECTED in any case)."""
    for source in (sa, sb):
        flat_entry = source.entry(CONFIG_FILE)
        if flat_entry is not None:
            try:
                raw = load_yaml(source.read(CONFIG_FILE, flat_entry[0]).decode("utf-8", "replace"), CONFIG_FILE)
                return config_mod.resolve(raw if isinstance(raw, dict) else {})
            except FileError:
                pass
            break
    return config_mod.resolve({})


def decode(data: bytes) -> str | None:
    """UTF-8 text, or None for what is binary or not UTF-8."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
