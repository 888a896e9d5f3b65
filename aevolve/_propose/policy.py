"""The policy every proposal passes before anything is written.

Two steps: `apply_edits` works out in memory (no git objects) what the edits
would write, and `check_changes` judges that against every rule. `evaluate`
does both and returns *every* violation with the would-be contents, so a
refusal names all that is wrong and a proposal that passes is committed from
exactly what was checked. A proposal with more than `protection.max_edits`
edits is refused before any edit is looked at, and the work per edit does not
grow with the number of edits, so checking stays linear and bounded.

Appends to a memory file go to the tail of its shard family, starting a new
shard past `memory.shard_bytes` (`_state/memory_shards`): `changes` names the
files really written and `redirects` says which appends went elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from aevolve import _config as config_mod
from aevolve._errors import InvalidInput
from aevolve._git.repo import LINK, TreeFile
from aevolve._propose.evolvers.base import Proposal
from aevolve._state import memory_shards, names
from aevolve._state.jsonl import dump_jsonl_record
from aevolve._state.model import CONFIG_FILE, FileError, State
from aevolve._trust.exam import is_git_control
from aevolve._trust.secrets import find_secrets


@dataclass
class PolicyResult:
    violations: list[str] = field(default_factory=list)
    changes: dict[str, bytes | None] = field(default_factory=dict)  # path -> new bytes (None: deleted)
    layers: list[str] = field(default_factory=list)  # layers the edits touch, sorted
    added_bytes: int = 0
    added: dict[str, str] = field(default_factory=dict)  # path -> the text the edits add
    # memory path an edit named -> the files its records really went to, when not (only) that one
    redirects: dict[str, list[str]] = field(default_factory=dict)
    appended_records: dict[str, int] = field(default_factory=dict)  # path really written -> records appended

    @property
    def ok(self) -> bool:
        return not self.violations


def check(state: State, proposal: Proposal, config: dict | None = None) -> list[str]:
    """Every policy violation of `proposal` against `state` (empty: allowed)."""
    return evaluate(state, proposal, config).violations


def path_problems(path) -> list[str]:
    """Why an untrusted path may not be used (empty: it is a clean relative path).
    The rule is `names.unsafe_reason`'s; the path is shown escaped, so no control
    character of it reaches a terminal."""
    reason = names.unsafe_reason(path)
    if reason is None:
        return []
    return [f"{names.shown(path) if isinstance(path, str) else repr(path)}: {reason}"]


def _layer(path: str) -> str | None:
    head, sep, _ = path.partition("/")
    return head if sep else None  # top-level files belong to no layer


def evaluate(state: State, proposal: Proposal, config: dict | None = None) -> PolicyResult:
    """Apply the edits in memory, then check every rule on what they would write."""
    config = config if config is not None else state.config()
    too_many = edit_count_problem(len(proposal.edits), config)
    if too_many:
        return PolicyResult(violations=[too_many])  # refused unread: the count alone bounds the work
    result = apply_edits(state, proposal, config)
    result.violations = result.violations + check_changes(state, result, proposal, config)
    if not result.violations and result.changes:
        result.violations += _validation_problems(state, result.changes)
    return result


def edit_count_problem(count: int, config: dict) -> str | None:
    """Why a proposal of `count` edits is refused unread (None: it is within
    `protection.max_edits`). Callers that parse or schema-check edits ask first."""
    limit = int(config.get("protection", {}).get("max_edits", config_mod.DEFAULTS["protection"]["max_edits"]))
    if count <= limit:
        return None
    return (f"the proposal has {count} edits, over the limit of {limit} (protection.max_edits); "
            "split it into smaller proposals or raise the limit in aevolve.yaml")


# -- applying: what the edits would write ------------------------------------------


class _Overlay:
    """The base state's contents with the edits so far on top (folders indexed once,
    so checking an edit costs the same whatever the state's or proposal's size)."""

    def __init__(self, state: State):
        self.state = state
        self.current: dict[str, bytes | bytearray | None] = {}
        self.gitlinks = names.gitlinks(state)
        self.base_folders = {f for p in (*state.files, *self.gitlinks) for f in _prefixes(p)[:-1]}
        self.new_folders: set[str] = set()
        self._families: dict[str, set[int]] | None = None  # memory family base -> file numbers ever seen

    def content(self, path: str) -> bytes | bytearray | None:
        if path in self.current:
            return self.current[path]
        return self.state.read(path) if path in self.state.files else None

    def append(self, path: str, text: bytes) -> None:
        """Add to the end of a file in place: appending N times costs N appends, not N copies."""
        old = self.content(path)
        data = old if isinstance(old, bytearray) else bytearray(old or b"")  # copied on the first append only
        if data and not data.endswith(b"\n"):
            data += b"\n"
        data += text
        self.set(path, data)

    def exists(self, path: str) -> bool:
        return self.current[path] is not None if path in self.current else path in self.state.files

    def is_folder(self, path: str) -> bool:
        return path in self.new_folders or (path not in self.state.files and path in self.base_folders)

    def set(self, path: str, data: bytes | bytearray | None) -> None:
        self.current[path] = data
        if data is not None:
            self.new_folders.update(_prefixes(path)[:-1])
            if self._families is not None and memory_shards.is_memory(path):
                base, number = memory_shards.split(path)
                self._families.setdefault(base, set()).add(number)

    def tail(self, path: str) -> tuple[str, int]:
        """(family base, number of its last existing file) for memory file `path`; a
        family with no file yet starts at `path` itself. Indexed once per proposal."""
        if self._families is None:
            self._families = {}
            for p in (*self.state.files, *self.current):
                if memory_shards.is_memory(p):
                    base, number = memory_shards.split(p)
                    self._families.setdefault(base, set()).add(number)
        base, number = memory_shards.split(path)
        present = [n for n in self._families.get(base, ()) if self.exists(memory_shards.shard_name(base, n))]
        return base, max(present, default=number)


def apply_edits(state: State, proposal: Proposal, config: dict | None = None) -> PolicyResult:
    """The would-be contents of every edited file, and why an edit cannot even be
    applied (a bad path, a symlink, a file where a folder is, a missing file)."""
    result = PolicyResult()
    overlay_ = _Overlay(state)
    added: dict[str, list[str]] = {}  # path -> the texts the edits add (what secrets are looked for in)
    limit: int | None = None  # memory.shard_bytes, read at the first memory append
    for index, edit in enumerate(proposal.edits):
        problems = _edit_problems(state, overlay_, index, edit)
        if problems:
            result.violations += problems
            continue
        if edit.op in ("append-jsonl", "append") and memory_shards.is_memory(edit.path):
            limit = shard_limit(state, config) if limit is None else limit
            if limit > 0:
                result.violations += _append_to_family(state, overlay_, index, edit, limit, result, added)
                continue
        old = overlay_.content(edit.path)
        new, added_text = _edited(old, edit)
        if isinstance(new, str):  # the edit's own shape is wrong
            result.violations.append(f"edit {index + 1} ({edit.op} {json.dumps(edit.path)}): {new}")
            continue
        if edit.op == "append-jsonl":
            overlay_.append(edit.path, added_text.encode("utf-8"))
            result.appended_records[edit.path] = result.appended_records.get(edit.path, 0) + len(edit.records or [])
        else:
            overlay_.set(edit.path, new)
        if new is not None:
            added.setdefault(edit.path, []).append(added_text)
            result.added_bytes += len(added_text.encode("utf-8", "surrogatepass"))
    result.changes = {p: None if d is None else bytes(d) for p, d in overlay_.current.items()
                      if d != (state.read(p) if p in state.files else None)}
    result.added = {p: "".join(texts) for p, texts in added.items()}
    result.violations += _case_problems(state, overlay_, result.changes)
    return result


def shard_limit(state: State, config: dict | None = None) -> int:
    """The size past which a memory family starts a new shard (0: never): `memory.shard_bytes`,
    or `protection.max_file_bytes` when smaller, since no proposal may write a bigger file.
    A bad `memory.shard_bytes` is InvalidInput (exit 3) naming its line in aevolve.yaml."""
    config = config if config is not None else state.config()
    try:
        limit = memory_shards.shard_limit(config)
    except InvalidInput:
        text = state.text(CONFIG_FILE) if CONFIG_FILE in state.files else None
        limit = memory_shards.shard_limit(config, text)
    return min(limit, max_file_bytes(config)) if limit > 0 else 0


def max_file_bytes(config: dict) -> int:
    """`protection.max_file_bytes`: the largest file a proposal may write."""
    return int(config.get("protection", {}).get("max_file_bytes", config_mod.DEFAULTS["protection"]["max_file_bytes"]))


def _append_to_family(state: State, overlay_: _Overlay, index: int, edit, limit: int,
                      result: PolicyResult, added: dict[str, list[str]]) -> list[str]:
    """Apply an append to memory file `edit.path` at the tail of its shard family, starting
    new shards where the tail would pass `limit`: existing records never move, so the
    files written stay shard-sized however long the family grows. Returns the problems."""
    shaped, piece = _edited(None, edit)  # the shape check, and the text of an `append`
    if isinstance(shaped, str):
        return [f"edit {index + 1} ({edit.op} {json.dumps(edit.path)}): {shaped}"]
    pieces = ([dump_jsonl_record(r) + "\n" for r in edit.records] if edit.op == "append-jsonl" else [piece])
    encoded = [p.encode("utf-8", "surrogatepass") for p in pieces]
    runs = _runs(overlay_, edit.path, [len(e) for e in encoded], limit)
    problems = [p for run in runs if run.path != edit.path
                for p in _edit_problems(state, overlay_, index, dataclasses.replace(edit, path=run.path))]
    if problems:
        return problems
    start = 0
    for run in runs:
        text = "".join(pieces[start:start + run.count])
        if edit.op == "append":  # text appended on a line of its own, as `_appended` does
            new, _ = _appended(overlay_.content(run.path), dataclasses.replace(edit, path=run.path))
            if isinstance(new, str):
                return [f"edit {index + 1} ({edit.op} {json.dumps(run.path)}): {new}"]
            overlay_.set(run.path, new)
        else:
            overlay_.append(run.path, b"".join(encoded[start:start + run.count]))
            result.appended_records[run.path] = result.appended_records.get(run.path, 0) + run.count
        start += run.count
        added.setdefault(run.path, []).append(text)
        result.added_bytes += len(text.encode("utf-8", "surrogatepass"))
    written = [run.path for run in runs]
    if written != [edit.path]:
        known = result.redirects.setdefault(edit.path, [])
        known += [p for p in written if p not in known]
    return []


def _runs(overlay_: _Overlay, path: str, sizes: list[int], limit: int) -> list[memory_shards.Run]:
    base, tail = overlay_.tail(path)
    data = overlay_.content(memory_shards.shard_name(base, tail)) or b""
    size = len(data) + (1 if data and not data.endswith(b"\n") else 0)  # the line break an append adds
    return memory_shards.place(base, tail, size, sizes, limit)


def memory_runs(state: State, path: str, sizes: list[int], config: dict | None = None) -> list[memory_shards.Run]:
    """Where records of `sizes` bytes (each with its line break) appended to memory file
    `path` of `state` go: what the policy does with such an append, so an evolver can
    name the files it really writes."""
    limit = shard_limit(state, config)
    if limit == 0:
        return [memory_shards.Run(path, len(sizes))] if sizes else []
    return _runs(_Overlay(state), path, sizes, limit)


def _edit_problems(state: State, overlay_: _Overlay, index: int, edit) -> list[str]:
    """Why `edit` cannot be applied at all (empty: it can)."""
    path = edit.path
    bad = path_problems(path)
    if bad:
        return bad
    prefixes = _prefixes(path)
    submodule = next((p for p in prefixes if p in overlay_.gitlinks), None)
    if submodule is not None:
        return [f"{path}: {submodule} is a submodule (a gitlink) in the base; proposals may not write over, "
                "into or delete a submodule"]
    linked = [p for p in prefixes if p in state.files and state.files[p].mode == LINK]
    if linked:
        return [f"{path}: {linked[0]} is a symbolic link; proposals may not create or write through symlinks"]
    parent_file = [p for p in prefixes[:-1] if overlay_.exists(p)]
    if parent_file:
        return [f"{path}: {parent_file[0]} is a file, not a folder"]
    if overlay_.is_folder(path):
        return [f"{path}: is a folder; edits name files"]
    if edit.op == "delete" and overlay_.content(path) is None:
        return [f"edit {index + 1} (delete {json.dumps(path)}): cannot delete {path}: no such file at the base"]
    return []


def _edited(old: bytes | bytearray | None, edit) -> tuple[bytes | str | None, str]:
    """(new contents or None for a deletion, the text added); a str first item
    says why the edit's own shape is wrong. An append's new contents are only a
    marker (b""): `_Overlay.append` adds its text in place."""
    if edit.op == "delete":
        return None, ""
    if edit.op == "write":
        if not isinstance(edit.content, str):
            return "a write needs text content", ""
        return edit.content.encode("utf-8", "surrogatepass"), _added_lines(old, edit.content)
    if edit.op == "append-jsonl":
        if not edit.path.endswith(".jsonl"):
            return "append-jsonl only applies to .jsonl files", ""
        if not edit.records or not all(isinstance(r, dict) for r in edit.records):
            return "append-jsonl needs a non-empty list of JSON objects", ""
        return b"", "".join(dump_jsonl_record(r) + "\n" for r in edit.records)
    if edit.op == "append":
        return _appended(old, edit)
    if edit.op == "replace":
        return _replaced(old, edit)
    return f"unknown operation {edit.op!r} (write, delete, append-jsonl, append or replace)", ""


def _as_text(old: bytes | bytearray | None) -> str | None:
    try:
        return bytes(old or b"").decode("utf-8")
    except UnicodeDecodeError:
        return None


def _appended(old: bytes | bytearray | None, edit) -> tuple[bytes | str | None, str]:
    """The file (a new one when missing) with `content` at its end, on a line of its own."""
    if not isinstance(edit.content, str) or not edit.content:
        return "an append needs non-empty text content", ""
    text = _as_text(old)
    if text is None:
        return "the file is not UTF-8 text; append adds text to text files only", ""
    joiner = "\n" if text and not text.endswith("\n") else ""
    return (text + joiner + edit.content).encode("utf-8", "surrogatepass"), edit.content


def _replaced(old: bytes | bytearray | None, edit) -> tuple[bytes | str | None, str]:
    """The file with the one occurrence of `old` replaced by `content`; refused unless
    `old` is found exactly once (an edit must not land somewhere the evolver did not see)."""
    if not isinstance(edit.old, str) or not edit.old:
        return "a replace needs the exact text to replace (old)", ""
    if not isinstance(edit.content, str):
        return "a replace needs the new text (content; empty to remove the span)", ""
    if old is None:
        return "no such file at the base to replace text in", ""
    text = _as_text(old)
    if text is None:
        return "the file is not UTF-8 text; replace changes text files only", ""
    found = text.count(edit.old)
    if found != 1:
        return (f"the text to replace (old) is found {found} times in the file; it must be found exactly once "
                "(quote more of the surrounding text, exactly as it is)"), ""
    return text.replace(edit.old, edit.content, 1).encode("utf-8", "surrogatepass"), edit.content


# -- checking: may these changes be written? ---------------------------------------


def check_changes(state: State, result: PolicyResult, proposal: Proposal, config: dict) -> list[str]:
    """Every rule the applied edits break: where they write, how much, and secrets."""
    prot = config.get("protection", {})
    max_file = max_file_bytes(config)
    max_total = int(prot.get("max_proposal_bytes", config_mod.DEFAULTS["protection"]["max_proposal_bytes"]))
    evolvable = state.evolvable_layers()
    out: list[str] = []
    layers = set()
    named = [e.path for e in proposal.edits if isinstance(e.path, str) and not path_problems(e.path)]
    for path in dict.fromkeys([*named, *(p for paths in result.redirects.values() for p in paths)]):
        where = _where_problem(path, config, evolvable)
        if where:
            out.append(where)
        else:
            layers.add(_layer(path))
    for path, data in result.changes.items():
        if data is not None and len(data) > max_file:
            out.append(f"{path}: {len(data)} bytes is over the per-file limit of {max_file} "
                       "(protection.max_file_bytes)")
    for path, text in result.added.items():
        out += [f"{path}: looks like a secret ({hit.kind} in the added content); secrets never enter commits"
                for hit in find_secrets(text)]
    if result.added_bytes > max_total:
        out.append(f"the proposal adds {result.added_bytes} bytes, over the limit of {max_total} "
                   "(protection.max_proposal_bytes)")
    result.layers = sorted(layer for layer in layers if layer)
    return out


def _where_problem(path: str, config: dict, evolvable: list[str]) -> str | None:
    """Why no evolver may write `path` (None: it may)."""
    layer = _layer(path)
    if config_mod.is_protected(path, config):
        return f"{path}: protected path; no evolver may change it"
    base, number = memory_shards.split(path)
    if number and config_mod.is_protected(base, config):  # a protected memory file protects its shards
        return f"{path}: a shard of {base}, a protected path; no evolver may change it"
    if is_git_control(path):
        return (f"{path}: .git* files (.gitattributes, .gitmodules, ...) change how git reads the state; "
                "no evolver may write them, at any depth")
    if layer is None:
        return f"{path}: top-level files are not in any evolvable layer"
    if layer not in evolvable:
        return f"{path}: layer {layer!r} is not evolvable (manifest evolvable_layers: {', '.join(evolvable)})"
    return None


def _case_problems(state: State, overlay_: _Overlay, changes: dict[str, bytes | None]) -> list[str]:
    """New files or folders that differ only in case from another one of the result:
    a case-insensitive checkout (macOS, Windows) would hold only one of them."""
    new = [p for p, d in changes.items() if d is not None and p not in state.files]
    if not new:
        return []  # changing or deleting files never makes a new pair
    gone = {p for p, d in changes.items() if d is None}
    before = [p for p in (*state.files, *overlay_.gitlinks) if p not in gone]
    # base paths first: a pair's second name is then the one the proposal brings
    return [f"{names.shown(second)}: differs from {names.shown(first)} only in case; a checkout on a "
            "case-insensitive file system (macOS, Windows) holds only one of them"
            for first, second in names.case_collisions([*before, *new])
            if second not in state.files and second not in overlay_.base_folders]


def _prefixes(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b', 'a/b/c']."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _added_lines(old: bytes | bytearray | None, new: str) -> str:
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
        found = _appended_problems(state, path, content) if kind == "memory" else None
        found = check_file(kind, path, content) if found is None else found
        out += [f"the result would not validate: {p}" for p in found if p.severity == "error"]
    # Layout rules, restricted to the skill folders the proposal touches (a 10,000-skill
    # state need not be re-scanned); errors the base already had do not count.
    folders = {_skill_folder(p) for p in changes if p.startswith("skills/") and p.count("/") >= 2}
    before = {str(p) for p in _check_layout(_subset(state, folders)) if p.severity == "error"}
    out += [f"the result would not validate: {p}" for p in _check_layout(_subset(after, folders))
            if p.severity == "error" and str(p) not in before]
    return out


def _appended_problems(state: State, path: str, content: bytes) -> list | None:
    """The problems of the records appended to memory file `path`, ids compared with the
    earlier ones by a byte scan (None: not a plain append, or undecidable: check it all).
    What the base already held was checked when it was committed, so one record added
    to a big file is not a parse of the whole file."""
    from aevolve._state.validate import check_appended

    if path not in state.files:
        return None
    old = state.read(path)
    if not old or not old.endswith(b"\n") or len(content) <= len(old) or not content.startswith(old):
        return None
    return check_appended(path, content, len(old), old.count(b"\n"), [])


def _subset(state: State, prefixes: set[str]) -> State:
    from aevolve._state.model import MANIFEST_FILE

    # one set lookup per file (not one test per folder): linear in the state and the proposal
    files = {p: f for p, f in state.files.items()
             if p == MANIFEST_FILE or (p.startswith("skills/") and _skill_folder(p) in prefixes)}
    return State(files, state._read, state.origin)


def _skill_folder(path: str) -> str:
    """'skills/x/a/b.md' -> 'skills/x/' (what `_validation_problems` keys skill folders by)."""
    return "/".join(path.split("/")[:2]) + "/"
