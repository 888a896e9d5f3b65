"""Regression cases: read from the baseline's `evals/`, checked, hashed, sharded.

Cases always come from the baseline (main): `evals/` is protected, so the
candidate's copy must be identical anyway, and reading main's copy means a
candidate can never choose its own exam.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from aevolve._errors import InvalidInput
from aevolve._state import schemas
from aevolve._state.model import FileError, State, load_yaml, yaml_line


@dataclass
class Case:
    id: str
    input: object
    asserts: list[dict]
    tags: list[str] = field(default_factory=list)
    repeat: int = 1
    threshold: float = 1.0
    description: str = ""
    file: str = ""
    line: int | None = None
    raw: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Content hash of the case as written: any edit to it invalidates cached runs."""
        return content_hash(self.raw)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def content_hash(value) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def default_threshold(repeat: int) -> float:
    """Pass rate a case needs to count as passing: all runs with one run, a majority with more."""
    return 1.0 if repeat <= 1 else 0.5


def parse_case_file(text: str, path: str, repeats: int = 1) -> list[Case]:
    """Every case of one file; the first problem raises InvalidInput naming file:line."""
    value = load_yaml(text, path)
    base = ""
    if value is None:
        return []
    if isinstance(value, dict) and isinstance(value.get("cases"), list):
        value, base = value["cases"], "/cases"
    if not isinstance(value, list):
        raise InvalidInput(f"{path}:1: a case file is a list of cases (each with id, input, assert)")
    out = []
    for i, raw in enumerate(value):
        pointer = f"{base}/{i}"
        for issue in schemas.errors("eval-case", raw):
            line = yaml_line(text, pointer + issue.pointer)
            where = f"{path}:{line}" if line else path
            raise InvalidInput(f"{where}: case {i + 1}: {issue.message} (at {pointer + issue.pointer})")
        _check_asserts(raw, text, path, pointer, i)
        repeat = int(raw.get("repeat") or repeats or 1)
        out.append(Case(
            id=raw["id"], input=raw["input"], asserts=list(raw["assert"]), tags=list(raw.get("tags") or []),
            repeat=repeat,
            threshold=float(raw["threshold"]) if raw.get("threshold") is not None else default_threshold(repeat),
            description=raw.get("description") or "", file=path, line=yaml_line(text, pointer), raw=raw,
        ))
    return out


def _check_asserts(raw: dict, text: str, path: str, pointer: str, index: int) -> None:
    """Refuse, with its line, an assertion no output can be judged by (an empty
    `contains` passes on anything; a schema that is not one checks nothing)."""
    from aevolve._gate.assertions import spec_problem

    for j, spec in enumerate(raw["assert"]):
        problem = spec_problem(spec)
        if problem:
            at = f"{pointer}/assert/{j}"
            line = yaml_line(text, at + "/value") or yaml_line(text, at)
            where = f"{path}:{line}" if line else path
            raise InvalidInput(f"{where}: case {index + 1}: {problem} (at {at})")


def load_cases(state: State) -> list[Case]:
    """The suite: every case file matching `gate.cases` in `state`, ids unique across files."""
    cfg = state.config()
    repeats = int(cfg["gate"].get("repeats") or 1)
    cases: list[Case] = []
    seen: dict[str, Case] = {}
    for path in state.case_files():
        try:
            found = parse_case_file(state.text(path), path, repeats)
        except FileError as exc:
            raise InvalidInput(str(exc)) from None
        for case in found:
            if case.id in seen:
                raise InvalidInput(f"{case.where}: duplicate case id {case.id!r} (first at {seen[case.id].where})")
            seen[case.id] = case
            cases.append(case)
    return cases


def shard_of(case_id: str, count: int) -> int:
    """The shard (1..count) a case belongs to: a stable hash, same on every machine."""
    digest = hashlib.sha256(case_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_shard(cases: list[Case], shard: tuple[int, int] | None) -> list[Case]:
    if shard is None:
        return cases
    index, count = shard
    return [c for c in cases if shard_of(c.id, count) == index]
