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

This module sorts each changed file to its differ (`semdiff/`: the sides, one
differ per kind of file, the result types); `render` lays the result out as
text, Markdown or JSON (`SemanticDiff.render`).
"""

from __future__ import annotations

from aevolve import _config as config_mod
from aevolve._git.repo import Repo
from aevolve._review.semdiff.fields import field_changes
from aevolve._review.semdiff.memory import memory_change
from aevolve._review.semdiff.result import (
    INDEX,
    LAYER_ORDER,
    WORKTREE,
    EntryChange,
    FieldChange,
    FileChange,
    MemoryChange,
    RecordChange,
    SemanticDiff,
    Side,
    SkillChange,
    StructuredChange,
    layer_key,
)
from aevolve._review.semdiff.skills import RENAME_SIMILARITY, skill_changes
from aevolve._review.semdiff.sources import Source, delta, protection_config, tree_delta
from aevolve._review.semdiff.structured import STRUCTURED_FILES, structured_change
from aevolve._review.semdiff.text import text_change

# Earlier names, still imported elsewhere (tests patch `_Source.read`; rollback walks trees with `_tree_delta`).
_Source = Source
_tree_delta = tree_delta

__all__ = [
    "INDEX", "LAYER_ORDER", "RENAME_SIMILARITY", "WORKTREE", "EntryChange", "FieldChange", "FileChange",
    "MemoryChange", "RecordChange", "SemanticDiff", "Side", "SkillChange", "StructuredChange", "default_sides",
    "field_changes", "layer_key", "semantic_diff", "worktree_dirty",
]


def semantic_diff(repo: Repo, a: str, b: str) -> SemanticDiff:
    """The semantic diff from `a` to `b`: revisions, or WORKTREE / INDEX."""
    sa, sb = Source(repo, a), Source(repo, b)
    changed = delta(repo, sa, sb)
    result = SemanticDiff(sa.side, sb.side)
    if not changed:
        return result
    cfg = protection_config(sa, sb)
    skills: dict[str, list] = {}
    for path, old, new in changed:
        parts = path.split("/")
        if parts[0] == "skills" and len(parts) >= 3:
            skills.setdefault(parts[1], []).append((path, old, new))
            continue
        protected = config_mod.is_protected(path, cfg)
        if path in STRUCTURED_FILES:
            change = structured_change(sa, sb, path, old, new, protected)
            if change is not None:
                result.structured.append(change)
                continue
        if parts[0] == "memory" and path.endswith(".jsonl"):
            result.memory.append(memory_change(sa, sb, path, old, new))
            continue
        result.files.append(text_change(sa, sb, path, old, new, protected))
    if skills:
        result.skills = skill_changes(sa, sb, skills)
    result.files.sort(key=lambda f: (not f.protected, *layer_key(f.layer), f.path))
    result.structured.sort(key=lambda s: (not s.protected, *layer_key(s.layer), s.path))
    result.memory.sort(key=lambda m: m.path)
    return result


def worktree_dirty(repo: Repo) -> bool:
    """True when the checkout differs from HEAD (staged, unstaged or untracked, not ignored)."""
    return repo.is_dirty()


def default_sides(repo: Repo, a: str | None, b: str | None) -> tuple[str, str]:
    """`aevolve diff [A [B]]`: A = main; B = the working tree when it has changes, else HEAD."""
    aliases = {"WORKTREE": WORKTREE, ":wt": WORKTREE, "INDEX": INDEX, ":staged": INDEX}
    a = aliases.get(a, a) if a else "main"
    if b:
        return a, aliases.get(b, b)
    return a, WORKTREE if worktree_dirty(repo) else "HEAD"
