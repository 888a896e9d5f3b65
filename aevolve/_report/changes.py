"""The files a commit changed against its first parent: paths and A/M/D, not a diff.

Read in process from the trees (one `git diff-tree` per commit would cost a process
start each, seconds over a long history); equal subtrees are skipped by id.
"""

from __future__ import annotations

from aevolve._git.repo import Repo


def changed_files(repo: Repo, old_tree: str | None, new_tree: str, limit: int = 50) -> tuple[list[dict], int]:
    """([{"path", "status"}] up to `limit`, how many more there were)."""
    found: list[tuple[str, str]] = []
    _delta(repo, repo.tree(old_tree) if old_tree else None, repo.tree(new_tree), "", found)
    found.sort()
    return [{"path": p, "status": s} for p, s in found[:limit]], max(0, len(found) - limit)


def _delta(repo: Repo, old, new, prefix: str, out: list[tuple[str, str]]) -> None:
    a = {e.name: e for e in old} if old is not None else {}
    b = {e.name: e for e in new} if new is not None else {}
    for name in a.keys() | b.keys():
        ea, eb = a.get(name), b.get(name)
        if ea is not None and eb is not None and ea.id == eb.id \
                and (ea.type_str == "tree" or ea.filemode == eb.filemode):  # filemode makes an enum: slow
            continue
        path = prefix + name
        sub_a = repo.tree(ea.id) if ea is not None and ea.type_str == "tree" else None
        sub_b = repo.tree(eb.id) if eb is not None and eb.type_str == "tree" else None
        if sub_a is not None or sub_b is not None:
            _delta(repo, sub_a, sub_b, path + "/", out)
        blob_a = ea is not None and ea.type_str != "tree"
        blob_b = eb is not None and eb.type_str != "tree"
        if blob_a or blob_b:
            out.append((path, "M" if blob_a and blob_b else ("A" if blob_b else "D")))
