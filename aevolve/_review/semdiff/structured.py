"""YAML documents compared by meaning: the tool registry by tool name, the
manifest and aevolve.yaml field by field."""

from __future__ import annotations

from aevolve._review.semdiff.fields import field_changes
from aevolve._review.semdiff.result import EntryChange, StructuredChange
from aevolve._review.semdiff.text import status
from aevolve._state.model import CONFIG_FILE, MANIFEST_FILE, TOOL_REGISTRY, FileError, layer_of, load_yaml

STRUCTURED_FILES = (TOOL_REGISTRY, MANIFEST_FILE, CONFIG_FILE)


def structured_change(sa, sb, path, old, new, protected) -> StructuredChange | None:
    """None when a side is not YAML, or only its text changed: the caller shows a text diff."""
    try:
        da = _yaml_doc(sa, path, old)
        db = _yaml_doc(sb, path, new)
    except (FileError, UnicodeDecodeError):
        return None
    change = StructuredChange(path, layer_of(path), status(old, new), protected)
    if path == TOOL_REGISTRY and isinstance(da.get("tools", []), list) and isinstance(db.get("tools", []), list):
        change.entries = _entry_changes(da.get("tools") or [], db.get("tools") or [])
        da = {k: v for k, v in da.items() if k != "tools"}
        db = {k: v for k, v in db.items() if k != "tools"}
    change.fields = field_changes(da, db)
    if not change.entries and not change.fields and old and new:
        return None  # same meaning, different text (comments, order): show the text diff
    return change


def _entry_changes(old_items: list, new_items: list) -> list[EntryChange]:
    """The registry's tools, matched by name."""
    ea, eb = _by_name(old_items), _by_name(new_items)
    out = []
    for name in list(ea) + [n for n in eb if n not in ea]:
        if name not in eb:
            out.append(EntryChange(name, "removed", entry=ea[name]))
        elif name not in ea:
            out.append(EntryChange(name, "added", entry=eb[name]))
        elif ea[name] != eb[name]:
            out.append(EntryChange(name, "changed", field_changes(ea[name], eb[name])))
    return out


def _yaml_doc(source, path, entry) -> dict:
    if entry is None:
        return {}
    text = source.read(path, entry[0]).decode("utf-8")
    doc = load_yaml(text, path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise FileError(path, "not a mapping")
    return doc


def _by_name(items: list) -> dict:
    out = {}
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        key = str(name) if name is not None else f"#{i}"
        while key in out:  # duplicate names stay visible
            key += "'"
        out[key] = item if isinstance(item, dict) else {"value": item}
    return out
