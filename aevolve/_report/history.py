"""The report's data: main's first-parent history, its gate notes, and the proposals
that did not reach main (from the notes, and with --all from evolve/* branches)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from aevolve._errors import UsageError
from aevolve._git.repo import Repo
from aevolve._propose.rationale import parse
from aevolve._report import figures
from aevolve._report.changes import changed_files
from aevolve._report.evolvers import evolver_figures
from aevolve._report.model import Proposal, Report, Version
from aevolve._report.notes import read_notes

EVOLVE_PREFIX = "refs/heads/evolve/"
_STATUS = {"reject": "rejected", "error": "error", "accept": "accepted", "partial": "partial"}


def build_report(repo: Repo, since: str | None = None, all: bool = False, base: str = "main") -> Report:
    """Everything `aevolve report` shows, oldest first."""
    tip = repo.resolve_branch(base)
    chain = _first_parents(repo, tip, since, base)
    notes = read_notes(repo)
    parsed = _Parsed(notes.reports)
    versions = [_version(repo, c, parsed) for c in chain]
    if versions:
        versions[0].start = True
    _fill_from_next_baseline(versions, parsed)
    on_main = {v.commit for v in versions}
    proposals, outside = _proposals(repo, parsed, on_main, tip, all)
    report = Report(
        main=tip, base=base, since=str(chain[0].id) if since and chain else None, all=all,
        generated=datetime.now(UTC).isoformat(timespec="seconds"), versions=versions, proposals=proposals,
        case_ids=sorted({c for v in versions for c in v.cases}),
        tags=sorted({t for v in versions for t in v.tag_rates}),
        evolvers=evolver_figures(versions, proposals), commit_url=commit_url(repo),
        name=(repo.workdir or repo.git_dir).name,
    )
    report.notes = _notes(report, notes.ignored, outside)
    return report


class _Parsed:
    """The gate reports by commit, each report's per-case results parsed once."""

    def __init__(self, reports: dict[str, dict]):
        self.reports = reports
        self._cases: dict[str, list[figures.CaseResult]] = {}

    def cases(self, commit: str) -> list[figures.CaseResult]:
        if commit not in self._cases:
            self._cases[commit] = figures.cases(self.reports[commit])
        return self._cases[commit]


def _first_parents(repo: Repo, tip: str, since: str | None, base: str) -> list:
    """main's first-parent chain, oldest first, from the root or from `since`."""
    stop = str(repo.resolve(since).id) if since else None
    chain = []
    commit = repo.resolve(tip)
    while True:
        chain.append(commit)
        if str(commit.id) == stop or not commit.parent_ids:
            break
        commit = commit.parents[0]
    if stop is not None and str(chain[-1].id) != stop:
        raise UsageError(f"--since {since}: {stop[:12]} is not on {base}'s first-parent history; "
                         f"name a commit `git log --first-parent {base}` lists")
    return chain[::-1]


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _version(repo: Repo, commit, parsed: _Parsed) -> Version:
    message = commit.message or ""
    sha = str(commit.id)
    parent = str(commit.parent_ids[0]) if commit.parent_ids else None
    v = Version(commit=sha, parent=parent, date=_date(commit.commit_time),
                subject=figures.text(message.splitlines()[0] if message else "", 300))
    rationale = parse(message)
    if rationale is not None:
        v.aevolve, v.evolver, v.proposal_id = True, rationale.evolver or None, rationale.proposal_id or None
        v.title, v.layer, v.evidence = rationale.title, rationale.layer, rationale.evidence[:50]
        v.rationale = {"diagnosis": rationale.diagnosis, "change": rationale.change,
                       "expected_effect": rationale.expected_effect}
    v.files, v.files_more = changed_files(repo, str(commit.parents[0].tree_id) if parent else None,
                                          str(commit.tree_id))
    report = parsed.reports.get(sha)
    if report is not None:
        _apply_note(v, report, parsed.cases(sha))
    return v


def _apply_note(v: Version, report: dict, results: list[figures.CaseResult]) -> None:
    v.decision = figures.text(report.get("decision"), 20) or None
    v.pass_rate = figures.pass_rate(report, results, "candidate")
    v.baseline_pass_rate = figures.pass_rate(report, results, "baseline")
    v.measured = "own note" if v.pass_rate is not None else None
    v.gain = figures.gain(report, v.baseline_pass_rate, v.pass_rate)
    v.reasons = figures.reasons(report)
    v.tag_rates = figures.tag_rates(results, "candidate")
    v.fixed, v.broke = figures.flips(results)
    v.cases = figures.outcomes(results, "candidate")
    v.latency, v.cost = figures.latency(results, "candidate"), figures.cost(results, "candidate")


def _fill_from_next_baseline(versions: list[Version], parsed: _Parsed) -> None:
    """A version without a note of its own (the root, a hand commit) was measured as the
    baseline of the next version's gate, when that gate judged against it."""
    for v, nxt in itertools.pairwise(versions):
        report = parsed.reports.get(nxt.commit)
        if v.pass_rate is not None or report is None or report.get("baseline") != v.commit:
            continue
        results = parsed.cases(nxt.commit)
        v.pass_rate = figures.pass_rate(report, results, "baseline")
        v.measured = "next commit's baseline" if v.pass_rate is not None else None
        v.tag_rates = figures.tag_rates(results, "baseline")
        v.cases = figures.outcomes(results, "baseline")
        v.latency, v.cost = figures.latency(results, "baseline"), figures.cost(results, "baseline")


def _proposals(repo: Repo, parsed: _Parsed, on_main: set[str], tip: str,
               all: bool) -> tuple[list[Proposal], int]:
    """Gated proposals outside main judged against a shown version (rejected ones; all with
    `all`, plus evolve/* tips never gated), and how many were left out for their baseline."""
    branches = {target: ref.removeprefix("refs/heads/") for ref, target in sorted(repo.refs(EVOLVE_PREFIX).items())}
    out, outside = [], 0
    reachable: set[str] | None = None
    for sha, report in parsed.reports.items():
        status = _STATUS.get(str(report.get("decision")), "error")
        if sha in on_main or (status not in ("rejected", "error") and not all):
            continue
        baseline = report.get("baseline")
        if not isinstance(baseline, str) or baseline not in on_main:  # a hostile note may hold a list
            outside += 1
            continue
        if reachable is None:  # one walk, not one ancestry question per proposal
            reachable = {str(c.id) for c in repo.commits(tip)}
        if sha in reachable:
            continue  # reached main another way (a merged side branch)
        out.append(_proposal(repo, sha, status, report, parsed.cases(sha), branches.get(sha)))
    if all:
        for sha, branch in branches.items():
            if sha not in parsed.reports and sha not in on_main and not repo.is_ancestor(sha, tip):
                out.append(_proposal(repo, sha, "ungated", None, [], branch))
    out.sort(key=lambda p: (p.date or "", p.commit))
    return out, outside


def _proposal(repo: Repo, sha: str, status: str, report: dict | None, results: list[figures.CaseResult],
              branch: str | None) -> Proposal:
    commit = repo.try_resolve(sha)
    message = (commit.message or "") if commit is not None else ""
    rationale = parse(message)
    base = report.get("baseline") if report else (str(commit.parent_ids[0]) if commit and commit.parent_ids else None)
    p = Proposal(commit=sha, status=status, baseline=base if isinstance(base, str) else None,
                 date=_date(commit.commit_time) if commit is not None else None,
                 subject=figures.text(message.splitlines()[0] if message else "(commit not in this repository)", 300),
                 title=rationale.title if rationale else "", evolver=(rationale.evolver or None) if rationale else None,
                 branch=branch)
    if report is not None:
        p.reasons = figures.reasons(report)
        p.pass_rate = figures.pass_rate(report, results, "candidate")
        p.baseline_pass_rate = figures.pass_rate(report, results, "baseline")
        p.gain = figures.gain(report, p.baseline_pass_rate, p.pass_rate)
        p.fixed, p.broke = figures.flips(results)
    return p


def _notes(report: Report, ignored: int, outside: int) -> list[str]:
    out = []
    if report.case_ids and not report.tags:
        out.append("no case carries tags: per-tag pass rates are not shown")
    if not any(v.latency for v in report.versions):
        out.append("no gate report records per-case latency: latency over time is not shown")
    if not any(v.cost for v in report.versions):
        out.append("no gate report records per-case cost (the runner prints JSON with a \"cost\" field): "
                   "cost over time is not shown")
    if outside:
        out.append(f"{outside} proposal(s) judged against a commit outside the shown history are not shown")
    if ignored:
        out.append(f"{ignored} note(s) under refs/notes/aevolve are not gate reports of their commit and were ignored")
    return out


def commit_url(repo: Repo) -> str | None:
    """`https://<host>/<owner>/<repo>/commit/` when origin is on GitHub or GitLab, else None."""
    web = repo.web_url()
    if web is None:
        return None
    return web[0] + ("/-/commit/" if web[1] == "gitlab.com" else "/commit/")
