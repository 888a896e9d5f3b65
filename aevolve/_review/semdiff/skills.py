"""Skills compared as skills: added, removed, renamed (paired by how alike their
bodies are) or changed, SKILL.md's front matter field by field apart from its
body, the files beside it (scripts/, references/ ...) as text."""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass

from aevolve._review.semdiff.fields import field_changes
from aevolve._review.semdiff.result import FileChange, SkillChange
from aevolve._review.semdiff.sources import Source, decode
from aevolve._review.semdiff.text import text_change, unified
from aevolve._state.model import SKILL_FILE, FileError, SkillDoc, parse_skill

RENAME_SIMILARITY = 0.6
RENAME_ALL_PAIRS = 400  # up to 20 x 20 renames every pair is compared
CHAR_DIFF_LIMIT = 4_000  # replaced lines longer than this count as unmatched (difflib is quadratic)
RENAME_CANDIDATES = 8  # beyond that, full comparisons per removed skill (about twice this)


@dataclass
class _SkillSide:
    name: str
    files: dict  # path -> (oid, mode)
    doc: SkillDoc | None = None
    text: str | None = None
    error: str = ""


def skill_changes(sa: Source, sb: Source, touched: dict[str, list]) -> list[SkillChange]:
    """The changes of the skills whose folders hold a changed file, by skill name."""
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
        out.append(_skill_renamed(sa, sb, old, new, similarity))
    out += [_skill_removed(sa, sb, old) for old in removed]
    out += [_skill_added(sa, sb, new) for new in added]
    return sorted(out, key=lambda s: s.name)


def _load_skill(source: Source, name: str, files: dict) -> _SkillSide:
    side = _SkillSide(name, files)
    path = f"skills/{name}/{SKILL_FILE}"
    if path in files:
        side.text = decode(source.read(path, files[path][0]))
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
    oid_a = a.files.get(f"skills/{a.name}/{SKILL_FILE}", (None,))[0]
    if oid_a == b.files.get(f"skills/{b.name}/{SKILL_FILE}", (None,))[0]:
        return 1.0
    return _text_similarity(_body(a), _body(b))


def _text_similarity(body_a: str, body_b: str) -> float:
    """difflib's ratio (2 * matched characters / both lengths), computed line by line
    first and character by character only inside the replaced lines: a character
    ratio of two 1.6 kB bodies costs ~0.1 s, this one a millisecond."""
    total = len(body_a) + len(body_b)
    if total == 0:
        return 1.0
    if 2 * min(len(body_a), len(body_b)) < RENAME_SIMILARITY * total:
        return 0.0  # too different in size to ever reach the threshold
    la, lb = body_a.splitlines(keepends=True), body_b.splitlines(keepends=True)
    lines = difflib.SequenceMatcher(None, la, lb, autojunk=False)
    matched = 0
    for tag, i1, i2, j1, j2 in lines.get_opcodes():
        if tag == "equal":
            matched += sum(len(x) for x in la[i1:i2])
        elif tag == "replace":
            seg_a, seg_b = "".join(la[i1:i2]), "".join(lb[j1:j2])
            if len(seg_a) + len(seg_b) <= CHAR_DIFF_LIMIT:
                chars = difflib.SequenceMatcher(None, seg_a, seg_b, autojunk=False)
                matched += sum(size for _, _, size in chars.get_matching_blocks())
    return 2 * matched / total


def _rivals(removed: list, added: list) -> dict[str, list]:
    """For each removed skill, the added skills worth a full comparison.

    Every pair when there are few; otherwise, like `git diff -M`'s hashed chunks,
    the added skills sharing the most body lines that few bodies have (template
    lines say nothing), the same body exactly, or the same front-matter name,
    plus the closest in size: at most ~2 * RENAME_CANDIDATES per removed skill,
    so 800 renames cost ~linear time instead of 640,000 difflib runs.
    """
    if len(removed) * len(added) <= RENAME_ALL_PAIRS:
        return {old.name: list(added) for old in removed}
    lines_of = {id(s): set(_body(s).splitlines()) for s in [*removed, *added]}
    holders: dict[str, list] = {}
    for new in added:
        for line in lines_of[id(new)]:
            holders.setdefault(line, []).append(new)
    rare = max(RENAME_CANDIDATES, 2)
    by_name: dict[str, list] = {}
    for new in added:
        if new.doc is not None and new.doc.meta.get("name"):
            by_name.setdefault(str(new.doc.meta.get("name")), []).append(new)
    by_size = sorted(added, key=lambda s: len(_body(s)))
    by_id = {id(s): s for s in added}
    by_body: dict[str, list] = {}
    for new in added:
        by_body.setdefault(_body(new), []).append(new)
    sizes = [len(_body(s)) for s in by_size]
    out: dict[str, list] = {}
    for old in removed:
        shared: dict[int, int] = {}
        for line in lines_of[id(old)]:
            for new in holders.get(line, ()) if len(holders.get(line, ())) <= rare else ():
                shared[id(new)] = shared.get(id(new), 0) + 1
        best = [by_id[i] for i in sorted(shared, key=lambda i: -shared[i])[:RENAME_CANDIDATES]]
        at = bisect.bisect_left(sizes, len(_body(old)))
        near = by_size[max(0, at - RENAME_CANDIDATES // 2):at + RENAME_CANDIDATES // 2]
        name = str(old.doc.meta.get("name")) if old.doc is not None and old.doc.meta.get("name") else None
        same = by_name.get(name, [])[:RENAME_CANDIDATES] if name else []
        twins = by_body.get(_body(old), [])[:RENAME_CANDIDATES]
        out[old.name] = list({id(n): n for n in [*twins, *best, *near, *same]}.values())
    return out


def _body(side: _SkillSide) -> str:
    return side.doc.body if side.doc else side.text or ""


def _pair_renames(removed: list, added: list) -> list:
    """Greedy best-first pairing of removed and added skills into renames."""
    candidates = []
    rivals = _rivals(removed, added)
    for old in removed:
        for new in rivals[old.name]:
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
            change.files.append(text_change(sa, sb, path, old, new, False, "skills"))
    if not change.description:  # only files beside SKILL.md changed: still say what the skill is
        current = _load_skill(sb, name, sb.files_under(f"skills/{name}"))
        if current.doc is not None:
            change.description = str(current.doc.meta.get("description", ""))
    return change


def _compare_docs(change, a: _SkillSide, b: _SkillSide, sa, sb, path_b, old, new, path_a=None) -> None:
    if a.doc is not None and b.doc is not None:
        change.fields = field_changes(a.doc.meta, b.doc.meta)
        if a.doc.body != b.doc.body:
            change.body_diff = unified(a.doc.body, b.doc.body, path_b, old_path=path_a)
        change.description = str(b.doc.meta.get("description", ""))
    else:
        change.error = a.error or b.error
        change.files.append(_text_pair(sa, sb, path_a or path_b, path_b, old, new))


def _text_pair(sa, sb, path_a, path_b, old, new) -> FileChange:
    change = text_change(_Renamed(sa, path_a, path_b), sb, path_b, old, new, False, "skills")
    if path_a != path_b and change.diff:
        change.diff[0] = f"--- a/{path_a}"
    return change


class _Renamed:
    """Reads path_b of one side as path_a (a renamed skill's files)."""

    def __init__(self, source, path_a, path_b):
        self.source, self.path_a, self.path_b = source, path_a, path_b

    def read(self, path, oid):
        return self.source.read(self.path_a if path == self.path_b else path, oid)


def _skill_added(sa, sb, new: _SkillSide) -> SkillChange:
    change = SkillChange(new.name, "added", error=new.error)
    if new.doc is not None:
        change.fields = field_changes({}, new.doc.meta)
        change.body_diff = unified("", new.doc.body, f"skills/{new.name}/{SKILL_FILE}", has_a=False)
        change.description = str(new.doc.meta.get("description", ""))
    for path, entry in sorted(new.files.items()):
        if new.doc is None or not path.endswith("/" + SKILL_FILE):
            change.files.append(text_change(sa, sb, path, None, entry, False, "skills"))
    return change


def _skill_removed(sa, sb, old: _SkillSide) -> SkillChange:
    change = SkillChange(old.name, "removed", error=old.error)
    if old.doc is not None:
        change.fields = field_changes(old.doc.meta, {})
        change.body_diff = unified(old.doc.body, "", f"skills/{old.name}/{SKILL_FILE}", has_b=False)
        change.description = str(old.doc.meta.get("description", ""))
    for path, entry in sorted(old.files.items()):
        if old.doc is None or not path.endswith("/" + SKILL_FILE):
            change.files.append(text_change(sa, sb, path, entry, None, False, "skills"))
    return change


def _skill_renamed(sa, sb, old: _SkillSide, new: _SkillSide, similarity) -> SkillChange:
    """A skill moved to a new folder: its files compared across the two folders."""
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
                change.files.append(text_change(sa, sb, pa + rel, ea, None, False, "skills"))
            else:
                change.files.append(text_change(sa, sb, pb + rel, None, eb, False, "skills"))
    return change
