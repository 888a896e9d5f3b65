"""Repository settings aevolve relies on: attributes, merge/diff drivers, refspecs.

Called by `aevolve init` and `aevolve hooks install`; every step is idempotent.
"""

from __future__ import annotations

from .repo import Repo

ATTRIBUTES = "memory/**/*.jsonl merge=aevolve-jsonl diff=aevolve-jsonl\n"


def configure_repo(repo: Repo) -> list[str]:
    """Write what is missing; returns the state files it added or changed."""
    changed = []
    if repo.workdir is not None:
        path = repo.workdir / ".gitattributes"
        current = path.read_text() if path.exists() else ""
        if ATTRIBUTES.strip() not in current:
            sep = "" if not current or current.endswith("\n") else "\n"
            path.write_text(current + sep + ATTRIBUTES)
            changed.append(".gitattributes")
    return changed
