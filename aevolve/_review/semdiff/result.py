"""The data a semantic diff is made of: the two sides, and the change of each layer.

Every change type has `to_dict()`, the JSON form `aevolve diff --format json` prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

WORKTREE = ":worktree"  # the checkout's files (tracked and untracked, not ignored)
INDEX = ":index"  # what is staged
LAYER_ORDER = ("config", "evals", "manifest", "prompts", "skills", "tools", "memory")
_LAYER_RANK = {name: i for i, name in enumerate(LAYER_ORDER)}


def layer_key(layer: str) -> tuple[int, str]:
    """Display order: LAYER_ORDER first, any other layer after, by name."""
    return _LAYER_RANK.get(layer, len(_LAYER_RANK)), layer


@dataclass
class FieldChange:
    """One field of a mapping: added, removed or changed (dotted path for nesting)."""

    field: str
    kind: str  # added | removed | changed
    old: object = None
    new: object = None

    def to_dict(self) -> dict:
        out: dict = {"field": self.field, "kind": self.kind}
        if self.kind != "added":
            out["old"] = self.old
        if self.kind != "removed":
            out["new"] = self.new
        return out


@dataclass
class FileChange:
    """A file shown as text: a unified diff, or a note when it is not text."""

    path: str
    layer: str
    status: str  # added | removed | modified
    protected: bool = False
    binary: bool = False
    note: str = ""  # binary sizes, mode change, parse error...
    diff: list[str] = field(default_factory=list)  # unified diff lines, no newlines
    additions: int = 0
    deletions: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "layer": self.layer, "status": self.status, "protected": self.protected,
                "binary": self.binary, "note": self.note, "additions": self.additions,
                "deletions": self.deletions, "diff": self.diff}


@dataclass
class SkillChange:
    name: str
    status: str  # added | removed | renamed | changed
    old_name: str | None = None
    similarity: float | None = None  # renames: body similarity (1.0 = same content)
    fields: list[FieldChange] = field(default_factory=list)  # front matter
    body_diff: list[str] = field(default_factory=list)
    files: list[FileChange] = field(default_factory=list)  # scripts/, references/ ... beside SKILL.md
    description: str = ""
    error: str = ""  # SKILL.md that does not parse: shown as text in `files`

    @property
    def layer(self) -> str:
        return "skills"

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "old_name": self.old_name,
                "similarity": self.similarity, "description": self.description,
                "fields": [f.to_dict() for f in self.fields], "body_diff": self.body_diff,
                "files": [f.to_dict() for f in self.files], "error": self.error}


@dataclass
class RecordChange:
    key: str
    kind: str  # added | removed | changed
    old: dict | None = None
    new: dict | None = None
    fields: list[FieldChange] = field(default_factory=list)

    def to_dict(self) -> dict:
        out: dict = {"key": self.key, "kind": self.kind}
        if self.kind == "changed":
            out["fields"] = [f.to_dict() for f in self.fields]
        else:
            out["record"] = self.new if self.kind == "added" else self.old
        return out


@dataclass
class MemoryChange:
    path: str
    status: str  # added | removed | modified
    added: list[RecordChange] = field(default_factory=list)
    removed: list[RecordChange] = field(default_factory=list)
    changed: list[RecordChange] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)  # lines that are not JSON objects
    binary: bool = False
    note: str = ""

    @property
    def layer(self) -> str:
        return "memory"

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status, "binary": self.binary, "note": self.note,
                "added": [r.to_dict() for r in self.added], "removed": [r.to_dict() for r in self.removed],
                "changed": [r.to_dict() for r in self.changed], "invalid": self.invalid}


@dataclass
class EntryChange:
    name: str
    kind: str  # added | removed | changed
    fields: list[FieldChange] = field(default_factory=list)
    entry: dict | None = None  # the whole entry, for added / removed

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "fields": [f.to_dict() for f in self.fields], "entry": self.entry}


@dataclass
class StructuredChange:
    """A YAML document compared by meaning: the tool registry, the manifest, aevolve.yaml."""

    path: str
    layer: str
    status: str
    protected: bool = False
    entries: list[EntryChange] = field(default_factory=list)  # the registry's tools, by name
    fields: list[FieldChange] = field(default_factory=list)  # other keys, field by field

    def to_dict(self) -> dict:
        return {"path": self.path, "layer": self.layer, "status": self.status, "protected": self.protected,
                "entries": [e.to_dict() for e in self.entries], "fields": [f.to_dict() for f in self.fields]}


@dataclass
class Side:
    """One end of the diff, as the user named it and as resolved."""

    rev: str
    commit: str | None = None
    tree: str | None = None

    def to_dict(self) -> dict:
        return {"rev": self.rev, "commit": self.commit, "tree": self.tree}

    def label(self) -> str:
        if self.rev == WORKTREE:
            return "working tree"
        if self.rev == INDEX:
            return "index"
        if self.commit and self.commit.startswith(self.rev):
            return self.commit[:12]
        return f"{self.rev} ({self.commit[:12]})" if self.commit else self.rev


@dataclass
class SemanticDiff:
    a: Side
    b: Side
    files: list[FileChange] = field(default_factory=list)
    skills: list[SkillChange] = field(default_factory=list)
    memory: list[MemoryChange] = field(default_factory=list)
    structured: list[StructuredChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.files or self.skills or self.memory or self.structured)

    @property
    def protected(self) -> list[str]:
        """Paths changed under protected paths: shown first, an evolver may not touch them."""
        paths = [f.path for f in self.files if f.protected] + [s.path for s in self.structured if s.protected]
        return sorted(paths)

    def stat(self) -> dict[str, dict[str, int]]:
        """Counts per layer, in display order."""
        out: dict[str, Counter] = {}
        for f in self.files:
            c = out.setdefault(f.layer, Counter())
            c["files"] += 1
            c["lines added"] += f.additions
            c["lines removed"] += f.deletions
        for skill in self.skills:
            out.setdefault("skills", Counter())[skill.status] += 1
        for m in self.memory:
            c = out.setdefault("memory", Counter())
            c["files"] += 1
            c["records added"] += len(m.added)
            c["records removed"] += len(m.removed)
            c["records changed"] += len(m.changed)
        for doc in self.structured:
            c = out.setdefault(doc.layer, Counter())
            c["files"] += 1
            for e in doc.entries:
                c[f"entries {e.kind}"] += 1
            if doc.fields:
                c["fields changed"] += len(doc.fields)
        return {layer: dict(out[layer]) for layer in sorted(out, key=layer_key)}

    def to_dict(self) -> dict:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "empty": self.empty,
            "protected": self.protected,
            "stat": self.stat(),
            "files": [f.to_dict() for f in self.files],
            "skills": [s.to_dict() for s in self.skills],
            "memory": [m.to_dict() for m in self.memory],
            "structured": [s.to_dict() for s in self.structured],
        }

    def render(self, format: str = "text", stat: bool = False, color: bool = False, full: bool = False,
               paint=None) -> str:
        """format: text | markdown | json; stat: counts per layer only; color: ANSI (text only);
        full: whole values and every record; paint: (text, kind) -> text, a terminal's own colours."""
        from aevolve._review.render import render  # imported late: render builds on this module

        return render(self, format, stat, color, full, paint)
