"""`aevolve review BRANCH`: the pull-request body a reviewer reads.

Subject, the rationale (Diagnosis / Change / Expected effect), the evidence
(each cited observation's task and feedback, shortened), the semantic diff
against the merge base (long parts folded), and the gate's results against
main from the note on the branch tip, regressions first.

What it returns is redacted (aevolve._trust.secrets): a gate note may hold a runner's
stderr with a key in it, and a review body is pasted where anyone can read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aevolve._git.notes import read_gate_report
from aevolve._git.repo import Repo
from aevolve._propose.rationale import Rationale, parse
from aevolve._review.diff import SemanticDiff, semantic_diff
from aevolve._review.render import FOLD_LINES, markdown_units
from aevolve._trust.secrets import redact, redact_obj, secret_values

_MARKS: dict[bool | None, str] = {True: "✅", False: "❌"}  # an observation's success

SHORT = 240  # characters kept of an observation's task, output or feedback


@dataclass
class Review:
    branch: str
    base: str
    commit: str
    base_commit: str
    merge_base: str | None
    subject: str
    message: str
    rationale: Rationale | None
    commits: list[dict] = field(default_factory=list)  # base..branch, newest first
    evidence: list[dict] = field(default_factory=list)
    diff: SemanticDiff | None = None
    gate: dict = field(default_factory=dict)
    # Variables whose values are redacted besides the KEY/TOKEN/SECRET/PASSWORD rule
    # (the base's evolver.openai.api_key_env). Names only: values are read when rendering.
    secret_names: tuple[str, ...] = ()
    full: bool = False  # whole memory records and outputs, not cut
    web: str | None = None  # https://<host>/<owner>/<repo> when origin is on GitHub or GitLab
    gitlab: bool = False

    def to_dict(self) -> dict:
        return redact_obj(self._dict(), secret_values(names=self.secret_names))

    def markdown(self) -> str:
        return redact(_markdown(self), secret_values(names=self.secret_names))

    def _dict(self) -> dict:
        r = self.rationale
        return {
            "branch": self.branch, "base": self.base, "commit": self.commit, "base_commit": self.base_commit,
            "merge_base": self.merge_base, "subject": self.subject, "commits": self.commits,
            "rationale": None if r is None else {
                "title": r.title, "layer": r.layer, "diagnosis": r.diagnosis, "change": r.change,
                "expected_effect": r.expected_effect, "evidence": r.evidence, "proposal_id": r.proposal_id,
                "evolver": r.evolver, "base": r.base},
            "evidence": self.evidence,
            "diff": self.diff.to_dict() if self.diff else None,
            "gate": self.gate,
        }


def short(value, limit: int = SHORT) -> str:
    """One line of at most `limit` characters (JSON for structured values)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_review(repo: Repo, branch: str, base: str = "main", full: bool = False) -> Review:
    tip = repo.resolve(branch)
    base_commit = repo.resolve(base)
    merge_base = repo.merge_base(str(tip.id), str(base_commit.id))
    message = tip.message
    result = Review(
        branch=branch, base=base, commit=str(tip.id), base_commit=str(base_commit.id),
        merge_base=str(merge_base) if merge_base else None,
        subject=message.splitlines()[0] if message else "", message=message, rationale=parse(message),
        full=full,
    )
    result.web, result.gitlab = _web(repo)
    result.commits = _commits(repo, tip, merge_base)
    result.evidence = _evidence(repo, result.rationale.evidence if result.rationale else [])
    result.diff = semantic_diff(repo, result.merge_base or str(base_commit.id), str(tip.id))
    result.gate = gate_summary(repo, str(tip.id), str(base_commit.id))
    result.secret_names = _key_variables(repo, base_commit)
    return result


def _key_variables(repo: Repo, commit) -> tuple[str, ...]:
    """The API-key variable aevolve.yaml names at `commit` (the default when it names none)."""
    from aevolve import _config as config_mod
    from aevolve._state.model import CONFIG_FILE, FileError, decode, load_yaml

    try:
        raw = load_yaml(decode(commit.tree[CONFIG_FILE].data, CONFIG_FILE), CONFIG_FILE)
    except (KeyError, AttributeError, FileError):
        raw = None  # absent or malformed: the defaults still name the usual variable
    name = ((config_mod.resolve(raw).get("evolver") or {}).get("openai") or {}).get("api_key_env")
    return (name,) if isinstance(name, str) and name else ()


def review(repo: Repo, branch: str, base: str = "main", full: bool = False) -> str:
    """The pull-request body for `branch` against `base`, in Markdown."""
    return build_review(repo, branch, base, full).markdown()


def _web(repo: Repo) -> tuple[str | None, bool]:
    """(https://<host>/<owner>/<repo>, is GitLab) when origin is on a known host, else (None, False)."""
    web = repo.web_url()
    return (web[0], web[1] == "gitlab.com") if web else (None, False)


def commit_link(r: Review, sha: str) -> str:
    """`abc123def456` as a link to its page on the remote host, or plain."""
    if not r.web:
        return f"`{sha[:12]}`"
    return f"[`{sha[:12]}`]({r.web}{'/-' if r.gitlab else ''}/commit/{sha})"


def _observation_link(r: Review, e: dict) -> str:
    if not r.web or not e.get("batch") or not e.get("at"):
        return f"`{e['id']}`"
    return f"[`{e['id']}`]({r.web}{'/-' if r.gitlab else ''}/blob/{e['at']}/{e['batch']})"


def _commits(repo: Repo, tip, merge_base) -> list[dict]:
    out = []
    for commit in repo.commits(str(tip.id), hide=merge_base):
        out.append({"commit": str(commit.id), "subject": commit.message.splitlines()[0] if commit.message else ""})
        if len(out) >= 50:
            break
    return out


def _evidence(repo: Repo, ids: list[str]) -> list[dict]:
    """Each cited observation, shortened; ids not in refs/aevolve/observations are marked missing."""
    if not ids:
        return []
    from aevolve._git.repo import OBSERVATIONS_REF
    from aevolve._state.observations import BATCH_DIR, batches

    at = repo.ref_target(OBSERVATIONS_REF)
    stored: dict = {}
    where: dict = {}
    for batch, records in batches(repo, at):  # the batch too: a link names the file
        for o in records:
            stored.setdefault(o.get("id"), o)
            where.setdefault(o.get("id"), f"{BATCH_DIR}/{batch}")
    out = []
    for oid in ids:
        obs = stored.get(oid)
        if obs is None:
            out.append({"id": oid, "found": False})
            continue
        feedback = obs.get("feedback") if isinstance(obs.get("feedback"), dict) else {}
        out.append({
            "id": oid, "found": True,
            "task": readable(obs.get("task", "")),
            "output": readable(obs.get("output", ""), 160),
            "success": feedback.get("success"),
            "score": feedback.get("score"),
            "feedback": readable({k: v for k, v in feedback.items() if k not in ("success", "score")} or ""),
            "ts": obs.get("ts"),
            "batch": where.get(oid), "at": at,
        })
    return out


def readable(value, limit: int = SHORT) -> str:
    """A value as a person reads it: text as is, a mapping as `key: value; ...`, a list
    joined; nested values as compact JSON. One line of at most `limit` characters."""
    if isinstance(value, dict):
        text = "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)}"
                         for k, v in value.items())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "; ".join(value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return short(text, limit)


def gate_summary(repo: Repo, commit: str, main_commit: str) -> dict:
    """The gate note on `commit` as a reviewer needs it; status absent / current / stale."""
    return summarize_report(read_gate_report(repo, commit), main_commit)


def summarize_report(report: dict | None, main_commit: str) -> dict:
    """A gate report (already read) as a reviewer needs it; status absent / current / stale."""
    from aevolve._gate.report import clean_cases, flip_groups

    if report is None:
        return {"status": "absent"}
    cases = clean_cases(report.get("cases"))
    summary = report.get("summary")
    summary = summary if isinstance(summary, dict) else {}
    baseline = report.get("baseline")
    out: dict[str, Any] = {
        "status": "current" if baseline == main_commit else "stale",
        "decision": report.get("decision"),
        "baseline": baseline,
        "main": main_commit,
        "reasons": list(report.get("reasons") or []),
        "candidate_pass_rate": summary.get("candidate_pass_rate", _rate(cases, "candidate")),
        "baseline_pass_rate": summary.get("baseline_pass_rate", _rate(cases, "baseline")),
        "regressions": [c for c in cases if c.get("regressed") or c.get("verdict") == "regression"],
        "improvements": [c for c in cases if c.get("verdict") in ("improvement", "new-pass")],
        "errors": list(report.get("errors") or []),
        "unchanged": sum(1 for c in cases if c.get("verdict") in ("pass", "fail") and not c.get("regressed")),
        "cases": len(cases),
        "shard": report.get("shard"),
        "flips": flip_groups(cases),  # regressions, fixes, still_failing: each case with its outputs
        "report": {"cases": cases, "summary": summary, "candidate": report.get("candidate")},
    }
    if not cases and report.get("regressions"):  # a report without per-case detail
        out["regressions"] = [{"id": i} for i in report["regressions"]]
        out["improvements"] = [{"id": i} for i in report.get("improvements") or []]
    cand, base = out["candidate_pass_rate"], out["baseline_pass_rate"]
    out["delta"] = round(cand - base, 6) if cand is not None and base is not None else None
    return out


def _rate(cases: list[dict], side: str) -> float | None:
    rates = []
    for c in cases:
        s = c.get(side) or {}
        if s.get("pass_rate") is not None:
            rates.append(s["pass_rate"])
        elif s.get("runs"):
            rates.append(s.get("passes", 0) / s["runs"])
    return round(sum(rates) / len(rates), 6) if rates else None


# -- Markdown ----------------------------------------------------------------------------


def _fold(summary: str, lines: list[str]) -> list[str]:
    if len(lines) <= FOLD_LINES:
        return lines
    return [f"<details><summary>{summary}</summary>", "", *lines, "", "</details>"]


def _side(side: dict | None) -> str:
    if not side:
        return "–"
    text = f"{side.get('passes', 0)}/{side.get('runs', 0)} pass"
    return text + (f", {side['errors']} error" if side.get("errors") else "")


def _pct(rate) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def _markdown(r: Review) -> str:
    out = [f"## {r.subject}", ""]
    facts = [f"`{r.branch}` @ {commit_link(r, r.commit)} into `{r.base}` @ {commit_link(r, r.base_commit)}"]
    if r.rationale:
        if r.rationale.evolver:
            facts.append(f"evolver `{r.rationale.evolver}`")
        if r.rationale.proposal_id:
            facts.append(f"proposal `{r.rationale.proposal_id}`")
    out += [" · ".join(facts), ""]
    if len(r.commits) > 1:
        out += [f"{len(r.commits)} commits:", ""] + [f"- {commit_link(r, c['commit'])} {c['subject']}"
                                                    for c in r.commits] + [""]
    if r.rationale:
        for title, text in (("Diagnosis", r.rationale.diagnosis), ("Change", r.rationale.change),
                            ("Expected effect", r.rationale.expected_effect)):
            out += [f"### {title}", "", text or "_(empty)_", ""]
    else:
        body = "\n".join(r.message.splitlines()[1:]).strip()
        out += ["_Not an aevolve proposal: no rationale trailers._", ""]
        if body:
            out += ["### Description", "", body, ""]
    from aevolve._gate.report import Part, fit

    evidence = _evidence_md(r)
    gate_head, gate_units = _gate_md(r)
    parts = [Part(["\n".join(out)])]
    if evidence:
        parts.append(Part(evidence))
    if r.diff is not None:
        parts.append(Part(markdown_units(r.diff, level=3, full=r.full), "semantic diff blocks",
                          f"See them all with `aevolve diff {(r.merge_base or r.base_commit)[:12]} {r.commit[:12]}`."))
    parts.append(Part(["\n".join(gate_head)]))
    if gate_units:
        parts.append(Part(gate_units, "flips' outputs, tag and cost tables",
                          f"The gate note holds them all: `git notes --ref=aevolve show {r.commit[:12]}`."))
    return fit(parts).rstrip() + "\n"


def _evidence_md(r: Review) -> list[str]:
    """The cited observations as text a person reads: outcome, task, feedback, the agent's output."""
    if not r.rationale:
        return []
    head = f"### Evidence ({len(r.evidence)} observation{'s' if len(r.evidence) != 1 else ''})\n"
    if not r.evidence:
        return [head + "\nNone cited.\n"]
    lines = []
    for e in r.evidence:
        if not e["found"]:
            lines.append(f"- `{e['id']}` — _not found in refs/aevolve/observations_ "
                         "(fetch it: `aevolve sync`)")
            continue
        mark = _MARKS.get(e["success"], "•") if isinstance(e.get("success"), bool) else "•"
        success = e.get("success")
        outcome = ("succeeded" if success else "failed") if isinstance(success, bool) else "no outcome"
        score = f", score {e['score']}" if e.get("score") is not None else ""
        line = f"- {mark} {_observation_link(r, e)} {outcome}{score} — **task:** {e['task']}"
        if e.get("feedback"):
            line += f"  \n  **feedback:** {e['feedback']}"
        if e.get("output"):
            line += f"  \n  **output:** {e['output']}"
        lines.append(line)
    missing = sum(1 for e in r.evidence if not e["found"])
    summary = f"{len(r.evidence)} observations" + (f", {missing} missing" if missing else "")
    return [head + "\n" + "\n".join(_fold(summary, lines)) + "\n"]


def _gate_md(r: Review) -> tuple[list[str], list[str]]:
    """(the verdict, reasons and flip table, kept whole; the rest as pieces that may be dropped)."""
    from aevolve._gate.report import evidence_units

    g = r.gate
    out = [f"### Gate results against `{r.base}`", ""]
    if g.get("status") == "absent":
        return out + [f"**Not gated yet** — run `aevolve gate {r.branch}`.", ""], []
    mark = {"accept": "✅ **accepted**", "reject": "❌ **rejected**", "partial": "🧩 **partial** (one shard)"}.get(
        g["decision"], g["decision"])
    out.append(f"{mark} — pass rate {_pct(g['baseline_pass_rate'])} → {_pct(g['candidate_pass_rate'])}"
               + (f" ({g['delta']:+.1%})" if g.get("delta") is not None else "")
               + f" over {g['cases']} case{'s' if g['cases'] != 1 else ''}.")
    out.append("")
    if g["status"] == "stale":
        out += [f"> [!WARNING]\n> **stale:** gated against `{(g['baseline'] or 'nothing')[:12]}`, "
                f"{r.base} is now `{g['main'][:12]}` — run `aevolve gate {r.branch}` again.", ""]
    out += [f"- {reason}" for reason in g["reasons"]]
    if g["reasons"]:
        out.append("")
    units = evidence_units(g.get("report") or {}, level=4, full=r.full)
    if units and units[0].startswith("#### Flips"):
        out.append(units.pop(0))
    elif g["regressions"] or g["improvements"]:  # a report without per-case detail: ids only
        out += [f"- regression: `{c.get('id')}`" for c in g["regressions"]]
        out += [f"- improvement: `{c.get('id')}`" for c in g["improvements"]]
        out.append("")
    if g["errors"]:
        lines = [f"- `{e.get('case', '?')}` [{e.get('side', '?')}]: {short(e.get('error', ''), 160)}"
                 for e in g["errors"] if isinstance(e, dict)]
        units.append("\n".join([f"#### Runner errors ({len(lines)})", "", *_fold(f"{len(lines)} errors", lines), ""]))
    units.append(f"{g['unchanged']} case{'s' if g['unchanged'] != 1 else ''} unchanged.\n")
    return out, units
