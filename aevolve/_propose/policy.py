"""The policy every proposal passes before anything is written.

`evaluate` applies the edits in memory (no git objects), checks each rule and
returns *every* violation together with the would-be file contents, so a
refusal names all that is wrong and a proposal that passes is committed from
exactly what was checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aevolve import _config as config_mod
from aevolve._propose.evolvers.base import Proposal
from aevolve._trust.exam import is_git_control
from aevolve._git.repo import LINK, TreeFile
from aevolve._trust.secrets import find_secrets
from aevolve._state.model import FileError, State, dump_jsonl_record

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class PolicyResult:
    violations: list[str] = field(default_factory=list)
    changes: dict[str, bytes | None] = field(default_factory=dict)  # path -> new bytes (None: deleted)
    layers: list[str] = field(default_factory=list)  # layers the edits touch, sorted
    added_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


def check(state: State, proposal: Proposal, config: dict | None = None) -> list[str]:
    """Every policy violation of `proposal` against `state` (empty: allowed)."""
    return evaluate(state, proposal, config).violations


def path_problems(path) -> list[str]:
    """Why an untrusted path may not be used (empty: it is a clean relative path)."""
    if not isinstance(path, str) or not path:
        return [f"{path!r}: a path must be a non-empty string"]
    shown = json.dumps(path)
    out = []
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        out.append(f"{shown}: absolute paths are not allowed")
    if "\\" in path:
        out.append(f"{shown}: backslashes are not allowed in paths")
    if _CONTROL.search(path):
        out.append(f"{shown}: NUL and control characters are not allowed in paths")
    parts = path.split("/")
    if ".." in parts:
        out.append(f"{shown}: '..' may not appear in a path")
    if any(p.lower() == ".git" for p in parts):
        out.append(f"{shown}: '.git' may not appear in a path")
    if not path.startswith("/") and any(p in ("", ".") for p in parts):
        out.append(f"{shown}: empty or '.' path components are not allowed")
    return out


def _layer(path: str) -> str | None:
    head, sep, _ = path.partition("/")
    return head if sep else None  # top-level files belong to no layer


def evaluate(state: State, proposal: Proposal, config: dict | None = None) -> PolicyResult:
    config = config if config is not None else state.config()
    prot = config.get("protection", {})
    max_file = int(prot.get("max_file_bytes", config_mod.DEFAULTS["protection"]["max_file_bytes"]))
    max_total = int(prot.get("max_proposal_bytes", config_mod.DEFAULTS["protection"]["max_proposal_bytes"]))
    evolvable = state.evolvable_layers()
    result = PolicyResult()
    v = result.violations
    current: dict[str, bytes | None] = {}  # contents after the edits so far

    def content_of(path: str) -> bytes | None:
        if path in current:
            return current[path]
        return state.read(path) if path in state.files else None

    def is_base_folder(path: str) -> bool:
        return path not in state.files and any(p.startswith(path + "/") for p in state.files)

    layers = set()
    for index, edit in enumerate(proposal.edits):
        path = edit.path
        where = f"edit {index + 1} ({edit.op} {json.dumps(path) if isinstance(path, str) else path!r})"
        bad = path_problems(path)
        if bad:
            v.extend(bad)
            continue
        layer = _layer(path)
        if config_mod.is_protected(path, config):
            v.append(f"{path}: protected path; no evolver may change it")
        elif is_git_control(path):
            v.append(f"{path}: .git* files (.gitattributes, .gitmodules, ...) change how git reads the state; "
                     "no evolver may write them, at any depth")
        elif layer is None:
            v.append(f"{path}: top-level files are not in any evolvable layer")
        elif layer not in evolvable:
            v.append(f"{path}: layer {layer!r} is not evolvable (manifest evolvable_layers: {', '.join(evolvable)})")
        else:
            layers.add(layer)
        linked = [p for p in _prefixes(path) if p in state.files and state.files[p].mode == LINK]
        if linked:
            v.append(f"{path}: {linked[0]} is a symbolic link; proposals may not create or write through symlinks")
            continue
        parent_file = [p for p in _prefixes(path)[:-1]
                       if (current[p] is not None if p in current else p in state.files)]
        if parent_file:
            v.append(f"{path}: {parent_file[0]} is a file, not a folder")
            continue
        new_folders = {f for p, d in current.items() if d is not None for f in _prefixes(p)[:-1]}
        if path in new_folders or is_base_folder(path):
            v.append(f"{path}: is a folder; edits name files")
            continue
        old = content_of(path)
        if edit.op == "delete":
            if old is None:
                v.append(f"{where}: cannot delete {path}: no such file at the base")
                continue
            current[path] = None
            continue
        if edit.op == "write":
            if not isinstance(edit.content, str):
                v.append(f"{where}: a write needs text content")
                continue
            new = edit.content.encode("utf-8", "surrogatepass")
            added_text = _added_lines(old, edit.content)
        elif edit.op == "append-jsonl":
            if not path.endswith(".jsonl"):
                v.append(f"{where}: append-jsonl only applies to .jsonl files")
                continue
            if not edit.records or not all(isinstance(r, dict) for r in edit.records):
                v.append(f"{where}: append-jsonl needs a non-empty list of JSON objects")
                continue
            added_text = "".join(dump_jsonl_record(r) + "\n" for r in edit.records)
            prefix = old or b""
            if prefix and not prefix.endswith(b"\n"):
                prefix += b"\n"
            new = prefix + added_text.encode("utf-8")
        else:
            v.append(f"{where}: unknown operation {edit.op!r} (write, delete or append-jsonl)")
            continue
        result.added_bytes += len(added_text.encode("utf-8", "surrogatepass"))
        if len(new) > max_file:
            v.append(f"{path}: {len(new)} bytes is over the per-file limit of {max_file} (protection.max_file_bytes)")
        for hit in find_secrets(added_text):
            v.append(f"{path}: looks like a secret ({hit.kind} in the added content); secrets never enter commits")
        current[path] = new
    if result.added_bytes > max_total:
        v.append(f"the proposal adds {result.added_bytes} bytes, over the limit of {max_total} (protection.max_proposal_bytes)")
    result.layers = sorted(layers)
    result.changes = {p: d for p, d in current.items() if d != (state.read(p) if p in state.files else None)}
    if not v and result.changes:
        v.extend(_validation_problems(state, result.changes))
    return result


def _prefixes(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b', 'a/b/c']."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _added_lines(old: bytes | None, new: str) -> str:
    """The lines of `new` that `old` did not have: what a write really adds."""
    if old is None:
        return new
    before = set(old.decode("utf-8", "replace").splitlines())
    return "\n".join(line for line in new.splitlines() if line not in before)


def overlay(state: State, changes: dict[str, bytes | None]) -> State:
    """`state` with `changes` applied, in memory (blob ids hashed, never written)."""
    import pygit2

    from aevolve._git.repo import BLOB

    files = dict(state.files)
    data: dict[str, bytes] = {}
    for path, content in changes.items():
        if content is None:
            files.pop(path, None)
        else:
            mode = state.files[path].mode if path in state.files else BLOB
            files[path] = TreeFile(path, str(pygit2.hash(content)), mode)
            data[path] = content
    return State(files, lambda f: data[f.path] if f.path in data else state._read(f), f"{state.origin} + proposal")


def _validation_problems(state: State, changes: dict[str, bytes | None]) -> list[str]:
    """Errors the would-be state has in the touched files or in its layout (not old ones)."""
    from aevolve._state.validate import _check_layout, check_file, kind_of

    after = overlay(state, changes)
    try:
        case_files = set(after.case_files())
    except FileError:
        case_files = set()
    out = []
    for path, content in sorted(changes.items()):
        kind = kind_of(path, case_files)
        if content is None or kind is None:
            continue
        out += [f"the result would not validate: {p}" for p in check_file(kind, path, content) if p.severity == "error"]
    # Layout rules, restricted to the skill folders the proposal touches (a 10,000-skill
    # state need not be re-scanned); errors the base already had do not count.
    folders = {"/".join(p.split("/")[:2]) + "/" for p in changes if p.startswith("skills/") and p.count("/") >= 2}
    before = {str(p) for p in _check_layout(_subset(state, folders)) if p.severity == "error"}
    out += [f"the result would not validate: {p}" for p in _check_layout(_subset(after, folders))
            if p.severity == "error" and str(p) not in before]
    return out


def _subset(state: State, prefixes: set[str]) -> State:
    from aevolve._state.model import MANIFEST_FILE

    files = {p: f for p, f in state.files.items() if p == MANIFEST_FILE or any(p.startswith(x) for x in prefixes)}
    return State(files, state._read, state.origin)
