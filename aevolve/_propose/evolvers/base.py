"""The one interface every evolver implements, and the data it exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from aevolve._git.repo import Repo
    from aevolve._state.model import State


@dataclass
class Edit:
    """One change to the state. Paths are untrusted until the policy has checked them."""

    op: Literal["write", "delete", "append-jsonl", "append", "replace"]
    path: str
    content: str | None = None  # write (the whole file), append (text to add), replace (the new text)
    records: list[dict] | None = None  # append-jsonl
    old: str | None = None  # replace: the exact text to replace, found once in the file

    def to_dict(self) -> dict:
        out: dict = {"op": self.op, "path": self.path}
        if self.old is not None:
            out["old"] = self.old
        if self.content is not None:
            out["content"] = self.content
        if self.records is not None:
            out["records"] = self.records
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Edit:
        return cls(op=data["op"], path=data["path"], content=data.get("content"), records=data.get("records"),
                   old=data.get("old"))


@dataclass
class Proposal:
    """What an evolver returns: edits plus the diagnostic rationale (schema `proposal`)."""

    title: str
    diagnosis: str
    change: str
    expected_effect: str
    edits: list[Edit]
    evidence: list[str] = field(default_factory=list)
    layer: str | None = None  # computed from the edits when not given
    usage: dict = field(default_factory=dict)  # e.g. token counts of an LLM evolver

    def to_dict(self) -> dict:
        out = {
            "title": self.title,
            "diagnosis": self.diagnosis,
            "change": self.change,
            "expected_effect": self.expected_effect,
            "evidence": list(self.evidence),
            "edits": [e.to_dict() for e in self.edits],
        }
        if self.layer:
            out["layer"] = self.layer
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Proposal:
        """From a dict already validated against the `proposal` schema."""
        return cls(
            title=data["title"],
            diagnosis=data["diagnosis"],
            change=data["change"],
            expected_effect=data["expected_effect"],
            edits=[Edit.from_dict(e) for e in data["edits"]],
            evidence=list(data.get("evidence", [])),
            layer=data.get("layer"),
        )


@dataclass
class EvolveContext:
    """Everything an evolver may look at. It never gets a way to write."""

    repo: Repo
    base: str  # commit id the proposal builds on
    state: State  # the state at `base`
    observations: list[dict]  # the evidence, oldest first
    history: list[dict] = field(default_factory=list)  # gate reports of earlier rejected proposals
    config: dict = field(default_factory=dict)  # the effective aevolve.yaml at `base`
    seed: int = 0
    focus: str | None = None  # a layer to concentrate on, for diverse candidates
    temperature: float | None = None


class Evolver(Protocol):
    name: str  # recorded in the Aevolve-Evolver trailer, e.g. "rules" or "openai/gpt-4.1-mini"

    def propose(self, ctx: EvolveContext) -> Proposal | None:
        """A proposal, or None when the evidence calls for no change."""
        ...
