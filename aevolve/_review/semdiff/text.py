"""Files shown as text: a unified diff, or a note when a file is not text."""

from __future__ import annotations

import difflib

from aevolve._gate.report import Segments, word_diff  # noqa: F401  (re-exported: render marks words)
from aevolve._git.repo import LINK
from aevolve._review.semdiff.result import FileChange
from aevolve._review.semdiff.sources import decode
from aevolve._state.model import FileError, check_yaml_shape, layer_of


def status(old, new) -> str:
    return "added" if old is None else "removed" if new is None else "modified"


def text_change(sa, sb, path: str, old, new, protected: bool, layer: str | None = None) -> FileChange:
    """One file, old entry to new entry, read from sides `sa` and `sb`."""
    change = FileChange(path, layer or layer_of(path), status(old, new), protected)
    da = sa.read(path, old[0]) if old else b""
    db = sb.read(path, new[0]) if new else b""
    if old and new and old[0] == new[0]:
        change.note = f"mode {old[1]:o} -> {new[1]:o}"
        return change
    ta, tb = decode(da), decode(db)
    if ta is None or tb is None:
        change.binary = True
        change.note = f"binary or not UTF-8 ({len(da)} -> {len(db)} bytes)"
        return change
    if (old and old[1] == LINK) or (new and new[1] == LINK):
        change.note = "symlink"
    elif new and path.endswith((".yaml", ".yml")):
        change.note = _yaml_note(tb, path)
    change.diff = unified(ta, tb, path, old is not None, new is not None)
    change.additions = sum(1 for line in change.diff if line.startswith("+") and not line.startswith("+++"))
    change.deletions = sum(1 for line in change.diff if line.startswith("-") and not line.startswith("---"))
    return change


def _yaml_note(text: str, path: str) -> str:
    """Why aevolve refuses to read this YAML (alias bomb, too deep), else "": the reader
    of the diff sees the text, and the problem every command will report."""
    try:
        check_yaml_shape(text, path)
    except FileError as exc:
        return str(exc)
    return ""


def unified(a: str, b: str, path: str, has_a: bool = True, has_b: bool = True,
            old_path: str | None = None) -> list[str]:
    return list(difflib.unified_diff(
        a.splitlines(), b.splitlines(),
        fromfile=f"a/{old_path or path}" if has_a else "/dev/null",
        tofile=f"b/{path}" if has_b else "/dev/null", lineterm="", n=3,
    ))

