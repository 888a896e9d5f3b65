"""Check a state against the schemas: every problem with file, line and pointer.

Each file is checked on its own and the result is cached by (path, blob id,
schema version) in the repository's SQLite cache, so re-validating a large,
mostly unchanged state reads only what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from aevolve import _config as config_mod
from aevolve._errors import UsageError
from aevolve._git.repo import MAIN, Repo
from aevolve._state import names, schemas
from aevolve._state.jsonl import iter_jsonl
from aevolve._state.model import (
    _FRONT,
    CONFIG_FILE,
    MANIFEST_FILE,
    SKILL_FILE,
    TOOL_REGISTRY,
    FileError,
    SkillDoc,
    State,
    decode,
    load_yaml,
    parse_skill,
    yaml_line,
)

ERROR, WARNING = "error", "warning"
LINK = 0o120000
STATE_FOLDERS = ("prompts", "skills", "tools", "memory", "evals")
_SCHEMA_OF_KIND = {"config": "aevolve-config", "manifest": "manifest", "tools": "tool-registry"}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    severity: str = ERROR
    line: int | None = None
    pointer: str = ""

    def __str__(self) -> str:
        path = self.path if self.path.isprintable() else names.shown(self.path)  # no raw control character
        where = f"{path}:{self.line}" if self.line else path
        tail = f" ({self.pointer})" if self.pointer else ""
        label = "" if self.severity == ERROR else "warning: "
        return f"{where}: {label}{self.message}{tail}"


@dataclass
class Report:
    origin: str
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0
    from_cache: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "origin": self.origin,
            "valid": self.ok,
            "errors": [asdict(p) for p in self.errors],
            "warnings": [asdict(p) for p in self.warnings],
            "files_checked": self.files_checked,
            "from_cache": self.from_cache,
        }


# -- one file ---------------------------------------------------------------------


def kind_of(path: str, case_files: set[str]) -> str | None:
    """Which check applies to `path`, or None for files that are kept as they are."""
    if path == CONFIG_FILE:
        return "config"
    if path == MANIFEST_FILE:
        return "manifest"
    if path == TOOL_REGISTRY:
        return "tools"
    parts = path.split("/")
    if parts[0] == "skills" and len(parts) == 3 and parts[2] == SKILL_FILE:
        return "skill"
    if parts[0] == "memory" and path.endswith(".jsonl"):
        return "memory"
    if path in case_files:
        return "cases"
    if parts[0] == "prompts" and len(parts) > 1:
        return "text"
    return None


def check_file(kind: str, path: str, data: bytes) -> list[Problem]:
    """Every problem of one state file of the given kind."""
    try:
        text = decode(data, path)
        if kind == "text":
            return []
        if kind == "memory":
            return _check_jsonl(path, text)
        if kind == "skill":
            return _check_skill(path, text)
        value = load_yaml(text, path)
        if kind == "cases":
            return _check_cases(path, text, value)
        schema = _SCHEMA_OF_KIND[kind]
        if value is None:
            return [Problem(path, f"empty file: expected a {schema} document", line=1)]
        return _schema_problems(schema, value, path, text)
    except FileError as exc:
        return [Problem(exc.path, exc.detail, line=exc.line)]


def _schema_problems(schema: str, value, path: str, text: str, line_offset: int = 0, prefix: str = "") -> list[Problem]:
    out = []
    for issue in schemas.check_fast(schema, value):
        line = yaml_line(text, issue.pointer, line_offset) if text is not None else None
        out.append(Problem(path, issue.message, issue.severity, line, prefix + issue.pointer))
    return out


def _check_skill(path: str, text: str) -> list[Problem]:
    doc, line_of = _read_skill(text, path)
    problems = [Problem(path, issue.message, issue.severity, line_of(issue.pointer), issue.pointer)
                for issue in schemas.check_fast("skill-frontmatter", doc.meta)]
    folder = path.split("/")[1]
    name = doc.meta.get("name")
    if isinstance(name, str) and name != folder:
        problems.append(Problem(path, f"name {name!r} must equal its folder name {folder!r}", ERROR,
                                line_of("/name"), "/name"))
    if not doc.body.strip():
        problems.append(Problem(path, "the skill has no instructions below its front matter", WARNING))
    return problems


def _read_skill(text: str, path: str) -> tuple[SkillDoc, Callable[[str], int | None]]:
    """The skill and the line of a JSON pointer into its front matter. Plain `key: word
    ...` front matter is read without PyYAML (importing it costs a one-skill validate
    10-40 ms); anything else goes to `parse_skill`, which says where it breaks."""
    match = _FRONT.match(text)
    quick = quick_front_matter(match.group(1)) if match else None
    if match is None or quick is None:
        doc = parse_skill(text, path)
        return doc, lambda pointer: yaml_line(doc.meta_text, pointer, 1)
    meta, lines = quick
    first = min(lines.values()) + 1

    def line_of(pointer: str) -> int:  # as yaml_line: the key's line, else the mapping's first
        key = pointer.split("/")[1].replace("~1", "/").replace("~0", "~") if pointer else None
        return lines[key] + 1 if key in lines else first

    return SkillDoc(meta, text[match.end():], match.group(1)), line_of


# what PyYAML 1.1 reads as a boolean or null rather than a string, in any case
_NOT_STRINGS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})
_QUICK_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*): +(.*?) *")
_QUICK_WORDS = re.compile(r"[A-Za-z][^:#]*")  # a plain scalar that only a string can be
_QUICK_LIST = re.compile(r"\[ *((?:[A-Za-z][A-Za-z0-9_.-]* *, *)*[A-Za-z][A-Za-z0-9_.-]*)? *\]")


def quick_front_matter(text: str) -> tuple[dict, dict[str, int]] | None:
    """(mapping, key -> 1-based line) of YAML `text` when every line is `key: value`, a
    value being a plain string that starts with a letter and holds no `:` or `#`, or a
    flow list of such words: exactly what PyYAML reads there. None for anything else."""
    if not text.isascii():
        return None
    meta: dict = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() and line.isprintable():
            continue
        match = _QUICK_LINE.fullmatch(line) if line.isprintable() else None
        value = _quick_value(match.group(2)) if match else None
        if match is None or value is None or match.group(1) in meta or match.group(1).lower() in _NOT_STRINGS:
            return None
        meta[match.group(1)], lines[match.group(1)] = value, number
    return (meta, lines) if meta else None


def _quick_value(raw: str) -> str | list[str] | None:
    """A plain string or a flow list of words, as PyYAML reads it; None: ask PyYAML."""
    if _QUICK_WORDS.fullmatch(raw):
        return None if raw.lower() in _NOT_STRINGS else raw
    match = _QUICK_LIST.fullmatch(raw)
    if match is None:
        return None
    items = [item.strip() for item in match.group(1).split(",")] if match.group(1) else []
    return None if any(item.lower() in _NOT_STRINGS for item in items) else items


def _check_jsonl(path: str, text: str, line_offset: int = 0, seen: dict[str, int] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    seen = {} if seen is None else seen
    for number, value in iter_jsonl(text):
        number += line_offset
        if isinstance(value, json.JSONDecodeError):
            problems.append(Problem(path, f"broken JSON: {value.msg} (column {value.colno})", line=number))
            continue
        issues = schemas.check_fast("memory-entry", value)  # no jsonschema for plain lines
        if issues:
            for issue in issues:
                problems.append(Problem(path, issue.message, issue.severity, number, issue.pointer))
            continue
        rid = value.get("id") if isinstance(value, dict) else None  # the schema made it an object
        if isinstance(rid, str):
            if rid in seen:
                problems.append(Problem(path, f"duplicate id {rid!r} (first on line {seen[rid]})",
                                        line=number, pointer="/id"))
            else:
                seen[rid] = number
    return problems


# `"id": "..."` anywhere in a line: a superset of the records' ids (nested ones too)
_ID_BYTES = re.compile(rb'"id"\s*:\s*"((?:[^"\\\n]|\\.)*)"')


def check_appended(path: str, data: bytes, size: int, lines: int, old: list[Problem]) -> list[Problem] | None:
    """The problems of a memory file whose first `size` bytes (`lines` lines, with
    problems `old`) were validated before: only the appended records are parsed.
    None when that cannot be decided cheaply (then the whole file is checked)."""
    tail = data[size:]
    if tail.startswith(b"\xef\xbb\xbf") or data.find(b"\\u", 0, size) >= 0 or data.find(b"\\/", 0, size) >= 0:
        return None  # a BOM mid-file, or ids that may be spelled with other escapes: check it all
    try:
        text = decode(tail, path)
    except FileError:
        return None  # the full check names the line
    seen: dict[str, int] = {}
    new = _check_jsonl(path, text, lines, seen)
    if seen and _may_repeat(data, size, list(seen)):
        return None  # a possible duplicate of an earlier record: the full check says which line
    return old + new


def _may_repeat(data: bytes, size: int, ids: list[str]) -> bool:
    """Could one of `ids` be the id of a record in data[:size]? Without \\u or \\/ escapes
    an id is spelled in JSON one way, so a few ids are looked up as bytes (~0.1 s in
    168 MB), many by one scan of every `"id": "..."` (a superset of the records' ids)."""
    spelled = [json.dumps(i, ensure_ascii=False).encode() for i in ids]
    if len(spelled) <= 16:
        return any(data.find(s, 0, size) >= 0 for s in spelled)
    earlier = {m.group(1) for m in _ID_BYTES.finditer(data, 0, size)}
    return not earlier.isdisjoint(s[1:-1] for s in spelled)


def _check_cases(path: str, text: str, value) -> list[Problem]:
    if value is None:
        return [Problem(path, "empty case file: expected a list of cases", WARNING, 1)]
    if isinstance(value, dict) and isinstance(value.get("cases"), list):
        value, base = value["cases"], "/cases"
    elif isinstance(value, list):
        base = ""
    else:
        return [Problem(path, "a case file is a list of cases", line=1)]
    problems, seen = [], {}
    for i, case in enumerate(value):
        for issue in schemas.check("eval-case", case):
            pointer = f"{base}/{i}{issue.pointer}"
            problems.append(Problem(path, issue.message, issue.severity, yaml_line(text, pointer), pointer))
        cid = case.get("id") if isinstance(case, dict) else None
        if isinstance(cid, str):
            if cid in seen:
                problems.append(Problem(path, f"duplicate case id {cid!r}", line=yaml_line(text, f"{base}/{i}"),
                                        pointer=f"{base}/{i}/id"))
            seen[cid] = i
    return problems


# -- the whole state --------------------------------------------------------------


def _cache_version() -> str:
    """Changes whenever a schema or this checker changes, so stale results are ignored."""
    digest = hashlib.sha256(b"validate-v2")
    for name in schemas.NAMES:
        digest.update((schemas.schema_dir() / f"{name}.json").read_bytes())
    return digest.hexdigest()[:16]


_ROW_FIELDS = ("message", "severity", "line", "pointer", "path")  # a cached row, as `_Cache.put` writes it


def _problem(fields: dict, path: str) -> Problem:
    """Problem(**fields) with `path` unless the row names its own: filling the instance's
    dict is 3x faster than the frozen dataclass's __init__, for 10,000 cached warnings."""
    problem = object.__new__(Problem)
    problem.__dict__["path"] = path
    problem.__dict__.update(fields)
    return problem


class _Cache:
    """Per-path results keyed by blob id: one row per path, loaded in one query."""

    def __init__(self, repo):
        from aevolve._state.cache import open_cache

        self.conn = open_cache(repo)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS validation (path TEXT PRIMARY KEY, key TEXT NOT NULL, problems TEXT NOT NULL)"
        )
        self.rows = {p: (k, v) for p, k, v in self.conn.execute("SELECT path, key, problems FROM validation")}
        # how much of each memory file was validated: an append then checks only the new records
        self.conn.execute("CREATE TABLE IF NOT EXISTS validated_prefix (path TEXT PRIMARY KEY, key TEXT NOT NULL, "
                          "size INTEGER NOT NULL, lines INTEGER NOT NULL)")
        self.prefixes = {p: (k, n, c) for p, k, n, c in self.conn.execute("SELECT * FROM validated_prefix")}
        self.version = _cache_version()
        self.pending: list[tuple[str, str, str]] = []
        self.pending_prefixes: list[tuple[str, str, int, int]] = []
        self.parsed: dict[str, list] = {}
        # what the whole state implies (its case files, its layout and name problems), one
        # row per fact: a one-file change then neither parses YAML nor walks every path
        self.conn.execute("CREATE TABLE IF NOT EXISTS validation_facts (name TEXT PRIMARY KEY, key TEXT NOT NULL, "
                          "value TEXT NOT NULL)")
        self.facts = {n: (k, v) for n, k, v in self.conn.execute("SELECT name, key, value FROM validation_facts")}
        self.pending_facts: list[tuple[str, str, str]] = []

    def key(self, kind: str, oid: str) -> str:
        return f"{self.version}:{kind}:{oid}"

    def get(self, path: str, key: str) -> list[Problem] | None:
        row = self.rows.get(path)
        if row is None or row[0] != key:
            return None
        text = row[1]
        if text == "[]":
            return []  # the common case, without a JSON parse
        # rows hold no path, so the same warning in 10,000 skills is parsed once
        parsed = self.parsed.get(text)
        if parsed is None:
            parsed = self.parsed[text] = [dict(zip(_ROW_FIELDS, row, strict=False)) for row in json.loads(text)]
        return [_problem(fields, path) for fields in parsed]

    def put(self, path: str, key: str, problems: list[Problem]) -> None:
        rows = [[p.message, p.severity, p.line, p.pointer] + ([p.path] if p.path != path else []) for p in problems]
        self.pending.append((path, key, json.dumps(rows)))

    def check_memory(self, path: str, key: str, data: bytes) -> list[Problem]:
        """A memory file's problems; when it extends the version validated last time,
        only the appended records are checked (1 record added to 1M: ~1 ms of
        hashing instead of seconds of parsing)."""
        found = self._appended(path, data)
        if found is None:
            found = check_file("memory", path, data)
        if b"\0" not in data[:8192]:
            self.pending_prefixes.append((path, key, len(data), data.count(b"\n")))
        return found

    def _appended(self, path: str, data: bytes) -> list[Problem] | None:
        row, prefix = self.rows.get(path), self.prefixes.get(path)
        if row is None or prefix is None or prefix[0] != row[0]:
            return None
        key, size, lines = prefix
        version, kind, oid = (key.split(":") + ["", ""])[:3]
        if version != self.version or kind != "memory" or not 0 < size < len(data) or data[size - 1] != 10:
            return None
        head = memoryview(data)[:size]
        digest = hashlib.sha1(b"blob %d\0" % size)
        digest.update(head)
        if digest.hexdigest() != oid:  # not an append to what was validated
            return None
        old = self.get(path, key)
        return None if old is None else check_appended(path, data, size, lines, old)

    def fact(self, name: str, key: str):
        """The value stored for fact `name` under `key` (decoded JSON), or None."""
        row = self.facts.get(name)
        return json.loads(row[1]) if row is not None and row[0] == f"{self.version}:{key}" else None

    def put_fact(self, name: str, key: str, value) -> None:
        self.pending_facts.append((name, f"{self.version}:{key}", json.dumps(value)))

    def flush(self) -> None:
        if self.pending_facts:
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO validation_facts VALUES (?, ?, ?)", self.pending_facts)
        if self.pending:
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO validation VALUES (?, ?, ?)", self.pending)
        if self.pending_prefixes:
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO validated_prefix VALUES (?, ?, ?, ?)",
                                      self.pending_prefixes)
        self.conn.close()


def validate(repo: Repo, rev: str | None = None, *, staged: bool = False, use_cache: bool = True) -> Report:
    """Validate a state of `repo`: commit `rev` (no checkout needed), the index
    (`staged`), or by default the working tree (main's tree in a bare repository)."""
    if staged and rev is not None:
        raise UsageError("validate either the index (staged) or a revision, not both")
    if staged:
        state = State.from_index(repo)
    elif rev is not None:
        state = State.from_tree(repo, rev)
    elif repo.workdir is not None:
        return _validate_worktree(repo, use_cache)
    else:
        state = State.from_tree(repo, MAIN)
    return validate_state(state, repo, use_cache=use_cache)


def _validate_worktree(repo: Repo, use_cache: bool) -> Report:
    """The work tree. While `git status` looks for what differs from the index, the
    index's files are looked up in the cache (a separate process does the stat
    work); afterwards only what status reported is checked."""
    reading = State.start_worktree(repo)
    if not use_cache:
        return validate_state(reading.finish(), repo, use_cache=False)
    cache = _Cache(repo)
    try:
        early = _Checks(cache)
        early.look_up(reading.index, _case_files(reading.index, cache, _shape_digest(sorted(reading.index.files),
                                                                                      reading.index)))
        return _validated(reading.finish(), cache, early)
    finally:
        cache.flush()


def validate_state(state: State, repo: Repo | None = None, use_cache: bool = True) -> Report:
    """Validate every file of `state`; `repo` enables the blob-id cache."""
    cache = _Cache(repo) if (repo is not None and use_cache) else None
    try:
        return _validated(state, cache, _Checks(cache))
    finally:
        if cache:
            cache.flush()


class _Checks:
    """Each file's problems, by (path, kind, blob): reused across two readings of a state."""

    def __init__(self, cache: _Cache | None):
        self.cache = cache
        self.found: dict[tuple[str, str, str, int], tuple[list[Problem], bool]] = {}  # -> (problems, from cache)
        self.case_files: set[str] | None = None
        self.kinds: dict[str, str | None] = {}  # path -> kind_of(path, self.case_files)

    def kind(self, path: str, case_files: set[str]) -> str | None:
        if case_files == self.case_files and path in self.kinds:
            return self.kinds[path]
        return kind_of(path, case_files)

    def look_up(self, state: State, case_files: set[str]) -> None:
        """Only cache hits: the files themselves may be changing under `state` (the index)."""
        assert self.cache is not None
        self.case_files = case_files
        for path, entry in state.files.items():
            kind = self.kinds[path] = kind_of(path, case_files)
            if kind is not None and entry.mode != LINK:
                found = self.cache.get(path, self.cache.key(kind, entry.oid))
                if found is not None:
                    self.found[(path, kind, entry.oid, entry.mode)] = (found, True)

    def of(self, state: State, path: str, kind: str) -> tuple[list[Problem], bool]:
        entry = state.files[path]
        known = self.found.get((path, kind, entry.oid, entry.mode))
        if known is not None:
            return known
        cache = self.cache
        key = cache.key(kind, entry.oid) if cache else ""
        found = cache.get(path, key) if cache else None
        if found is not None:
            return found, True
        if cache and kind == "memory":
            found = cache.check_memory(path, key, state.read(path))
        else:
            found = check_file(kind, path, state.read(path))
        if cache:
            cache.put(path, key, found)
        return found, False


def _validated(state: State, cache: _Cache | None, checks: _Checks) -> Report:
    report = Report(origin=state.origin)
    paths = sorted(state.files)
    shape = _shape_digest(paths, state) if cache else ""
    case_files = _case_files(state, cache, shape)
    for path in paths:
        kind = checks.kind(path, case_files)
        if state.files[path].mode == LINK and (kind is not None or path.split("/", 1)[0] in STATE_FOLDERS):
            # git stores only the link's target path; the state would live outside the repo
            report.files_checked += 1
            report.problems.append(Problem(path, "symbolic link where a state file belongs (store the file itself)"))
            continue
        if kind is None:
            continue
        report.files_checked += 1
        found, cached = checks.of(state, path, kind)
        report.from_cache += cached
        report.problems.extend(found)
    report.problems.extend(_whole_state_problems(state, cache, shape))
    return report


def _shape_digest(paths: list[str], state: State) -> str:
    """What the layout and name checks and the case-file glob read: every path, and
    which are submodules (one hash over joined strings: ~1 ms for 10,000 paths)."""
    digest = hashlib.sha1("\0".join(paths).encode("utf-8", "surrogateescape"))
    digest.update(b"\1" + "\0".join(sorted(names.gitlinks(state))).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _blob_key(state: State, path: str) -> str:
    entry = state.files.get(path)
    return f"{entry.oid}/{entry.mode:o}" if entry is not None else "-"


def _case_files(state: State, cache: _Cache | None, shape: str) -> set[str]:
    """The state's case files; cached by aevolve.yaml's blob and the paths, so a
    one-file change needs neither YAML nor the glob matcher."""
    key = f"{_blob_key(state, CONFIG_FILE)}:{json.dumps(config_mod.DEFAULTS['gate']['cases'])}:{shape}"
    found = cache.fact("cases", key) if cache else None
    if found is None:
        try:
            found = state.case_files()
        except FileError:
            found = []  # aevolve.yaml is broken; its own check reports it
        if cache:
            cache.put_fact("cases", key, found)
    return set(found)


def _whole_state_problems(state: State, cache: _Cache | None, shape: str) -> list[Problem]:
    """`_check_layout` and `_check_names`, which read only the paths and manifest.yaml:
    cached by both, so they are not recomputed when only file contents changed."""
    key = f"{_blob_key(state, MANIFEST_FILE)}:{shape}"
    rows = cache.fact("layout", key) if cache else None
    if rows is not None:
        return [Problem(*row) for row in rows]
    problems = _check_layout(state) + _check_names(state)
    if cache:
        cache.put_fact("layout", key, [[p.path, p.message, p.severity, p.line, p.pointer] for p in problems])
    return problems


def _check_names(state: State) -> list[Problem]:
    """Paths no checkout may safely hold (`names.unsafe_reason`), names that differ only
    in case, and submodules inside an evolvable layer (a proposal would replace them)."""
    links = names.gitlinks(state)
    paths = sorted({*state.files, *links})
    problems = [Problem(path, f"unsafe path {names.shown(path)}: {reason}")
                for path, reason in names.unsafe_paths(paths)]
    for first, second in names.case_collisions(paths):
        problems.append(Problem(second, f"{names.shown(second)} differs from {names.shown(first)} only in case; "
                                "a checkout on a case-insensitive file system (macOS, Windows) holds only one "
                                "of them: rename one"))
    try:
        layers = set(state.evolvable_layers())
    except FileError:
        layers = set()  # the broken manifest is reported by its own check
    for link in sorted(links):
        head, sep, _ = link.partition("/")
        if sep and head in layers:
            problems.append(Problem(link, f"a submodule (gitlink) inside the evolvable layer {head!r}: its "
                                    "files are not part of the state, and an evolver's change there would "
                                    "replace it; move it out of the layer or commit its files"))
    return problems


def _check_layout(state: State) -> list[Problem]:
    """Rules about the state as a whole rather than one file."""
    problems = []
    if MANIFEST_FILE not in state:
        problems.append(Problem(MANIFEST_FILE, "no manifest.yaml: defaults apply (every layer evolvable)", WARNING))
    else:
        try:
            layers = state.manifest().get("evolvable_layers") or []
            for layer in layers if isinstance(layers, list) else []:
                if layer in ("evals",):
                    problems.append(Problem(MANIFEST_FILE,
                                            f"layer {layer!r} can never be evolvable: it is the regression suite",
                                            ERROR, None, "/evolvable_layers"))
        except FileError:
            pass  # reported by the file check
    for name, skill_path in state.skills().items():
        if not skill_path:
            problems.append(Problem(f"skills/{name}/", f"skill folder {name!r} has no SKILL.md"))
    return problems
