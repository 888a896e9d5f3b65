"""The state model: an agent's files read from a commit, the index or a folder.

A `State` is a mapping of paths to blob ids plus a way to read them, so every
consumer (validation, policy, diff, the gate) works the same on a commit that
was never checked out, on what is staged, and on a plain folder. The parsers
here turn the A-Evolve file formats into data and say where they break.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aevolve import _config as config_mod
from aevolve._errors import FileError
from aevolve._git.repo import BLOB, BLOB_EXECUTABLE, LINK, Repo, TreeFile
from aevolve._json import MAX_DEPTH
from aevolve._state.jsonl import read_jsonl

if TYPE_CHECKING:
    import subprocess

CONFIG_FILE = "aevolve.yaml"
MANIFEST_FILE = "manifest.yaml"
TOOL_REGISTRY = "tools/registry.yaml"
SKILL_FILE = "SKILL.md"


# -- parsing ----------------------------------------------------------------------


@functools.cache
def _loader() -> type:
    """Safe YAML that keeps timestamps as strings (JSON Schema sees what was written),
    on libyaml's C loader when built with it. Built on first use: importing PyYAML
    costs a command 10-40 ms, and a validate answered from its cache parses no YAML."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
                 for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return type("_Loader", (base,), {"yaml_implicit_resolvers": resolvers})


def decode(data: bytes, path: str) -> str:
    """UTF-8 text of a state file, or a FileError naming the first bad line."""
    if b"\0" in data[:8192]:
        raise FileError(path, "binary file where text is expected")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a BOM is not content
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileError(path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})", line) from None


MAX_ALIAS_NODES = 100_000  # nodes YAML aliases may add to a document when it is expanded


def load_yaml(text: str, path: str, line_offset: int = 0):
    """The one YAML reader: safe, and refusing a document that would expand past
    MAX_ALIAS_NODES through aliases (a "billion laughs"), refers to itself, or
    nests deeper than MAX_DEPTH, before anything walks it."""
    import yaml

    check_yaml_shape(text, path, line_offset)
    try:
        return yaml.load(text, Loader=_loader())
    except yaml.MarkedYAMLError as exc:
        raise FileError(path, *_yaml_problem(exc, text, line_offset)) from None
    except yaml.YAMLError as exc:
        raise FileError(path, f"malformed YAML: {exc}") from None
    except RecursionError:  # only with the pure-Python parser; the shape check makes it unlikely
        raise FileError(path, f"YAML nested deeper than {MAX_DEPTH} levels") from None


def check_yaml_shape(text: str, path: str, line_offset: int = 0) -> None:
    """Raise FileError (with the line) when YAML `text` nests deeper than MAX_DEPTH or its
    aliases would expand past MAX_ALIAS_NODES or into themselves; syntax is not checked."""
    shape = _shape_problem(text)
    if shape is not None:
        raise FileError(path, shape[0], shape[1] + line_offset)


def _may_be_hostile(text: str) -> bool:
    """Cheap: can `text` hold aliases, or nest deeper than MAX_DEPTH? Each collection
    starts with or holds one of `[{-:?`, so their count bounds the depth; an alias
    needs an anchor."""
    if "*" in text and "&" in text:
        return True
    return sum(map(text.count, "[{-:?")) > MAX_DEPTH


@functools.lru_cache(maxsize=16)
def _shape_problem(text: str) -> tuple[str, int] | None:
    """(message, line) when the document nests too deeply or its aliases expand too far.

    Walks the parser's events, which neither build nor expand anything: libyaml's
    composer recurses in C (100,000 levels crash the interpreter) and a constructed
    billion-laughs document is small only until something walks it. Syntax errors
    are left to the loader, which reports them with their line.
    """
    if not _may_be_hostile(text):
        return None
    import yaml

    loader = _loader()(text)
    try:
        return _walk_events(loader)
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def _walk_events(loader) -> tuple[str, int] | None:
    import yaml

    sizes: dict[str, int] = {}  # anchor -> nodes of its node, aliases expanded
    stack: list[list] = []  # [anchor, nodes so far] of each collection not yet closed
    unclosed: set[str] = set()  # anchors of those collections: an alias to one is a cycle
    added = 0  # nodes the aliases add
    while loader.check_event():
        event: Any = loader.get_event()
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                return f"YAML nested deeper than {MAX_DEPTH} levels", _line(event)
            stack.append([anchor, 1])
            if anchor is not None:
                unclosed.add(anchor)
            continue
        if isinstance(event, yaml.AliasEvent):
            if anchor in unclosed:
                return f"YAML alias *{anchor} refers to a node that contains it", _line(event)
            size = sizes.get(anchor or "", 1)  # an undefined alias: the loader says so
            added += size
            if added > MAX_ALIAS_NODES:
                return (f"YAML alias expansion exceeds {MAX_ALIAS_NODES:,} nodes (at alias *{anchor}): "
                        "write the values out instead of nesting aliases"), _line(event)
            anchor = None
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            unclosed.discard(anchor)
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
        else:  # stream and document boundaries: anchors are per document
            sizes.clear()
            continue
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            stack[-1][1] += size
    return None


def _line(event: Any) -> int:
    return event.start_mark.line + 1


def _yaml_problem(exc, text: str, line_offset: int) -> tuple[str, int | None]:
    """Message and line of a YAML error; a problem found past the end of the text
    (an unclosed quote or bracket) is placed where the unclosed thing starts."""
    problem, context = exc.problem or exc.context or "cannot parse", exc.context
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    last = max(1, len(text.splitlines()))
    ctx_line = exc.context_mark.line + 1 if exc.context_mark and context else None
    message = f"malformed YAML: {problem}"
    if ctx_line and ctx_line != line:
        message += f" ({context} on line {ctx_line + line_offset})"
    if line is not None and line > last:
        line = ctx_line or last
    return message, (line + line_offset if line is not None else None)


def yaml_line(text: str, pointer: str, line_offset: int = 0) -> int | None:
    """The line where the node at JSON `pointer` starts in YAML `text`."""
    node = _compose(text)
    if node is None:
        return None
    import yaml

    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    best = node
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    best, node = key, value
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = best = node.value[int(part)]
        else:
            break
    return best.start_mark.line + 1 + line_offset if best is not None else None


@functools.lru_cache(maxsize=4)
def _compose(text: str):
    """The node graph of `text` (None: not YAML, or hostile), kept for the next
    lookup: a file with many problems asks for many lines."""
    if _shape_problem(text) is not None:
        return None  # too deep for libyaml's recursive composer
    import yaml

    try:
        return yaml.compose(text, Loader=_loader())  # libyaml when present: 10x faster
    except yaml.YAMLError:
        return None


_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)


@dataclass
class SkillDoc:
    meta: dict
    body: str
    meta_text: str  # the raw front matter, for line lookups (starts on line 2)


def parse_skill(text: str, path: str) -> SkillDoc:
    """Split a SKILL.md into front matter and Markdown body."""
    match = _FRONT.match(text)
    if not match:
        if re.match(r"\A---[ \t]*\r?\n", text):
            raise FileError(path, "front matter is not closed: expected a line '---' after the name and description", 1)
        raise FileError(path, "no YAML front matter: a SKILL.md starts with '---', the name and description, "
                              "and '---'", 1)
    meta = load_yaml(match.group(1), path, line_offset=1)
    if not isinstance(meta, dict):
        raise FileError(path, "front matter must be a mapping of keys to values", 2)
    return SkillDoc(meta=meta, body=text[match.end():], meta_text=match.group(1))


def render_skill(meta: dict, body: str) -> str:
    import yaml

    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{head}---\n{body if body.startswith(chr(10)) else chr(10) + body}"


def glob_match(path: str, pattern: str) -> bool:
    """git's wildmatch, as in `.gitignore`: `evals/**/*.yaml` also matches
    evals/a.yaml, `*` stays inside one folder, a bare name matches at any depth."""
    return _glob_spec(pattern).match_file(path)


@functools.lru_cache(maxsize=64)
def _glob_spec(pattern: str):
    """One compiled spec per pattern: matching 10,000 paths must not recompile it."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines([pattern])


# -- the state --------------------------------------------------------------------


def layer_of(path: str) -> str:
    """The layer a path belongs to: prompts, skills, tools, memory, evals, or its top name."""
    head, sep, _ = path.partition("/")
    if not sep:
        return {CONFIG_FILE: "config", MANIFEST_FILE: "manifest"}.get(path, "other")
    return head


class State:
    """The files of an agent's state, from any source, read lazily."""

    def __init__(self, files: dict[str, TreeFile], read: Callable[[TreeFile], bytes], origin: str,
                 tree_id: str | None = None, gitlinks: Iterable[str] = ()):
        self.files = files
        self._read = read
        self.origin = origin
        self.tree_id = tree_id
        # submodule paths: not files of the state, but a change there would replace one
        self.gitlinks = frozenset(gitlinks)
        self._parsed: dict = {}

    # -- sources ------------------------------------------------------------------
    @classmethod
    def from_tree(cls, repo: Repo, rev: str) -> State:
        tree = repo.tree(rev)
        links: list[str] = []
        files = {f.path: f for f in repo.list_files(tree, links)}
        return cls(files, lambda f: repo.blob(f.oid), f"{rev} ({str(tree.id)[:12]})", str(tree.id), links)

    @classmethod
    def from_index(cls, repo: Repo) -> State:
        links: list[str] = []
        files = repo.index_files(links)
        return cls(files, lambda f: repo.blob(f.oid), "the index", gitlinks=links)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, repo: Repo | None = None) -> State:
        """A folder's files. In a repository's work tree, git's index supplies the
        blob ids of unchanged files, so only changed files are read and hashed."""
        root = Path(folder).resolve()
        if repo is not None and repo.workdir is not None and root == repo.workdir.resolve():
            return cls._from_worktree(repo, root)
        files = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            # a symlink to a folder is one entry to git (a link), not a folder to enter
            linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            dirnames[:] = [d for d in dirnames if d != ".git" and d not in linked]
            for name in filenames + linked:
                full = Path(dirpath) / name
                if not (full.is_symlink() or full.is_file()):
                    continue  # sockets, FIFOs: git does not track them either
                rel = full.relative_to(root).as_posix()
                files[rel] = _hash_file(full, rel)
        return cls(files, lambda f: _read_file(root / f.path), str(root))

    @classmethod
    def _from_worktree(cls, repo: Repo, root: Path) -> State:
        return cls.start_worktree(repo, root).finish()

    @classmethod
    def start_worktree(cls, repo: Repo, root: Path | None = None) -> WorktreeReading:
        """Start reading the work tree: `git status` runs while the caller may use
        `.index` (the index's files); `.finish()` gives the work tree's state."""
        root = root if root is not None else Path(repo.workdir or ".").resolve()
        # what differs from the index: git's own status (threaded stat, ~2x faster than
        # libgit2's here), run beside `ls-files`; --no-optional-locks: never rewrite
        # the user's index
        status = repo.start_status()
        links: list[str] = []
        files = repo.index_files(links)
        index = cls(dict(files), lambda f: repo.blob(f.oid), "the index", gitlinks=links)
        return WorktreeReading(index, status, files, root, links)

    # -- reading ---------------------------------------------------------------------
    def __contains__(self, path: str) -> bool:
        return path in self.files

    def paths(self, prefix: str = "") -> list[str]:
        return sorted(p for p in self.files if p.startswith(prefix))

    def read(self, path: str) -> bytes:
        try:
            return self._read(self.files[path])
        except KeyError:
            raise FileError(path, f"no such file in {self.origin}") from None

    def text(self, path: str) -> str:
        return decode(self.read(path), path)

    def yaml(self, path: str, default=None):
        if path not in self.files:
            return default
        return load_yaml(self.text(path), path)

    def config(self) -> dict:
        """The effective aevolve.yaml (defaults where the file is absent or silent)."""
        if "config" not in self._parsed:
            raw = self.yaml(CONFIG_FILE, {})
            self._parsed["config"] = config_mod.resolve(raw if isinstance(raw, dict) else {})
        return self._parsed["config"]

    def manifest(self) -> dict:
        if "manifest" not in self._parsed:
            raw = self.yaml(MANIFEST_FILE, {})
            self._parsed["manifest"] = raw if isinstance(raw, dict) else {}
        return self._parsed["manifest"]

    def evolvable_layers(self) -> list[str]:
        layers = self.manifest().get("evolvable_layers")
        return list(layers) if isinstance(layers, list) and layers else list(config_mod.LAYERS)

    def skills(self) -> dict[str, str]:
        """Skill folder name → path of its SKILL.md (absent SKILL.md: empty string)."""
        out: dict[str, str] = {}
        for path in self.files:
            parts = path.split("/")
            if parts[0] == "skills" and len(parts) >= 3:
                out.setdefault(parts[1], "")
                if len(parts) == 3 and parts[2] == SKILL_FILE:
                    out[parts[1]] = path
        return dict(sorted(out.items()))

    def skill(self, name: str) -> SkillDoc:
        path = f"skills/{name}/{SKILL_FILE}"
        return parse_skill(self.text(path), path)

    def memory_files(self) -> list[str]:
        """Every memory file in reading order: family by family, each base file first,
        then its shards by number (`memory_shards`), so records come oldest first."""
        from aevolve._state.memory_shards import ordered

        return ordered(self.files)

    def memory_families(self) -> dict[str, list[str]]:
        """Base path -> its family's files in reading order (the base may be missing)."""
        from aevolve._state.memory_shards import families

        return families(self.files)

    def memory(self, path: str) -> list[dict]:
        """The records of `path`'s whole family (base, then shards), as one sequence."""
        from aevolve._state.memory_shards import family_of

        return [r for member in family_of(path, self.files) for _, r in read_jsonl(self.text(member), member)]

    def case_files(self) -> list[str]:
        pattern = self.config()["gate"].get("cases")
        if not isinstance(pattern, str) or not pattern:
            pattern = config_mod.DEFAULTS["gate"]["cases"]  # the bad value is a validation error
        return sorted(p for p in self.files if glob_match(p, pattern))


def blob_id(data: bytes) -> str:
    """The id git gives a blob of `data` (what `git hash-object` prints)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _hash_file(full: Path, rel: str) -> TreeFile:
    if full.is_symlink():
        return TreeFile(rel, blob_id(os.readlink(full).encode()), LINK)
    mode = BLOB_EXECUTABLE if os.access(full, os.X_OK) else BLOB
    return TreeFile(rel, blob_id(full.read_bytes()), mode)


def _read_file(full: Path) -> bytes:
    if full.is_symlink():
        return os.readlink(full).encode()
    return full.read_bytes()


@dataclass
class WorktreeReading:
    """The work tree while `git status` runs: the index now, the work tree at `finish`."""

    index: State
    status: subprocess.Popen
    files: dict[str, TreeFile]
    root: Path
    links: list[str]

    def finish(self) -> State:
        out, err = self.status.communicate()
        if self.status.returncode != 0:
            from aevolve._errors import GitCommandFailed

            raise GitCommandFailed(f"git status failed: {err.decode(errors='replace').strip()}")
        files, root = self.files, self.root
        for record in out.split(b"\0"):
            if len(record) < 4 or (record[1:2] == b" " and record[:1] != b"?"):
                continue  # staged only: the worktree file equals the index entry
            path = record[3:].decode("utf-8", "surrogateescape")
            full = root / path
            if not os.path.lexists(full):
                files.pop(path, None)
            elif full.is_symlink() or full.is_file():
                files[path] = _hash_file(full, path)
        return State(files, lambda f: _read_file(root / f.path), str(root), gitlinks=self.links)
