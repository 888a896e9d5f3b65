"""A read-only copy of a tree on disk, for runners to read (never the user's checkout).

One folder per tree id under `.git/aevolve/trees/<tree-id>`: a tree id names its
content, so a folder once complete is valid forever and is shared by every gate.
It is written into a temporary folder and renamed into place, so a concurrent
gate sees either nothing or a complete copy; the loser of a race discards its copy.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from ..repo import BLOB_EXECUTABLE, LINK, Repo

_BAD_PARTS = {"", ".", "..", ".git"}


def trees_dir(repo: Repo) -> Path:
    path = repo.aevolve_dir / "trees"
    path.mkdir(exist_ok=True)
    return path


def materialize(repo: Repo, tree_id: str) -> Path:
    """The folder holding tree `tree_id`'s files, read-only; created on first use."""
    tree_id = str(tree_id)
    final = trees_dir(repo) / tree_id
    if final.is_dir():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{tree_id[:12]}-", dir=trees_dir(repo)))
    try:
        tree = repo.tree(tree_id)
        for entry in repo.list_files(tree):
            parts = entry.path.split("/")
            if any(p in _BAD_PARTS for p in parts):
                continue  # a crafted tree must not write outside the copy
            if entry.mode == LINK:
                continue  # symlinks could point anywhere; validation reports them
            target = tmp.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(repo.blob(entry.oid))
            os.chmod(target, 0o555 if entry.mode == BLOB_EXECUTABLE else 0o444)
        _seal(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            remove(tmp)  # another gate finished the same tree first
    except BaseException:
        if tmp.exists():
            remove(tmp)
        raise
    return final


def _seal(root: Path) -> None:
    """Make every folder read-only (files already are), deepest first."""
    for dirpath, _dirnames, _files in os.walk(root, topdown=False):
        os.chmod(dirpath, 0o555)


def remove(path: Path) -> None:
    """Delete a (read-only) materialized folder."""

    def _writable(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o755)
        if os.path.isdir(p):
            os.chmod(p, 0o755)
        func(p)

    for dirpath, _dirnames, _files in os.walk(path):
        os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(path, onerror=_writable)
