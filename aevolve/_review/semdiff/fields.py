"""Mappings compared field by field: front matter, registry entries, memory records, YAML documents."""

from __future__ import annotations

from aevolve._review.semdiff.result import FieldChange

_ABSENT = object()


def _flatten(value, prefix: str = "") -> dict:
    """Nested mappings as dotted paths; lists and scalars are leaves."""
    if isinstance(value, dict) and (value or not prefix):
        out = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def field_changes(old, new) -> list[FieldChange]:
    """Field-level changes between two mappings (dotted paths for nested ones)."""
    fa, fb = _flatten(old if isinstance(old, dict) else {}), _flatten(new if isinstance(new, dict) else {})
    out = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key, _ABSENT), fb.get(key, _ABSENT)
        if va is _ABSENT:
            out.append(FieldChange(key, "added", new=vb))
        elif vb is _ABSENT:
            out.append(FieldChange(key, "removed", old=va))
        elif va != vb or type(va) is not type(vb):
            out.append(FieldChange(key, "changed", va, vb))
    return out
