"""The data of a report and its JSON form (`aevolve report --format json`, docs/report.md).

The JSON shape is versioned by `FORMAT_VERSION`: fields may be added, none is
renamed or removed without a new version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FORMAT_VERSION = 1


@dataclass
class Version:
    """One commit of main's first-parent history: the agent as it was after it."""

    commit: str
    parent: str | None
    date: str  # ISO 8601, UTC, committer time
    subject: str
    aevolve: bool = False  # made by aevolve (an Aevolve-Proposal trailer)
    evolver: str | None = None
    proposal_id: str | None = None
    title: str = ""
    layer: str = ""
    rationale: dict[str, str] = field(default_factory=dict)  # diagnosis, change, expected_effect
    evidence: list[str] = field(default_factory=list)
    decision: str | None = None  # its own gate note's decision; None when it has no note
    measured: str | None = None  # "own note" | "next commit's baseline" | None (no pass rate known)
    pass_rate: float | None = None
    baseline_pass_rate: float | None = None
    gain: float | None = None
    reasons: list[str] = field(default_factory=list)
    tag_rates: dict[str, float] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)  # F→P case ids
    broke: list[str] = field(default_factory=list)  # P→F case ids
    cases: dict[str, bool | None] = field(default_factory=dict)  # case id -> passes at this version
    latency: dict | None = None  # median_ms, p95_ms, cases
    cost: dict | None = None  # total, median, cases
    files: list[dict] = field(default_factory=list)  # path, status (A/M/D)
    files_more: int = 0  # changed files beyond the listed ones
    start: bool = False  # the first version shown: where the history starts (the root, or --since REV)

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def promotion(self) -> bool:
        """A change that entered main with an accepting verdict."""
        return not self.start and self.decision == "accept"


@dataclass
class Proposal:
    """A gated (or, with --all, pending) proposal that did not reach main."""

    commit: str
    status: str  # rejected | error | accepted (not promoted) | partial | ungated
    baseline: str | None
    date: str | None
    subject: str
    title: str = ""
    evolver: str | None = None
    branch: str | None = None
    reasons: list[str] = field(default_factory=list)
    pass_rate: float | None = None
    baseline_pass_rate: float | None = None
    gain: float | None = None
    fixed: list[str] = field(default_factory=list)
    broke: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def rejected(self) -> bool:
        return self.status in ("rejected", "error")


@dataclass
class EvolverFigures:
    name: str
    proposals: int = 0
    promoted: int = 0
    rejected: int = 0
    pending: int = 0
    acceptance_rate: float | None = None  # promoted / (promoted + rejected)
    mean_gain: float | None = None  # mean pass-rate gain of its promotions


@dataclass
class Report:
    main: str
    base: str
    since: str | None
    all: bool
    generated: str
    versions: list[Version]  # oldest first
    proposals: list[Proposal]  # oldest first
    case_ids: list[str]
    tags: list[str]
    evolvers: list[EvolverFigures]
    notes: list[str] = field(default_factory=list)  # what the report could not show, and why
    commit_url: str | None = None  # prefix of a commit's page on the remote host (GitHub, GitLab)
    name: str = ""  # the repository's folder name

    @property
    def current(self) -> Version | None:
        """The newest version whose pass rate is known."""
        return next((v for v in reversed(self.versions) if v.pass_rate is not None), None)

    def summary(self) -> dict:
        current = self.current
        first = next((v for v in self.versions if v.pass_rate is not None), None)
        return {
            "versions": len(self.versions),
            "promotions": sum(1 for v in self.versions if v.promotion),
            "ungated": sum(1 for v in self.versions if not v.start and v.decision is None),
            "rejections": sum(1 for p in self.proposals if p.rejected),
            "pending": sum(1 for p in self.proposals if not p.rejected),
            "cases": len(self.case_ids),
            "pass_rate": current.pass_rate if current else None,
            "pass_rate_at": current.commit if current else None,
            "first_pass_rate": first.pass_rate if first else None,
        }

    def to_dict(self) -> dict:
        return {
            "format": "aevolve-report", "version": FORMAT_VERSION, "generated": self.generated,
            "main": self.main, "base": self.base, "since": self.since, "all": self.all,
            "summary": self.summary(), "notes": list(self.notes),
            "versions": [{**asdict(v), "short": v.short, "promotion": v.promotion} for v in self.versions],
            "proposals": [{**asdict(p), "short": p.short} for p in self.proposals],
            "cases": list(self.case_ids), "tags": list(self.tags),
            "evolvers": [asdict(e) for e in self.evolvers],
            "commit_url": self.commit_url,
        }
