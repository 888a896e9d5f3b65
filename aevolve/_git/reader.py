"""Reading commits, trees and notes through the `git` command.

Inside a pre-receive hook the pushed objects sit in a quarantine only `git`
sees (libgit2 does not), so everything that must work there, the verifier of
verdicts first, reads through this. One `git cat-file --batch` process serves
every object read of a reader's life.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from aevolve._errors import GitCommandFailed
from aevolve._git.repo import ZERO, Repo, note_paths, pipes

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str

    @property
    def subject(self) -> str:
        lines = self.message.strip().splitlines()
        return lines[0][:72] if lines else "?"


class GitReader:
    """Reads objects, trees and notes through one `git cat-file --batch` and a few
    listing calls; use as a context manager (or call close) to end the process."""

    def __init__(self, repo: Repo):
        self.repo = repo
        self._listing: dict[str, dict[str, str]] = {}
        self._batch: subprocess.Popen | None = None

    def cat(self, names: list[str]) -> list[bytes | None]:
        """Contents of each object name (`sha`, `rev:path`); None where missing."""
        if self._batch is None:
            self._batch = self.repo.popen_git(["cat-file", "--batch"])
        stdin, stdout, _ = pipes(self._batch)
        results: list[bytes | None] = []
        for start in range(0, len(names), 64):  # a bounded request, then its answers: pipes never fill both ways
            chunk = names[start:start + 64]
            stdin.write(b"".join(n.encode("utf-8", "surrogateescape") + b"\n" for n in chunk))
            stdin.flush()
            for _ in chunk:
                header = stdout.readline().split()
                if len(header) == 3 and header[2].isdigit():
                    results.append(stdout.read(int(header[2])))
                    stdout.read(1)  # the newline after the object
                else:
                    results.append(None)  # "<name> missing" (or ambiguous)
        return results

    def close(self) -> None:
        if self._batch is not None:
            pipes(self._batch)[0].close()
            self._batch.wait()
            self._batch = None

    def __enter__(self) -> GitReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, ValueError):
            pass

    def rev(self, name: str) -> str | None:
        proc = self.repo.run_git(["rev-parse", "-q", "--verify", f"{name}^{{commit}}"], check=False)
        return proc.stdout.strip() or None

    def ref(self, name: str) -> str | None:
        proc = self.repo.run_git(["rev-parse", "-q", "--verify", name], check=False)
        return proc.stdout.strip() or None

    def commit(self, sha: str) -> CommitInfo | None:
        body = self.cat([sha])[0]
        if body is None:
            return None
        head, _, message = body.partition(b"\n\n")
        tree, parents = "", []
        for line in head.splitlines():
            key, _, value = line.partition(b" ")
            if key == b"tree":
                tree = value.decode()
            elif key == b"parent":
                parents.append(value.decode())
        return CommitInfo(sha, tree, tuple(parents), message.decode("utf-8", "replace"))

    def first_parent_chain(self, old: str, new: str) -> list[str] | None:
        """Commits from just after OLD to NEW, oldest first, linked by first parents;
        None when OLD is not on NEW's first-parent line."""
        proc = self.repo.run_git(["rev-list", "--first-parent", "--parents", new, "--not", old], check=False)
        if proc.returncode != 0:
            return None
        rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
        expected = new
        for row in rows:
            if row[0] != expected or len(row) < 2:
                return None
            expected = row[1]
        return [row[0] for row in reversed(rows)] if expected == old else None

    def files(self, tree: str) -> dict[str, str]:
        """path -> blob id of every file of a tree (cached per tree)."""
        if tree not in self._listing:
            out = self.repo.run_git(["ls-tree", "-r", "-z", "--full-tree", tree], input=b"", check=False).stdout
            files = {}
            for record in out.split(b"\0"):
                meta, _, path = record.partition(b"\t")
                parts = meta.split(b" ")
                if len(parts) == 3 and parts[1] == b"blob":
                    files[path.decode("utf-8", "surrogateescape")] = parts[2].decode()
            self._listing[tree] = files
        return self._listing[tree]

    def reader(self, tree: str):
        """A `path -> bytes | None` function over one tree."""
        files = self.files(tree)

        def read(path: str) -> bytes | None:
            oid = files.get(path)
            return self.cat([oid])[0] if oid else None

        return read

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Paths that differ between two commits or trees (GitCommandFailed when git
        cannot say: a caller deciding what to let through must not read "nothing")."""
        out = self._git(["diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new], f"{old[:12]}..{new[:12]}")
        return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]

    def reachable(self, tips: list[str]) -> set[str]:
        """Every commit reachable from `tips`."""
        out = self._git(["rev-list", *tips], "the history of " + ", ".join(t[:12] for t in tips))
        return set(out.decode().split())

    def new_commits(self, tip: str) -> list[tuple[str, list[str]]]:
        """(sha, parents) of each commit reachable from `tip` that no ref reaches yet
        (in a pre-receive hook: what the push brings)."""
        out = self._git(["rev-list", "--parents", tip, "--not", "--all"], f"the new commits of {tip[:12]}")
        return [(row[0], row[1:]) for row in (line.split() for line in out.decode().splitlines()) if row]

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        proc = self.repo.run_git(["merge-base", "--is-ancestor", ancestor, commit], check=False)
        return proc.returncode == 0

    def _git(self, args: list[str], what: str) -> bytes:
        proc = self.repo.run_git(args, input=b"", check=False)
        if proc.returncode != 0:
            said = proc.stderr.decode("utf-8", "replace").strip() or "git failed"
            raise GitCommandFailed(f"could not read {what} ({said}); nothing was let through")
        return proc.stdout

    def note(self, notes_commits: list[str | None], commit: str) -> bytes | None:
        """The first note of `commit` found in the given notes commits."""
        names = [f"{n}:{p}" for n in notes_commits if n and n != ZERO for p in note_paths(commit)]
        return next((data for data in self.cat(names) if data is not None), None)

    def notes_index(self, notes_commit: str | None) -> dict[str, str]:
        """Annotated commit -> blob id of its note, from one listing of the notes tree
        (flat, fanned out or mixed); cached with the tree's listing."""
        if not notes_commit or notes_commit == ZERO:
            return {}
        index: dict[str, str] = {}
        for path, oid in self.files(notes_commit).items():
            name = path.replace("/", "")
            if len(name) in (40, 64) and all(c in _HEX for c in name):
                index.setdefault(name, oid)
        return index

    def notes_of(self, notes_commit: str | None, commits: list[str]) -> dict[str, bytes | None]:
        """The note of each commit in one notes commit (None where it has none): the
        notes tree is listed once and the notes read in one batch, so asking for
        10,000 commits costs one `ls-tree` and one pass of `cat-file`."""
        if len(commits) <= 16:  # a few lookups cost less than listing every note
            return {c: self.note([notes_commit], c) for c in commits}
        index = self.notes_index(notes_commit)
        wanted = [c for c in commits if c in index]
        found = dict(zip(wanted, self.cat([index[c] for c in wanted]), strict=True))
        return {c: found.get(c) for c in commits}
