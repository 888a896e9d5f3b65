"""The semantic diff as text (terminal), Markdown (pull requests) or JSON.

Every change becomes a Block: a heading, short remarks, and diff-like lines
whose first character says added (+), removed (-), or context. Text and
Markdown are two layouts of the same blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aevolve._review.semdiff.fields import field_changes
from aevolve._review.semdiff.result import (
    FieldChange,
    FileChange,
    MemoryChange,
    RecordChange,
    SemanticDiff,
    SkillChange,
    StructuredChange,
    layer_key,
)

FOLD_LINES = 25  # markdown: blocks longer than this fold into <details>
SHOW_RECORDS = 200  # text/markdown: records shown per kind before "... and N more"


def render(diff: SemanticDiff, format: str = "text", stat: bool = False, color: bool = False) -> str:
    if format == "json":
        return render_json(diff, stat=stat)
    if format == "markdown":
        return render_markdown(diff, stat=stat)
    if format == "text":
        return render_text(diff, stat=stat, color=color)
    raise ValueError(f"unknown format {format!r} (text, markdown, json)")


def render_json(diff: SemanticDiff, stat: bool = False) -> str:
    data = diff.to_dict()
    if stat:
        data = {k: data[k] for k in ("a", "b", "empty", "protected", "stat")}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


@dataclass
class Block:
    layer: str
    heading: str
    lines: list[str] = field(default_factory=list)  # plain remarks
    code: list[str] = field(default_factory=list)  # diff-like lines
    protected: bool = False


def _value(value, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_lines(fields: list[FieldChange], indent: str = "  ") -> list[str]:
    out = []
    for f in fields:
        if f.kind != "added":
            out.append(f"-{indent}{f.field}: {_value(f.old)}")
        if f.kind != "removed":
            out.append(f"+{indent}{f.field}: {_value(f.new)}")
    return out


def _records(kind: str, records: list[RecordChange]) -> list[str]:
    out = []
    for r in records[:SHOW_RECORDS]:
        if kind == "changed":
            out.append(f"~ {r.key}")
            out += _field_lines(r.fields, "    ")
        else:
            out.append(f"{'+' if kind == 'added' else '-'} {r.key}  {_value(r.new if kind == 'added' else r.old, 200)}")
    if len(records) > SHOW_RECORDS:
        out.append(f"  ... and {len(records) - SHOW_RECORDS} more {kind} records (--format json lists all)")
    return out


def _hunks(diff: list[str]) -> list[str]:
    """A unified diff without its ---/+++ header: the block's heading names the file."""
    return [line for line in diff if not line.startswith(("--- ", "+++ "))]


def _file_block(f: FileChange) -> Block:
    counts = f" +{f.additions} -{f.deletions}" if f.diff else ""
    block = Block(f.layer, f"{f.path} ({f.status}{counts})", protected=f.protected)
    if f.note:
        block.lines.append(f.note)
    block.code = _hunks(f.diff)
    return block


def blocks(diff: SemanticDiff) -> list[Block]:
    """The diff as display blocks, protected changes first, then by layer."""
    out: list[Block] = [_structured_block(s) for s in diff.structured]
    out += [_file_block(f) for f in diff.files if f.protected]
    out += [_skill_block(s) for s in diff.skills]
    out += [_memory_block(m) for m in diff.memory]
    out += [_file_block(f) for f in diff.files if not f.protected]
    return sorted(out, key=lambda b: (not b.protected, *layer_key(b.layer)))


def _structured_block(s: StructuredChange) -> Block:
    block = Block(s.layer, f"{s.path} ({s.status})", protected=s.protected)
    for e in s.entries:
        if e.kind == "changed":
            block.code.append(f"~ {e.name}")
            block.code += _field_lines(e.fields, "    ")
        else:
            sign = "+" if e.kind == "added" else "-"
            block.code.append(f"{sign} {e.name}")
            shown = {k: v for k, v in (e.entry or {}).items() if k != "name"}
            block.code += _field_lines(field_changes({}, shown) if e.kind == "added"
                                       else field_changes(shown, {}), "    ")
    block.code += _field_lines(s.fields)
    return block


def _skill_block(s: SkillChange) -> Block:
    title = {"renamed": f"skill {s.old_name} -> {s.name} (renamed, {round((s.similarity or 0) * 100)}% similar)"}.get(
        s.status, f"skill {s.name} ({s.status})")
    block = Block("skills", title)
    if s.description and s.status in ("added", "changed"):
        block.lines.append(f"description: {_value(s.description, 200)}")
    if s.error:
        block.lines.append(f"SKILL.md does not parse: {s.error}")
    if s.fields:
        block.code += ["  front matter:"] + _field_lines(s.fields, "    ")
    if s.body_diff:
        block.code += ["  body:"] + _hunks(s.body_diff)
    for f in s.files:
        rel = f.path.split("/", 2)[-1]
        note = f" ({f.note})" if f.note else ""
        block.code.append(f"  {rel}: {f.status}{note}")
        block.code += _hunks(f.diff)
    return block


def _memory_block(m: MemoryChange) -> Block:
    summary = f"+{len(m.added)} -{len(m.removed)} ~{len(m.changed)} records"
    block = Block("memory", f"{m.path} ({m.status}, {summary})")
    if m.note:
        block.lines.append(m.note)
    for bad in m.invalid[:20]:
        block.lines.append(f"{'old' if bad['side'] == 'a' else 'new'} line {bad['line']}: {bad['error']}")
    block.code = _records("added", m.added) + _records("removed", m.removed) + _records("changed", m.changed)
    return block


_SINGULAR = {"files": "file", "lines": "line", "records": "record", "entries": "entry", "fields": "field"}


def stat_lines(diff: SemanticDiff) -> list[tuple[str, str]]:
    """(layer, "2 files, 3 lines added") per layer; zero counts other than files are left out."""
    rows = []
    for layer, counts in diff.stat().items():
        parts = []
        for key, n in counts.items():
            if n == 0 and key != "files":
                continue
            head, _, rest = key.partition(" ")
            word = _SINGULAR.get(head, head) if n == 1 else head
            parts.append(f"{n} {word}{' ' + rest if rest else ''}")
        rows.append((layer, ", ".join(parts)))
    return rows


_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m", "~": "\x1b[33m", "bold": "\x1b[1m", "alarm": "\x1b[1;31m"}
_RESET = "\x1b[0m"


def render_text(diff: SemanticDiff, stat: bool = False, color: bool = False) -> str:
    def paint(text: str, kind: str) -> str:
        return f"{_COLORS[kind]}{text}{_RESET}" if color and kind in _COLORS else text

    out = [paint(f"semantic diff {diff.a.label()} -> {diff.b.label()}", "bold")]
    if diff.empty:
        return "\n".join(out + ["no changes"]) + "\n"
    if diff.protected:
        out.append(paint("!! PROTECTED PATHS CHANGED (no evolver may touch these; the gate's own rules):", "alarm"))
        out += [paint(f"!!   {p}", "alarm") for p in diff.protected]
    if stat:
        rows = stat_lines(diff)
        width = max(len(layer) for layer, _ in rows)
        out += [f"  {layer.ljust(width)}  {text}" for layer, text in rows]
        return "\n".join(out) + "\n"
    layer = None
    for block in blocks(diff):
        if block.layer != layer:
            layer = block.layer
            out += ["", paint(f"== {layer} ==", "bold")]
        out.append(paint(("!! " if block.protected else "") + block.heading, "alarm" if block.protected else "bold"))
        out += [f"  {line}" for line in block.lines]
        out += [f"  {paint(line, line[:1])}" if line[:1] in "+-@~" else f"  {line}" for line in block.code]
    return "\n".join(out) + "\n"


def render_markdown(diff: SemanticDiff, stat: bool = False, level: int = 3) -> str:
    """`level` is the heading depth, so `aevolve review` can nest the diff under its own headings."""
    h = "#" * level
    out = [f"{h} Semantic diff: `{diff.a.label()}` → `{diff.b.label()}`", ""]
    if diff.empty:
        return "\n".join(out + ["No changes."]) + "\n"
    if diff.protected:
        out += ["> [!WARNING]", "> **Protected paths changed** — no evolver may touch these (the regression suite "
                "and the gate's own rules):"]
        out += [f"> - `{p}`" for p in diff.protected]
        out.append("")
    out += ["| layer | changes |", "| --- | --- |"]
    out += [f"| {layer} | {text} |" for layer, text in stat_lines(diff)]
    if stat:
        return "\n".join(out) + "\n"
    layer = None
    for block in blocks(diff):
        if block.layer != layer:
            layer = block.layer
            out += ["", f"{h}# {layer}"]
        out += ["", f"**{'⚠️ ' if block.protected else ''}`{block.heading}`**"]
        out += [f"- {line}" for line in block.lines]
        if block.code:
            # a fence inside the content would close a ``` block early
            fence = "```" if not any(line.startswith("```") for line in block.code) else "~~~~"
            code = ["", f"{fence}diff", *block.code, fence]
            if len(block.code) > FOLD_LINES:
                out += ["", f"<details><summary>{len(block.code)} lines</summary>", *code, "", "</details>"]
            else:
                out += code
    return "\n".join(out) + "\n"
