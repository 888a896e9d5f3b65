"""The files a commit changed against its first parent: paths and A/M/D, not a diff.

Read in process from the trees (one `git diff-tree` per commit would cost a process
start each, seconds over a long history); equal subtrees are skipped by id.
"""

from __future__ import annotations

from aevolve._git.repo import Repo


def changed_files(repo: Repo, old_tree: str | None, new_tree: str, limit: int = 50) -> tuple[list[dict], int]:
    """([{"path", "status"}] up to `limit`, how many more there were)."""
    from aevolve._review.semdiff.sources import tree_delta

    found: list[tuple[str, object, object]] = []
    tree_delta(repo, repo.tree(old_tree) if old_tree else None, repo.tree(new_tree), "", found)
    files = [{"path": p, "status": "M" if a and b else ("A" if b else "D")} for p, a, b in sorted(found)]
    return files[:limit], max(0, len(files) - limit)
