"""The `patch` evolver: edits given by a person or another tool, plus a rationale.

Edits come from an edit file (YAML/JSON: a list of {op, path, content|records},
or a whole proposal document) or from a unified diff as `git diff` prints it,
which `git apply --cached` applies to the base tree in a temporary index (git
gets quoting, renames, offsets and context right); the resulting tree's
differences from the base become the same edits, so the policy still checks
every path. The rationale comes from a proposal document, a `--rationale` YAML
file and/or flags (flags win). This is the door for external optimizers: they
produce a diff or an edit list, aevolve routes it through the same policy and
gate.
"""

from __future__ import annotations

import re
from pathlib import Path

from aevolve._errors import AevolveError, EvolverFailed, InvalidInput, PatchDoesNotApply, PolicyRefused, UsageError
from aevolve._git.repo import BLOB, LINK, Repo
from aevolve._json import loads
from aevolve._propose.evolvers.base import Edit, EvolveContext, Proposal
from aevolve._propose.policy import edit_count_problem
from aevolve._state import schemas
from aevolve._state.model import FileError, load_yaml

RATIONALE_KEYS = ("title", "diagnosis", "change", "expected_effect")
_FLAG = {"title": "--title", "diagnosis": "--diagnosis", "change": "--change", "expected_effect": "--expected-effect"}


# -- unified diffs, applied by git ----------------------------------------------------


def diff_to_edits(diff: bytes, repo: Repo, base: str, name: str = "diff") -> list[Edit]:
    """The write/delete edits a unified diff makes to the tree of `base`, as `git apply` applies it."""
    try:
        tree = repo.apply_patch(base, diff)
    except PatchDoesNotApply as exc:
        raise _apply_error(str(exc), diff.decode(errors="replace"), name) from None
    # bytes in, bytes out: paths come from the diff and may be anything
    return _edits(repo, repo.diff_tree_records(base, tree))


def _edits(repo: Repo, fields: list[bytes]) -> list[Edit]:
    """Edits from `diff-tree -z` records (`:old new oldid newid status`, path): a rename is
    a delete and a write; only content of regular files can be proposed."""
    edits: list[Edit] = []
    for meta, raw in zip(fields[0::2], fields[1::2], strict=True):
        old_mode, new_mode, _, new_oid, status = meta.decode().lstrip(":").split(" ")
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EvolverFailed(f"{raw!r}: the diff names a path that is not UTF-8") from None
        if status == "D":
            edits.append(Edit("delete", path))
            continue
        if int(new_mode, 8) == LINK and new_mode != old_mode:
            raise PolicyRefused([f"{path}: the diff creates a symbolic link; "
                                 "proposals may not create or write through symlinks"])
        if new_mode != old_mode and (status != "A" or int(new_mode, 8) != BLOB):
            raise EvolverFailed(f"{path}: the diff sets mode {new_mode}; a proposal writes file content "
                                "and keeps modes (new files are 100644)")
        try:
            content = repo.blob(new_oid).decode("utf-8")
        except UnicodeDecodeError:
            raise EvolverFailed(f"{path}: binary patches are not supported; state files are text") from None
        edits.append(Edit("write", path, content=content))
    return edits


# git's own words -> ours, as the error whose exit code calls for the right reaction
_ERRORS: list[tuple[re.Pattern, type[AevolveError], str]] = [
    (re.compile(r"(.*): does not exist in index"), EvolverFailed,
     "{0}: the diff changes a file that is not in the base state"),
    (re.compile(r"(.*): already exists in index"), EvolverFailed,
     "{0}: the diff creates a file that already exists in the base state"),
    (re.compile(r"cannot apply binary patch to '(.*)' without full index line"), EvolverFailed,
     "{0}: binary patches are not supported; state files are text"),
    (re.compile(r"invalid path '(.*)'"), PolicyRefused,
     "{0}: not a path inside the state ('..', '.git' and absolute paths are refused)"),
    (re.compile(r"affected file '(.*)' is beyond a symbolic link"), PolicyRefused,
     "{0}: proposals may not create or write through symlinks"),
    (re.compile(r"No valid patches in input"), InvalidInput,
     "{name}: no file patches found; expected a unified diff as `git diff` prints it"),
    (re.compile(r"corrupt patch at line (\d+)"), InvalidInput,
     "{name}:{0}: corrupt patch; expected a unified diff as `git diff` prints it"),
]


def _apply_error(stderr: str, text: str, name: str) -> AevolveError:
    """The first error `git apply --check --verbose` reported, said in aevolve's terms."""
    checked = -1  # which file patch git was checking: "Checking patch X..." precedes its errors
    errors = []
    for line in stderr.splitlines():
        if line.startswith("Checking patch "):
            checked += 1
        elif line.startswith("error: patch failed: "):
            path, _, line_number = line.removeprefix("error: patch failed: ").rpartition(":")
            return EvolverFailed(_hunk_failed(text, path, max(checked, 0), int(line_number)))
        elif line.startswith("error: ") and not line.startswith("error: while searching for"):
            errors.append(line.removeprefix("error: "))
    for message in errors:
        for pattern, kind, template in _ERRORS:
            m = pattern.search(message)
            if m:
                said = template.format(*m.groups(), name=name)
                return PolicyRefused([said]) if kind is PolicyRefused else kind(said)
    return EvolverFailed(f"{name}: the diff does not apply to the base: {'; '.join(errors) or stderr.strip()}")


def _hunk_failed(text: str, path: str, file_index: int, old_start: int) -> str:
    """"path: hunk N (header) does not apply": git names the file and the hunk's first
    line only, and a person fixing the diff wants the hunk. Hunk headers are found in
    the file patch git was checking; nothing else of the diff is parsed here."""
    starts = [m.start() for m in re.finditer(r"^diff --git ", text, re.M)]
    starts = starts or [m.start() for m in re.finditer(r"^--- .*\n\+\+\+ ", text, re.M)]
    if file_index < len(starts):
        chunk = text[starts[file_index]:starts[file_index + 1] if file_index + 1 < len(starts) else None]
        for number, m in enumerate(re.finditer(r"^@@ -(\d+)[ ,].*$", chunk, re.M), 1):
            if int(m.group(1)) == old_start:
                return f"{path}: hunk {number} ({m.group(0)}) does not apply: its context does not match the base"
    return f"{path}: the hunk at line {old_start} does not apply: its context does not match the base"


# -- the evolver --------------------------------------------------------------------


def _load_document(path: str | Path, what: str):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not valid UTF-8") from None
    if text.lstrip()[:1] in ("[", "{"):
        try:
            return loads(text)  # 100x faster than the YAML reader on a large edit list
        except ValueError:
            pass  # YAML flow style, or broken: the YAML reader says where
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
        in_memory = isinstance(self.edits_file, (list, dict))  # from the Python API
        source = "edits" if in_memory else str(self.edits_file or self.diff_file)
        if self.edits_file is not None:
            fields, edit_list, diff = *self._edit_document(source, in_memory), None
        else:
            fields, edit_list, diff = {}, None, self._read_diff()
        fields.update(self._rationale_fields())
        missing = [k for k in RATIONALE_KEYS if not fields.get(k)]
        if missing:
            raise UsageError("the patch evolver needs a rationale: missing "
                             + ", ".join(_FLAG[k] for k in missing) + " (or give them in --rationale FILE)")
        if diff is not None:  # applied only once the rationale is complete: a usage error comes first
            edit_list = [e.to_dict() for e in diff_to_edits(diff, ctx.repo, ctx.base, source)]
        too_many = edit_count_problem(len(edit_list or []), ctx.config)  # before the schema reads every edit
        if too_many:
            raise PolicyRefused([too_many])
        document = {k: fields[k] for k in (*RATIONALE_KEYS, "evidence", "layer") if fields.get(k) is not None}
        document["edits"] = edit_list
        if isinstance(document.get("evidence"), str):
            document["evidence"] = [e.strip() for e in document["evidence"].split(",") if e.strip()]
        issues = schemas.errors("proposal", document)
        if issues:
            listed = schemas.listing(issues)
            raise InvalidInput(f"{source}: not a valid proposal:\n{listed}")
        return Proposal.from_dict(document)

    def _edit_document(self, source: str, in_memory: bool) -> tuple[dict, list]:
        """(rationale fields, edit list) of an edit file or a whole proposal document."""
        doc = self.edits_file if in_memory else _load_document(self.edits_file, "edit")
        fields: dict = {}
        if isinstance(doc, dict) and "edits" in doc:
            fields.update({k: v for k, v in doc.items() if k != "edits"})
            doc = doc["edits"]
        if not isinstance(doc, list):
            raise InvalidInput(f"{source}: expected a list of edits ({{op, path, content|records}}) "
                               "or a proposal document with `edits`")
        return fields, doc

    def _read_diff(self) -> bytes:
        try:
            return Path(self.diff_file).read_bytes()  # bytes: git reads the diff as it was written
        except FileNotFoundError:
            raise UsageError(f"{self.diff_file}: no such diff file") from None

    def _rationale_fields(self) -> dict:
        """The rationale file's fields, then the flags over them."""
        fields: dict = {}
        if self.rationale_file is not None:
            doc = _load_document(self.rationale_file, "rationale")
            if not isinstance(doc, dict):
                raise InvalidInput(f"{self.rationale_file}: expected a mapping with {', '.join(RATIONALE_KEYS)}")
            fields.update({k.replace("-", "_"): v for k, v in doc.items()})
        fields.update({k: v for k, v in self.flags.items() if v not in (None, [], "")})
        return fields


EVOLVER = PatchEvolver
