"""The `patch` evolver: edits given by a person or another tool, plus a rationale.

Edits come from an edit file (YAML/JSON: a list of {op, path, content|records},
or a whole proposal document) or from a unified diff as `git diff` prints it,
applied in-process to the base state with context checking. The rationale
comes from a proposal document, a `--rationale` YAML file and/or flags (flags
win). This is the door for external optimizers: they produce a diff or an edit
list, aevolve routes it through the same policy and gate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._state import schemas
from aevolve._errors import EvolverFailed, InvalidInput, UsageError
from aevolve._state.model import FileError, load_yaml
from aevolve._propose.evolvers.base import Edit, EvolveContext, Proposal

RATIONALE_KEYS = ("title", "diagnosis", "change", "expected_effect")
_FLAG = {"title": "--title", "diagnosis": "--diagnosis", "change": "--change", "expected_effect": "--expected-effect"}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


# -- unified diffs ------------------------------------------------------------------


@dataclass
class Hunk:
    header: str
    old_start: int
    old_len: int
    lines: list[tuple[str, str]] = field(default_factory=list)  # (' '|'-'|'+', text with its newline)


@dataclass
class FilePatch:
    old_path: str | None = None  # None: a new file
    new_path: str | None = None  # None: a deleted file
    hunks: list[Hunk] = field(default_factory=list)
    binary: bool = False


def _unquote(path: str) -> str:
    if len(path) >= 2 and path[0] == '"' and path[-1] == '"':
        return path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
    return path


def _strip(path: str) -> str | None:
    path = _unquote(path.split("\t")[0].rstrip("\n"))
    if path == "/dev/null":
        return None
    head, sep, rest = path.partition("/")
    return rest if sep and head in ("a", "b") else path


def parse_diff(text: str, name: str = "diff") -> list[FilePatch]:
    """The file patches of a unified diff (git's extended headers understood)."""
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            current = FilePatch()
            patches.append(current)
            m = re.match(r'^diff --git (?:a/)?(\S+|"[^"]+") (?:b/)?(\S+|"[^"]+")\s*$', line)
            if m:
                current.old_path, current.new_path = _unquote(m.group(1)), _unquote(m.group(2))
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            if current is None or current.hunks:
                current = FilePatch()
                patches.append(current)
            current.old_path = _strip(line[4:])
            current.new_path = _strip(lines[i + 1][4:])
            i += 1
        elif current is not None and line.startswith("new file mode"):
            current.old_path = None
        elif current is not None and line.startswith("deleted file mode"):
            current.new_path = None
        elif current is not None and line.startswith("rename from "):
            current.old_path = _unquote(line[len("rename from "):].rstrip("\n"))
        elif current is not None and line.startswith("rename to "):
            current.new_path = _unquote(line[len("rename to "):].rstrip("\n"))
        elif current is not None and (line.startswith("GIT binary patch") or line.startswith("Binary files")):
            current.binary = True
        elif line.startswith("@@"):
            m = _HUNK.match(line)
            if current is None or not m:
                raise InvalidInput(f"{name}:{i + 1}: hunk header outside a file patch or malformed: {line.strip()}")
            hunk = Hunk(line.rstrip("\n"), int(m.group(1)), int(m.group(2) or "1"))
            old_left, new_left = hunk.old_len, int(m.group(4) or "1")
            current.hunks.append(hunk)
            while (old_left > 0 or new_left > 0) and i + 1 < len(lines):
                i += 1
                body = lines[i]
                tag = body[:1]
                if tag == "\\":
                    _drop_newline(hunk)
                    continue
                if tag not in (" ", "-", "+"):
                    if body.strip() == "":  # some tools drop the space of an empty context line
                        tag, body = " ", " " + body
                    else:
                        raise InvalidInput(f"{name}:{i + 1}: unexpected line inside a hunk: {body.rstrip()!r}")
                hunk.lines.append((tag, body[1:]))
                if tag in (" ", "-"):
                    old_left -= 1
                if tag in (" ", "+"):
                    new_left -= 1
            if i + 1 < len(lines) and lines[i + 1].startswith("\\"):
                i += 1
                _drop_newline(hunk)
        i += 1
    return patches


def _drop_newline(hunk: Hunk) -> None:
    """`\\ No newline at end of file` applies to the line just before it."""
    if hunk.lines:
        tag, text = hunk.lines[-1]
        hunk.lines[-1] = (tag, text[:-1] if text.endswith("\n") else text)


def apply_patch(base: str, patch: FilePatch, path: str) -> str:
    """`base` with every hunk applied; a hunk whose context differs raises EvolverFailed."""
    lines = base.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for number, hunk in enumerate(patch.hunks, 1):
        old = [t for tag, t in hunk.lines if tag in (" ", "-")]
        new = [t for tag, t in hunk.lines if tag in (" ", "+")]
        expected = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        pos = _find(lines, old, max(expected, cursor), cursor)
        if pos is None:
            raise EvolverFailed(
                f"{path}: hunk {number} ({hunk.header}) does not apply: its context does not match the base"
            )
        out += lines[cursor:pos] + new
        cursor = pos + len(old)
    out += lines[cursor:]
    return "".join(out)


def _find(lines: list[str], old: list[str], expected: int, floor: int) -> int | None:
    for offset in range(0, len(lines) + 1):
        for pos in (expected - offset, expected + offset) if offset else (expected,):
            if floor <= pos <= len(lines) - len(old) and lines[pos:pos + len(old)] == old:
                return pos
        if expected - offset < floor and expected + offset > len(lines):
            break
    return None


def diff_to_edits(text: str, state, name: str = "diff") -> list[Edit]:
    """The write/delete edits a unified diff makes to `state`."""
    patches = parse_diff(text, name)
    if not patches:
        raise InvalidInput(f"{name}: no file patches found; expected a unified diff as `git diff` prints it")
    edits: list[Edit] = []
    for patch in patches:
        shown = patch.new_path or patch.old_path
        if patch.binary:
            raise EvolverFailed(f"{shown}: binary patches are not supported; state files are text")
        if patch.old_path is not None and patch.old_path not in state.files:
            raise EvolverFailed(f"{patch.old_path}: the diff changes a file that is not in the base state")
        if patch.old_path is None and patch.new_path in state.files:
            raise EvolverFailed(f"{patch.new_path}: the diff creates a file that already exists in the base state")
        try:
            base = state.text(patch.old_path) if patch.old_path is not None else ""
        except FileError as exc:
            raise EvolverFailed(str(exc)) from None
        result = apply_patch(base, patch, shown)
        if patch.new_path is None:
            if result:
                raise EvolverFailed(f"{patch.old_path}: the diff deletes the file but its content does not match the base")
            edits.append(Edit("delete", patch.old_path))
            continue
        if patch.old_path is not None and patch.old_path != patch.new_path:
            edits.append(Edit("delete", patch.old_path))
        edits.append(Edit("write", patch.new_path, content=result))
    return edits


# -- the evolver --------------------------------------------------------------------


def _load_document(path: str | Path, what: str):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not valid UTF-8") from None
    try:
        return load_yaml(text, str(path))  # YAML is a superset of JSON
    except FileError as exc:
        raise InvalidInput(str(exc)) from None


class PatchEvolver:
    name = "patch"

    def __init__(self, edits=None, diff=None, rationale=None, title=None, diagnosis=None, change=None,
                 expected_effect=None, evidence=None, layer=None):
        if (edits is None) == (diff is None):
            raise UsageError("the patch evolver needs exactly one of --edits FILE or --diff FILE")
        self.edits_file, self.diff_file, self.rationale_file = edits, diff, rationale
        if isinstance(evidence, str):
            evidence = [e.strip() for e in evidence.split(",") if e.strip()]
        self.flags = {"title": title, "diagnosis": diagnosis, "change": change,
                      "expected_effect": expected_effect, "evidence": evidence, "layer": layer}
        self.reason = None

    def propose(self, ctx: EvolveContext) -> Proposal:
        fields: dict = {}
        in_memory = isinstance(self.edits_file, (list, dict))  # from the Python API
        source = "edits" if in_memory else str(self.edits_file or self.diff_file)
        if self.edits_file is not None:
            doc = self.edits_file if in_memory else _load_document(self.edits_file, "edit")
            if isinstance(doc, dict) and "edits" in doc:
                fields.update({k: v for k, v in doc.items() if k != "edits"})
                edit_list = doc["edits"]
            else:
                edit_list = doc
            if not isinstance(edit_list, list):
                raise InvalidInput(f"{source}: expected a list of edits ({{op, path, content|records}}) "
                                   "or a proposal document with `edits`")
        else:
            try:
                text = Path(self.diff_file).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise UsageError(f"{self.diff_file}: no such diff file") from None
            edit_list = None
        if self.rationale_file is not None:
            doc = _load_document(self.rationale_file, "rationale")
            if not isinstance(doc, dict):
                raise InvalidInput(f"{self.rationale_file}: expected a mapping with {', '.join(RATIONALE_KEYS)}")
            fields.update({k.replace("-", "_"): v for k, v in doc.items()})
        fields.update({k: v for k, v in self.flags.items() if v not in (None, [], "")})
        missing = [k for k in RATIONALE_KEYS if not fields.get(k)]
        if missing:
            raise UsageError("the patch evolver needs a rationale: missing "
                             + ", ".join(_FLAG[k] for k in missing) + " (or give them in --rationale FILE)")
        if edit_list is None:
            edit_list = [e.to_dict() for e in diff_to_edits(text, ctx.state, source)]
        document = {k: fields[k] for k in (*RATIONALE_KEYS, "evidence", "layer") if fields.get(k) is not None}
        document["edits"] = edit_list
        if isinstance(document.get("evidence"), str):
            document["evidence"] = [e.strip() for e in document["evidence"].split(",") if e.strip()]
        issues = schemas.errors("proposal", document)
        if issues:
            listed = schemas.listing(issues)
            raise InvalidInput(f"{source}: not a valid proposal:\n{listed}")
        return Proposal.from_dict(document)


EVOLVER = PatchEvolver
