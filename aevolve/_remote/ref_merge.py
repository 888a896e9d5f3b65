"""What every sync merge of a local ref with the remote's shares: the retries, and the
cases that need no merge commit (notes_merge, observations_merge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aevolve._errors import RefMoved
from aevolve._git.repo import Repo

ATTEMPTS = 5
T = TypeVar("T")


def retried(merge: Callable[[], T], moving: str) -> T:
    """`merge()`, again while another writer moves the ref under it (RefMoved)."""
    for _ in range(ATTEMPTS):
        try:
            return merge()
        except RefMoved:
            continue  # a gate, an approval or an `observe` landed meanwhile: merge again
    raise RefMoved(f"{moving}; nothing was lost, run `aevolve sync` again")


def without_merge(repo: Repo, ref: str, local_tip: str | None, remote_tip: str | None) -> str | None:
    """The action when no merge commit is needed: "none" (nothing fetched), "created"
    (`ref` is made at the remote's tip here), "up-to-date" or "ahead"; None when the
    two sides must be merged."""
    if remote_tip is None:
        return "none"
    if local_tip is None:
        repo.update_ref(ref, remote_tip, None)
        return "created"
    if local_tip == remote_tip:
        return "up-to-date"
    if repo.is_ancestor(remote_tip, local_tip):
        return "ahead"
    return None
