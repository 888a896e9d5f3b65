"""The semantic diff: what changed between two states, layer by layer.

Prompts and other text get unified diffs; skills are added / removed /
renamed / changed with front-matter fields apart from the body; memory JSONL
is compared record by record (matched by `record_key`), never line by line;
the tool registry, the manifest and aevolve.yaml are compared entry by entry,
field by field. Changes under protected paths (evals/, aevolve.yaml, ...) are
listed first: an evolver must never touch them.

Only what differs is read: trees are compared by id first, so an unchanged
folder (10,000 untouched skills) costs one comparison, and a big memory file
is parsed only on the lines that differ.

This module computes the diff; `diff_render` lays it out as text, Markdown
or JSON (`SemanticDiff.render`).
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass, field

from aevolve import _config as config_mod
from aevolve._git.repo import LINK, Repo
from aevolve._state.model import (
    CONFIG_FILE,
    MANIFEST_FILE,
    SKILL_FILE,
    TOOL_REGISTRY,
    FileError,
    State,
    layer_of,
    load_yaml,
    parse_skill,
    record_key,
)

WORKTREE = ":worktree"  # the checkout's files (tracked and untracked, not ignored)
INDEX = ":index"  # what is staged
RENAME_SIMILARITY = 0.6
LAYER_ORDER = ("config", "evals", "manifest", "prompts", "skills", "tools", "memory")
_LAYER_RANK = {name: i for i, name in enumerate(LAYER_ORDER)}
_ABSENT = object()


def layer_key(layer: str) -> tuple[int, str]:
    """Display order: LAYER_ORDER first, any other layer after, by name."""
    return _LAYER_RANK.get(layer, len(_LAYER_RANK)), layer


# -- data -------------------------------------------------------------------------


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
        for s in self.skills:
            out.setdefault("skills", Counter())[s.status] += 1
        for m in self.memory:
            c = out.setdefault("memory", Counter())
            c["files"] += 1
            c["records added"] += len(m.added)
            c["records removed"] += len(m.removed)
            c["records changed"] += len(m.changed)
        for s in self.structured:
            c = out.setdefault(s.layer, Counter())
            c["files"] += 1
            for e in s.entries:
                c[f"entries {e.kind}"] += 1
            if s.fields:
                c["fields changed"] += len(s.fields)
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

    def render(self, format: str = "text", stat: bool = False, color: bool = False) -> str:
        """format: text | markdown | json; stat: counts per layer only; color: ANSI (text only)."""
        from aevolve._review.render import render  # imported late: diff_render builds on this module

        return render(self, format, stat, color)


# -- reading the two sides -----------------------------------------------------------


class _Source:
    """Blob ids and bytes of one side: a commit's tree, or a State (worktree, index)."""

    def __init__(self, repo: Repo, rev: str):
        self.repo = repo
        self.side = Side(rev)
        self.state: State | None = None
        self.tree = None
        if rev == WORKTREE:
            if repo.workdir is None:
                from aevolve._errors import UsageError

                raise UsageError("a bare repository has no working tree to diff against; name two revisions")
            self.state = State.from_folder(repo.workdir, repo)
        elif rev == INDEX:
            self.state = State.from_index(repo)
        else:
            commit = repo.resolve(rev)
            self.tree = commit.tree
            self.side.commit, self.side.tree = str(commit.id), str(commit.tree.id)

    def flat(self) -> dict[str, tuple[str, int]]:
        if self.state is not None:
            return {p: (f.oid, f.mode) for p, f in self.state.files.items()}
        return {f.path: (f.oid, f.mode) for f in self.repo.list_files(self.tree)}

    def read(self, path: str, oid: str) -> bytes:
        if self.state is not None:
            return self.state.read(path)
        # odb.read inflates once; Blob.data inflates again on every access
        return self.repo.git.odb.read(oid)[1]

    def has_dir(self, folder: str) -> bool:
        if self.state is not None:
            prefix = folder + "/"
            return any(p.startswith(prefix) for p in self.state.files)
        try:
            return self.tree[folder].type_str == "tree"
        except KeyError:
            return False

    def files_under(self, folder: str) -> dict[str, tuple[str, int]]:
        prefix = folder + "/"
        if self.state is not None:
            return {p: (f.oid, f.mode) for p, f in self.state.files.items() if p.startswith(prefix)}
        try:
            sub = self.repo.git[self.tree[folder].id]
        except KeyError:
            return {}
        return {prefix + f.path: (f.oid, f.mode) for f in self.repo.walk(sub)}


def _tree_delta(repo: Repo, ta, tb, prefix: str, out: list) -> None:
    """(path, a, b) for every blob that differs; equal subtrees are skipped by id."""
    a = {e.name: e for e in ta} if ta is not None else {}
    b = {e.name: e for e in tb} if tb is not None else {}
    for name in sorted(a.keys() | b.keys()):
        ea, eb = a.get(name), b.get(name)
        if ea is not None and eb is not None and ea.id == eb.id and ea.filemode == eb.filemode:
            continue
        path = prefix + name
        a_tree = ea is not None and ea.type_str == "tree"
        b_tree = eb is not None and eb.type_str == "tree"
        if a_tree or b_tree:
            _tree_delta(repo, repo.git[ea.id] if a_tree else None, repo.git[eb.id] if b_tree else None, path + "/", out)
        a_blob = (str(ea.id), ea.filemode) if ea is not None and ea.type_str == "blob" else None
        b_blob = (str(eb.id), eb.filemode) if eb is not None and eb.type_str == "blob" else None
        if a_blob != b_blob and (a_blob or b_blob):
            out.append((path, a_blob, b_blob))


def _flat_delta(a: dict, b: dict) -> list:
    return [(p, a.get(p), b.get(p)) for p in sorted(a.keys() | b.keys()) if a.get(p) != b.get(p)]


# -- comparing --------------------------------------------------------------------------


def semantic_diff(repo: Repo, a: str, b: str) -> SemanticDiff:
    """The semantic diff from `a` to `b`: revisions, or WORKTREE / INDEX."""
    sa, sb = _Source(repo, a), _Source(repo, b)
    if sa.tree is not None and sb.tree is not None:
        delta: list = []
        if sa.tree.id != sb.tree.id:
            _tree_delta(repo, sa.tree, sb.tree, "", delta)
    else:
        delta = _flat_delta(sa.flat(), sb.flat())
    result = SemanticDiff(sa.side, sb.side)
    if not delta:
        return result
    cfg = _protection_config(sa, sb)
    skills: dict[str, list] = {}
    for path, old, new in delta:
        parts = path.split("/")
        if parts[0] == "skills" and len(parts) >= 3:
            skills.setdefault(parts[1], []).append((path, old, new))
            continue
        protected = config_mod.is_protected(path, cfg)
        if path in (TOOL_REGISTRY, MANIFEST_FILE, CONFIG_FILE):
            change = _structured(sa, sb, path, old, new, protected)
            if change is not None:
                result.structured.append(change)
                continue
        if parts[0] == "memory" and path.endswith(".jsonl"):
            result.memory.append(_memory(sa, sb, path, old, new))
            continue
        result.files.append(_text(sa, sb, path, old, new, protected))
    if skills:
        result.skills = _skills(sa, sb, skills)
    result.files.sort(key=lambda f: (not f.protected, *layer_key(f.layer), f.path))
    result.structured.sort(key=lambda s: (not s.protected, *layer_key(s.layer), s.path))
    result.memory.sort(key=lambda m: m.path)
    return result


def _protection_config(sa: _Source, sb: _Source) -> dict:
    """Protected paths as the base side's aevolve.yaml says (ALWAYS_PROTECTED in any case)."""
    for source in (sa, sb):
        flat_entry = _entry(source, CONFIG_FILE)
        if flat_entry is not None:
            try:
                raw = load_yaml(source.read(CONFIG_FILE, flat_entry[0]).decode("utf-8", "replace"), CONFIG_FILE)
                return config_mod.resolve(raw if isinstance(raw, dict) else {})
            except FileError:
                pass
            break
    return config_mod.resolve({})


def _entry(source: _Source, path: str):
    if source.state is not None:
        f = source.state.files.get(path)
        return (f.oid, f.mode) if f else None
    try:
        e = source.tree[path]
    except KeyError:
        return None
    return (str(e.id), e.filemode) if e.type_str == "blob" else None


def _status(old, new) -> str:
    return "added" if old is None else "removed" if new is None else "modified"


def _decode(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text(sa: _Source, sb: _Source, path: str, old, new, protected: bool, layer: str | None = None) -> FileChange:
    change = FileChange(path, layer or layer_of(path), _status(old, new), protected)
    da = sa.read(path, old[0]) if old else b""
    db = sb.read(path, new[0]) if new else b""
    if old and new and old[0] == new[0]:
        change.note = f"mode {old[1]:o} -> {new[1]:o}"
        return change
    ta, tb = _decode(da), _decode(db)
    if ta is None or tb is None:
        change.binary = True
        change.note = f"binary or not UTF-8 ({len(da)} -> {len(db)} bytes)"
        return change
    if (old and old[1] == LINK) or (new and new[1] == LINK):
        change.note = "symlink"
    change.diff = _unified(ta, tb, path, old is not None, new is not None)
    change.additions = sum(1 for line in change.diff if line.startswith("+") and not line.startswith("+++"))
    change.deletions = sum(1 for line in change.diff if line.startswith("-") and not line.startswith("---"))
    return change


def _unified(a: str, b: str, path: str, has_a: bool = True, has_b: bool = True, old_path: str | None = None) -> list[str]:
    return list(difflib.unified_diff(
        a.splitlines(), b.splitlines(),
        fromfile=f"a/{old_path or path}" if has_a else "/dev/null",
        tofile=f"b/{path}" if has_b else "/dev/null", lineterm="", n=3,
    ))


# -- fields -------------------------------------------------------------------------------


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


# -- structured YAML: registry, manifest, aevolve.yaml --------------------------------------


def _structured(sa, sb, path, old, new, protected) -> StructuredChange | None:
    """None when a side is not YAML: the caller falls back to a text diff."""
    try:
        da = _yaml_doc(sa, path, old)
        db = _yaml_doc(sb, path, new)
    except (FileError, UnicodeDecodeError):
        return None
    change = StructuredChange(path, layer_of(path), _status(old, new), protected)
    if path == TOOL_REGISTRY and isinstance(da.get("tools", []), list) and isinstance(db.get("tools", []), list):
        ea, eb = _by_name(da.get("tools") or []), _by_name(db.get("tools") or [])
        for name in list(ea) + [n for n in eb if n not in ea]:
            if name not in eb:
                change.entries.append(EntryChange(name, "removed", entry=ea[name]))
            elif name not in ea:
                change.entries.append(EntryChange(name, "added", entry=eb[name]))
            elif ea[name] != eb[name]:
                change.entries.append(EntryChange(name, "changed", field_changes(ea[name], eb[name])))
        da = {k: v for k, v in da.items() if k != "tools"}
        db = {k: v for k, v in db.items() if k != "tools"}
    change.fields = field_changes(da, db)
    if not change.entries and not change.fields and old and new:
        return None  # same meaning, different text (comments, order): show the text diff
    return change


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


# -- memory -------------------------------------------------------------------------------


def _memory(sa, sb, path, old, new) -> MemoryChange:
    change = MemoryChange(path, _status(old, new))
    da = sa.read(path, old[0]) if old else b""
    db = sb.read(path, new[0]) if new else b""
    if b"\0" in da[:8192] or b"\0" in db[:8192]:
        change.binary, change.note = True, f"binary ({len(da)} -> {len(db)} bytes)"
        return change
    la, lb = da.split(b"\n"), db.split(b"\n")
    # Only lines that are not on both sides are parsed: a 200,000-record file
    # with 1,000 edits costs two set builds and 2,000 json.loads.
    sa_set, sb_set = set(la), set(lb)
    if len(sa_set) == len(la) and len(sb_set) == len(lb):
        gone = [line for line in la if line not in sb_set]
        came = [line for line in lb if line not in sa_set]
    else:  # duplicate lines: count them
        ca, cb = Counter(la), Counter(lb)
        gone = list((ca - cb).elements())
        came = list((cb - ca).elements())
    old_records = _parse_lines(gone, la, "a", change)
    new_records = _parse_lines(came, lb, "b", change)
    for key, rec in new_records.items():
        if key in old_records:
            before = old_records.pop(key)
            if before != rec:
                change.changed.append(RecordChange(key, "changed", before, rec, field_changes(before, rec)))
        else:
            change.added.append(RecordChange(key, "added", new=rec))
    change.removed = [RecordChange(k, "removed", old=r) for k, r in old_records.items()]
    return change


def _parse_lines(raw_lines: list[bytes], all_lines: list[bytes], side: str, change: MemoryChange) -> dict:
    out: dict[str, dict] = {}
    for raw in raw_lines:
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
            problem = None if isinstance(value, dict) else "not a JSON object"
        except UnicodeDecodeError:
            problem = "not valid UTF-8"
        except json.JSONDecodeError as exc:
            problem = f"broken JSON: {exc.msg}"
        if problem:
            change.invalid.append({"side": side, "line": all_lines.index(raw) + 1, "error": problem,
                                   "text": raw.decode("utf-8", "replace")[:200]})
            continue
        key = record_key(value)
        while key in out:  # the same key twice on one side: keep both visible
            key += "'"
        out[key] = value
    return out


# -- skills -------------------------------------------------------------------------------


@dataclass
class _SkillSide:
    name: str
    files: dict  # path -> (oid, mode)
    doc: object = None  # SkillDoc
    text: str | None = None
    error: str = ""


def _skills(sa: _Source, sb: _Source, touched: dict[str, list]) -> list[SkillChange]:
    changed, removed, added = [], [], []
    for name in sorted(touched):
        in_a, in_b = sa.has_dir(f"skills/{name}"), sb.has_dir(f"skills/{name}")
        if in_a and in_b:
            changed.append(name)
        elif in_a:
            removed.append(_load_skill(sa, name, {p: o for p, o, _ in touched[name] if o}))
        else:
            added.append(_load_skill(sb, name, {p: n for p, _, n in touched[name] if n}))
    out = [_skill_change(sa, sb, name, touched[name]) for name in changed]
    for old, new, similarity in _pair_renames(removed, added):
        out.append(_skill_pair(sa, sb, old, new, "renamed", similarity))
    for old in removed:
        out.append(_skill_pair(sa, sb, old, None, "removed"))
    for new in added:
        out.append(_skill_pair(sa, sb, None, new, "added"))
    return sorted(out, key=lambda s: s.name)


def _load_skill(source: _Source, name: str, files: dict) -> _SkillSide:
    side = _SkillSide(name, files)
    path = f"skills/{name}/{SKILL_FILE}"
    if path in files:
        side.text = _decode(source.read(path, files[path][0]))
        if side.text is None:
            side.error = "SKILL.md is binary or not UTF-8"
        else:
            try:
                side.doc = parse_skill(side.text, path)
            except FileError as exc:
                side.error = str(exc)
    return side


def _similarity(a: _SkillSide, b: _SkillSide) -> float:
    if a.text is None or b.text is None:
        return 0.0
    if a.files.get(f"skills/{a.name}/{SKILL_FILE}", (None,))[0] == b.files.get(f"skills/{b.name}/{SKILL_FILE}", (None,))[0]:
        return 1.0
    body_a = a.doc.body if a.doc else a.text
    body_b = b.doc.body if b.doc else b.text
    matcher = difflib.SequenceMatcher(None, body_a, body_b, autojunk=False)
    # cheap upper bounds first, the real ratio only for plausible pairs
    if matcher.real_quick_ratio() < RENAME_SIMILARITY or matcher.quick_ratio() < RENAME_SIMILARITY:
        return 0.0
    return matcher.ratio()


def _pair_renames(removed: list, added: list) -> list:
    """Greedy best-first pairing of removed and added skills into renames."""
    candidates = []
    for old in removed:
        for new in added:
            score = _similarity(old, new)
            old_meta = old.doc.meta.get("name") if old.doc else None
            new_meta = new.doc.meta.get("name") if new.doc else None
            if old_meta and new_meta and old_meta == new_meta:
                score = max(score, RENAME_SIMILARITY)  # the same skill moved to a new folder
            if score >= RENAME_SIMILARITY:
                candidates.append((score, old.name, new.name, old, new))
    pairs, used_old, used_new = [], set(), set()
    for score, _, _, old, new in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if old.name in used_old or new.name in used_new:
            continue
        used_old.add(old.name)
        used_new.add(new.name)
        pairs.append((old, new, round(score, 3)))
    removed[:] = [s for s in removed if s.name not in used_old]
    added[:] = [s for s in added if s.name not in used_new]
    return pairs


def _skill_change(sa, sb, name: str, entries: list) -> SkillChange:
    """A skill present on both sides: SKILL.md by meaning, other files as text."""
    skill_path = f"skills/{name}/{SKILL_FILE}"
    change = SkillChange(name, "changed")
    for path, old, new in entries:
        if path == skill_path and old and new:
            a = _load_skill(sa, name, {path: old})
            b = _load_skill(sb, name, {path: new})
            _compare_docs(change, a, b, sa, sb, path, old, new)
        else:
            change.files.append(_text(sa, sb, path, old, new, False, "skills"))
    if not change.description:  # only files beside SKILL.md changed: still say what the skill is
        current = _load_skill(sb, name, sb.files_under(f"skills/{name}"))
        if current.doc is not None:
            change.description = str(current.doc.meta.get("description", ""))
    return change


def _compare_docs(change, a: _SkillSide, b: _SkillSide, sa, sb, path_b, old, new, path_a=None) -> None:
    if a.doc is not None and b.doc is not None:
        change.fields = field_changes(a.doc.meta, b.doc.meta)
        if a.doc.body != b.doc.body:
            change.body_diff = _unified(a.doc.body, b.doc.body, path_b, old_path=path_a)
        change.description = str(b.doc.meta.get("description", ""))
    else:
        change.error = a.error or b.error
        change.files.append(_text_pair(sa, sb, path_a or path_b, path_b, old, new))


def _text_pair(sa, sb, path_a, path_b, old, new) -> FileChange:
    change = _text(_Renamed(sa, path_a, path_b), sb, path_b, old, new, False, "skills")
    if path_a != path_b and change.diff:
        change.diff[0] = f"--- a/{path_a}"
    return change


class _Renamed:
    """Reads path_b of one side as path_a (a renamed skill's files)."""

    def __init__(self, source, path_a, path_b):
        self.source, self.path_a, self.path_b = source, path_a, path_b

    def read(self, path, oid):
        return self.source.read(self.path_a if path == self.path_b else path, oid)


def _skill_pair(sa, sb, old: _SkillSide | None, new: _SkillSide | None, status: str, similarity=None) -> SkillChange:
    if status == "added":
        change = SkillChange(new.name, "added", error=new.error)
        if new.doc is not None:
            change.fields = field_changes({}, new.doc.meta)
            change.body_diff = _unified("", new.doc.body, f"skills/{new.name}/{SKILL_FILE}", has_a=False)
            change.description = str(new.doc.meta.get("description", ""))
        for path, entry in sorted(new.files.items()):
            if new.doc is None or not path.endswith("/" + SKILL_FILE):
                change.files.append(_text(sa, sb, path, None, entry, False, "skills"))
        return change
    if status == "removed":
        change = SkillChange(old.name, "removed", error=old.error)
        if old.doc is not None:
            change.fields = field_changes(old.doc.meta, {})
            change.body_diff = _unified(old.doc.body, "", f"skills/{old.name}/{SKILL_FILE}", has_b=False)
            change.description = str(old.doc.meta.get("description", ""))
        for path, entry in sorted(old.files.items()):
            if old.doc is None or not path.endswith("/" + SKILL_FILE):
                change.files.append(_text(sa, sb, path, entry, None, False, "skills"))
        return change
    change = SkillChange(new.name, "renamed", old_name=old.name, similarity=similarity)
    pa, pb = f"skills/{old.name}/", f"skills/{new.name}/"
    rel_a = {p[len(pa):]: e for p, e in old.files.items()}
    rel_b = {p[len(pb):]: e for p, e in new.files.items()}
    for rel in sorted(rel_a.keys() | rel_b.keys()):
        ea, eb = rel_a.get(rel), rel_b.get(rel)
        if rel == SKILL_FILE and ea and eb:
            _compare_docs(change, old, new, sa, sb, pb + rel, ea, eb, path_a=pa + rel)
        elif ea != eb:
            if ea and eb:
                change.files.append(_text_pair(sa, sb, pa + rel, pb + rel, ea, eb))
            elif ea:
                change.files.append(_text(sa, sb, pa + rel, ea, None, False, "skills"))
            else:
                change.files.append(_text(sa, sb, pb + rel, None, eb, False, "skills"))
    return change


def worktree_dirty(repo: Repo) -> bool:
    """True when the checkout differs from HEAD (staged, unstaged or untracked, not ignored)."""
    if repo.workdir is None:
        return False
    import pygit2

    ignored = pygit2.enums.FileStatus.IGNORED
    return any(not flags & ignored for flags in repo.git.status(untracked_files="all").values())


def default_sides(repo: Repo, a: str | None, b: str | None) -> tuple[str, str]:
    """`aevolve diff [A [B]]`: A = main; B = the working tree when it has changes, else HEAD."""
    aliases = {"WORKTREE": WORKTREE, ":wt": WORKTREE, "INDEX": INDEX, ":staged": INDEX}
    a = aliases.get(a, a) if a else "main"
    if b:
        return a, aliases.get(b, b)
    return a, WORKTREE if worktree_dirty(repo) else "HEAD"
