"""The semantic diff as text (terminal), Markdown (pull requests) or JSON.

Every change becomes a Block: a heading, short remarks, and diff-like lines
whose first character says added (+), removed (-), or context. Text and
Markdown are two layouts of the same blocks.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
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
from aevolve._review.semdiff.text import Segments, word_diff

FOLD_LINES = 25  # markdown: blocks longer than this fold into <details>
SHOW_RECORDS = 200  # text/markdown: records shown per kind before "... and N more"
VALUE_LIMIT = 160  # characters of a value shown (without --full)
LINE_LIMIT = 1000  # characters of one diff line shown (without --full): a minified blob stays readable
WORD_DIFF_MIN = 40  # a changed string this long shows its changed words, not just two lines

Paint = Callable[[str, str], str]  # (text, kind) -> text; kinds: + - @ ~ bold alarm, +! -! (changed words)


def render(diff: SemanticDiff, format: str = "text", stat: bool = False, color: bool = False,
           full: bool = False, paint: Paint | None = None) -> str:
    """`full`: whole values and every record (else values are cut at VALUE_LIMIT characters and
    SHOW_RECORDS records a kind); `paint` colours the text layout (the CLI's, for its terminal)."""
    if format == "json":
        return render_json(diff, stat=stat)
    if format == "markdown":
        return render_markdown(diff, stat=stat, full=full)
    if format == "text":
        return render_text(diff, stat=stat, color=color, full=full, paint=paint)
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
    marks: dict[int, Segments] = field(default_factory=dict)  # code line -> its segments, changed words marked


def _value(value, limit: int | None = VALUE_LIMIT) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _cut(segments: Segments, limit: int | None) -> Segments:
    """The segments of at most `limit` characters, "…" where they were cut."""
    if limit is None or sum(len(t) for t, _ in segments) <= limit:
        return segments
    out: Segments = []
    room = limit - 1
    for text, changed in segments:
        if room <= 0:
            break
        out.append((text[:room], changed))
        room -= len(text)
    return out + [("…", False)]


def _quoted(segments: Segments, limit: int | None) -> Segments:
    """A string's segments as its JSON form shows it: quoted, each piece escaped."""
    inner = [(json.dumps(t, ensure_ascii=False)[1:-1], c) for t, c in segments]
    return [('"', False), *_cut(inner, None if limit is None else limit - 2), ('"', False)]


def _field_lines(fields: list[FieldChange], indent: str = "  ", limit: int | None = VALUE_LIMIT,
                 marks: dict[int, Segments] | None = None, start: int = 0) -> list[str]:
    """`-`/`+` lines per field; a long changed string also gets its changed words in `marks`
    (keyed by line number counted from `start`, the block's code lines before these)."""
    out: list[str] = []
    for f in fields:
        if (marks is not None and f.kind == "changed" and isinstance(f.old, str) and isinstance(f.new, str)
                and max(len(f.old), len(f.new)) >= WORD_DIFF_MIN):
            for sign, segments in zip("-+", word_diff(f.old, f.new), strict=True):
                line = [(f"{sign}{indent}{f.field}: ", False), *_quoted(segments, limit)]
                marks[start + len(out)] = line
                out.append("".join(t for t, _ in line))
            continue
        if f.kind != "added":
            out.append(f"-{indent}{f.field}: {_value(f.old, limit)}")
        if f.kind != "removed":
            out.append(f"+{indent}{f.field}: {_value(f.new, limit)}")
    return out


def _records(kind: str, records: list[RecordChange], full: bool = False,
             marks: dict[int, Segments] | None = None, start: int = 0) -> list[str]:
    out: list[str] = []
    shown = records if full else records[:SHOW_RECORDS]
    limit = None if full else VALUE_LIMIT
    for r in shown:
        if kind == "changed":
            out.append(f"~ {r.key}")
            out += _field_lines(r.fields, "    ", limit, marks, start + len(out))
        else:
            value = _value(r.new if kind == 'added' else r.old, None if full else 200)
            out.append(f"{'+' if kind == 'added' else '-'} {r.key}  {value}")
    if len(records) > len(shown):
        out.append(f"  ... and {len(records) - len(shown)} more {kind} records (--full or --format json lists all)")
    return out


def _hunks(diff: list[str], full: bool = False) -> list[str]:
    """A unified diff without its ---/+++ header (the block's heading names the file), each
    line cut at LINE_LIMIT characters unless `full`."""
    lines = [line for line in diff if not line.startswith(("--- ", "+++ "))]
    if full:
        return lines
    return [line if len(line) <= LINE_LIMIT else f"{line[:LINE_LIMIT]} … ({len(line) - LINE_LIMIT:,} more characters)"
            for line in lines]


def _file_block(f: FileChange, full: bool = False) -> Block:
    counts = f" +{f.additions} -{f.deletions}" if f.diff else ""
    block = Block(f.layer, f"{f.path} ({f.status}{counts})", protected=f.protected)
    if f.note:
        block.lines.append(f.note)
    block.code = _hunks(f.diff, full)
    return block


def blocks(diff: SemanticDiff, full: bool = False) -> list[Block]:
    """The diff as display blocks, protected changes first, then by layer."""
    out: list[Block] = [_structured_block(s) for s in diff.structured]
    out += [_file_block(f, full) for f in diff.files if f.protected]
    out += [_skill_block(s, full) for s in diff.skills]
    out += [_memory_block(m, full) for m in diff.memory]
    out += [_file_block(f, full) for f in diff.files if not f.protected]
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


def _skill_block(s: SkillChange, full: bool = False) -> Block:
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
        block.code += ["  body:"] + _hunks(s.body_diff, full)
    for f in s.files:
        rel = f.path.split("/", 2)[-1]
        note = f" ({f.note})" if f.note else ""
        block.code.append(f"  {rel}: {f.status}{note}")
        block.code += _hunks(f.diff, full)
    return block


def _memory_block(m: MemoryChange, full: bool = False) -> Block:
    summary = f"+{len(m.added)} -{len(m.removed)} ~{len(m.changed)} records"
    block = Block("memory", f"{m.path} ({m.status}, {summary})")
    if m.note:
        block.lines.append(m.note)
    for bad in m.invalid[:20]:
        block.lines.append(f"{'old' if bad['side'] == 'a' else 'new'} line {bad['line']}: {bad['error']}")
    block.code = _records("added", m.added, full) + _records("removed", m.removed, full)
    block.code += _records("changed", m.changed, full, block.marks, len(block.code))
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


_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m", "~": "\x1b[33m", "bold": "\x1b[1m", "alarm": "\x1b[1;31m",
           "+!": "\x1b[30;42m", "-!": "\x1b[30;41m"}
_RESET = "\x1b[0m"


def ansi(text: str, kind: str) -> str:
    """Raw ANSI colours, for callers without a terminal layer of their own (the CLI passes its own)."""
    return f"{_COLORS[kind]}{text}{_RESET}" if kind in _COLORS else text


def _marked_text(segments: Segments, paint: Paint) -> str:
    sign = segments[0][0][:1] if segments and segments[0][0] else ""
    return "".join(paint(t, f"{sign}!" if changed else sign) for t, changed in segments)


def render_text(diff: SemanticDiff, stat: bool = False, color: bool = False, full: bool = False,
                paint: Paint | None = None) -> str:
    if paint is None:
        paint = ansi if color else (lambda text, kind: text)

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
    for block in blocks(diff, full):
        if block.layer != layer:
            layer = block.layer
            out += ["", paint(f"== {layer} ==", "bold")]
        out.append(paint(("!! " if block.protected else "") + block.heading, "alarm" if block.protected else "bold"))
        out += [f"  {line}" for line in block.lines]
        for n, line in enumerate(block.code):
            if n in block.marks:
                out.append(f"  {_marked_text(block.marks[n], paint)}")
            else:
                out.append(f"  {paint(line, line[:1])}" if line[:1] and line[:1] in "+-@~" else f"  {line}")
    return "\n".join(out) + "\n"


def render_markdown(diff: SemanticDiff, stat: bool = False, level: int = 3, full: bool = False) -> str:
    """`level` is the heading depth, so `aevolve review` can nest the diff under its own headings."""
    return "\n".join(markdown_units(diff, stat, level, full)) + "\n"


def markdown_units(diff: SemanticDiff, stat: bool = False, level: int = 3, full: bool = False) -> list[str]:
    """The Markdown as self-contained pieces (the head, then one per block): a caller that
    must stay under a size limit drops whole pieces, never half a fence."""
    h = "#" * level
    out = [f"{h} Semantic diff: `{diff.a.label()}` → `{diff.b.label()}`", ""]
    if diff.empty:
        return ["\n".join(out + ["No changes."])]
    if diff.protected:
        out += ["> [!WARNING]", "> **Protected paths changed** — no evolver may touch these (the regression suite "
                "and the gate's own rules):"]
        out += [f"> - `{p}`" for p in diff.protected]
        out.append("")
    out += ["| layer | changes |", "| --- | --- |"]
    out += [f"| {layer} | {text} |" for layer, text in stat_lines(diff)]
    units = ["\n".join(out)]
    if stat:
        return units
    layer = None
    for block in blocks(diff, full):
        out = []
        if block.layer != layer:
            layer = block.layer
            out += ["", f"{h}# {layer}"]
        out += ["", f"**{'⚠️ ' if block.protected else ''}`{block.heading}`**"]
        out += [f"- {line}" for line in block.lines]
        if block.code:
            code = _code_md(block)
            if len(block.code) > FOLD_LINES:
                out += ["", f"<details><summary>{len(block.code)} lines</summary>", *code, "", "</details>"]
            else:
                out += code
        units.append("\n".join(out))
    return units


def _code_md(block: Block) -> list[str]:
    """A fenced diff; or, when words are marked, HTML `<pre>` with <del>/<ins> (a fence shows no markup)."""
    if block.marks:
        body = [marked_html(block.marks[n]) if n in block.marks else html.escape(line, quote=False)
                for n, line in enumerate(block.code)]
        return ["", "<pre>" + "\n".join(body) + "</pre>"]
    # a fence inside the content would close a ``` block early
    fence = "```" if not any(line.startswith("```") for line in block.code) else "~~~~"
    return ["", f"{fence}diff", *block.code, fence]


def marked_html(segments: Segments, removed: bool | None = None) -> str:
    """Segments as HTML: changed words in <del> (a removed line, or `removed`) or <ins>."""
    if removed is None:
        removed = bool(segments) and segments[0][0].startswith("-")
    tag = "del" if removed else "ins"
    return "".join(f"<{tag}>{html.escape(t, quote=False)}</{tag}>" if changed else html.escape(t, quote=False)
                   for t, changed in segments)
