"""The gate: judge one transition of the state, baseline -> candidate, and note the verdict.

A verdict is about exactly one transition: a commit against its first parent.
`gate(repo, candidate)` walks the candidate's first-parent line down to the
baseline and judges each commit on it that has no admissible verdict yet,
oldest first. For each transition it reads the exam from the baseline (never
the candidate), classifies the change (evolver, manual, maintainer), checks it
statically, runs the cases on both trees and decides. It fails closed: what it
cannot judge is an error, never an acceptance. `collect` merges shard reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aevolve._gate.report import GateReport

if TYPE_CHECKING:
    from aevolve._gate.suite import Exam
    from aevolve._state.model import State

__all__ = ["gate", "collect", "GateReport"]

FAILURES_KEPT = 3
OUTPUT_RUNS_KEPT = 3  # runs per side whose output a report keeps for a case that is not pass->pass
STDERR_IN_REPORT = 600
SIDES = ("baseline", "candidate")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(repo):
    from aevolve._git.repo import Repo

    return repo if isinstance(repo, Repo) else Repo.open(repo)


def _is_commit_id(repo, name: str) -> bool:
    return len(name) == 40 and all(c in "0123456789abcdef" for c in name) and repo.try_resolve(name) is not None


@dataclass
class Transition:
    """What is being judged: the two commits, their states, the exams and the kind of change."""

    base: str
    cand: str
    base_state: State
    cand_state: State
    old: Exam  # the exam at the baseline
    new: Exam | None  # the candidate's exam, for a maintainer change of the exam
    kind: str  # evolver | manual | maintainer
    outside: list[str]  # paths outside the evolvable layers

    @property
    def exam(self) -> Exam:
        return self.new or self.old

    @property
    def base_tree(self) -> str:
        return str(self.base_state.tree_id)  # states read from commits always know their tree

    @property
    def cand_tree(self) -> str:
        return str(self.cand_state.tree_id)


def read_transition(repo, base: str, cand: str) -> Transition:
    from aevolve._gate.suite import Exam
    from aevolve._state.model import State
    from aevolve._trust.exam import exam_digest, outside_layers
    from aevolve._trust.verdicts import is_evolver_commit

    base_state, cand_state = State.from_tree(repo, base), State.from_tree(repo, cand)
    old = Exam.of(base_state)  # the exam is always the baseline's
    changed = [p for p in set(base_state.files) | set(cand_state.files)
               if _entry(base_state, p) != _entry(cand_state, p)]
    outside = outside_layers(changed, base_state.evolvable_layers(), old.cfg)
    if is_evolver_commit(repo.message(cand)):
        kind = "evolver"
    else:
        kind = "maintainer" if outside else "manual"
    new = None
    if kind == "maintainer":
        files = {p: f.oid for p, f in cand_state.files.items()}
        if exam_digest(files, lambda p: cand_state.read(p) if p in cand_state.files else None) != old.digest:
            new = Exam.of(cand_state)
    return Transition(base, cand, base_state, cand_state, old, new, kind, outside)


def _entry(state, path: str):
    f = state.files.get(path)
    return (f.oid, f.mode) if f else None


def static_checks(repo, t: Transition) -> list[str]:
    """Why the candidate may not even be tested: ancestry, what an evolver touched, validity."""
    from aevolve._state.validate import validate_state

    problems = []
    if t.cand == t.base or not repo.is_ancestor(t.base, t.cand):
        problems.append(f"candidate {t.cand[:12]} does not descend from the baseline {t.base[:12]}: "
                        "rebase it onto the baseline first")
    if t.kind == "evolver" and t.outside:
        shown = ", ".join(t.outside[:10]) + (" ..." if len(t.outside) > 10 else "")
        layers = ", ".join(t.base_state.evolvable_layers())
        problems.append(f"an evolver commit may change only the evolvable layers ({layers}; no protected path, "
                        f"no .git* file); it changes: {shown}. People change those in a maintainer commit "
                        "(no Aevolve-Proposal trailer), which needs approval")
    known = {str(p) for p in validate_state(t.base_state, repo).errors}
    # main's own errors are not the candidate's fault
    errors = [p for p in validate_state(t.cand_state, repo).errors if str(p) not in known]
    problems += [f"candidate state does not validate: {p}" for p in errors[:5]]
    if len(errors) > 5:
        problems.append(f"candidate state does not validate: {len(errors) - 5} more error(s)")
    return problems


def gate(repo, candidate: str, *, base: str = "main", jobs: int | None = None,
         shard: tuple[int, int] | None = None, use_cache: bool = True, progress: bool = False,
         write_note: bool = True, executor: str | None = None, ray_address: str | None = None) -> GateReport:
    """Gate `candidate` against `base`; complete reports are noted on their commits.

    `executor` ("local" or "ray") and `ray_address` override the baseline's
    gate.executor and gate.ray.address. Raises GateError when the candidate is
    already in `base` or the exam cannot judge.
    """
    from aevolve._gate.ray_executor import use

    with use(executor, ray_address):  # a Ray connection opened for this gate is closed at its end
        return _gate(repo, candidate, base, jobs, shard, use_cache, progress, write_note)


def _gate(repo, candidate: str, base: str, jobs: int | None, shard: tuple[int, int] | None, use_cache: bool,
          progress: bool, write_note: bool) -> GateReport:
    from aevolve._errors import GateError, UsageError
    from aevolve._git.reader import GitReader
    from aevolve._trust.record import store_report
    from aevolve._trust.verdicts import check_commit, local_trust

    repo = _open(repo)
    if shard is not None and not (1 <= shard[0] <= shard[1]):
        raise UsageError(f"--shard {shard[0]}/{shard[1]}: K must be between 1 and N")
    base_sha = base if _is_commit_id(repo, base) else repo.resolve_branch(base)
    cand_sha = str(repo.resolve(candidate).id)
    if repo.is_ancestor(cand_sha, base_sha):
        raise GateError(f"{candidate} ({cand_sha[:12]}) is already in {base}; nothing to gate "
                        "(a commit in main's history never gets a new verdict)")
    reader = GitReader(repo)
    chain = reader.first_parent_chain(base_sha, cand_sha) or [cand_sha]
    parent = base_sha
    if len(chain) > 1:
        trust = local_trust(repo)
        for n, sha in enumerate(chain[:-1], 1):
            if not check_commit(reader, sha, trust).valid:
                if shard is not None:
                    raise UsageError(f"{candidate} has {len(chain)} commits on top of {base}; gate it whole "
                                     "(or squash it) before sharding: a shard judges one transition")
                made: list = []
                report = judge(repo, parent, sha, jobs=jobs, use_cache=use_cache, progress=progress, share=made)
                store_report(repo, report.to_dict(), _runs_notes(repo, made, parent))
                if not report.accepted:
                    report.reasons.insert(0, f"commit {n} of {len(chain)} on top of {base} ({sha[:12]}) "
                                             "was not accepted, so the ones after it were not gated")
                    return report
            parent = sha
    made = []
    report = judge(repo, parent, cand_sha, jobs=jobs, shard=shard, use_cache=use_cache, progress=progress,
                   share=made)
    if write_note and shard is None:  # a shard publishes no runs: the next shard's plan must not move
        store_report(repo, report.to_dict(), _runs_notes(repo, made, parent))
    return report


def _runs_notes(repo, made: list, baseline: str) -> list:
    """The runs-notes changes that publish the runs a gate made (shared_runs)."""
    from aevolve._gate.shared_runs import note_changes

    return note_changes(repo, made, baseline) if made else []


def judge(repo, base: str, cand: str, *, jobs: int | None = None, shard: tuple[int, int] | None = None,
          use_cache: bool = True, progress: bool = False, share: list | None = None) -> GateReport:
    """The verdict on one transition base -> cand (nothing is written; the runs worth
    publishing are appended to `share`)."""
    from aevolve._errors import GateError
    from aevolve._gate.cases import content_hash
    from aevolve._gate.execute import execute
    from aevolve._gate.ray_executor import Executor
    from aevolve._gate.shards import plan_for

    started = time.perf_counter()
    t = read_transition(repo, base, cand)
    exam = t.exam
    if not exam.cases and not exam.allow_empty:
        raise GateError(f"no case matches gate.cases ({exam.cfg['gate'].get('cases')!r}) at {base[:12]}: "
                        "nothing could be judged. Add cases under evals/, or set gate.allow_empty: true "
                        "to accept changes without an exam")
    static = static_checks(repo, t)
    split = plan_for(repo, exam, shard[1], t.base_tree) if shard else None
    cases = split.select(exam.cases, shard[0]) if split and shard else exam.cases
    jobs = max(1, int(jobs or exam.cfg["gate"].get("jobs") or 1))
    where = Executor.resolve(exam.cfg)
    plan = [] if static else _plan(t, cases, shard, split)
    runs = execute(repo, plan, {"exam": exam, "old": t.old}, jobs=jobs, use_cache=use_cache, progress=progress,
                   share=share, executor=where)
    keep = Keep.of(repo, exam, base)
    entries, errors = _entries(cases, runs, exam, keep=keep)
    entries = _remeasure(repo, t, entries, runs, jobs, keep, where)
    decision, reasons, summary = _decide(repo, t, entries, errors, static, shard, len(exam.cases))
    summary["warnings"] = _warnings(cases, exam.policy["significance"])
    if exam.holdout and not static and shard is None:  # held-out cases: run apart, reported as counts only
        decision, reasons, summary["holdout"] = _holdout(repo, t, runs, jobs, use_cache, decision, reasons, where)
    return GateReport(
        candidate=cand, baseline=base, decision=decision, reasons=reasons,
        candidate_tree=t.cand_tree, baseline_tree=t.base_tree, cases=entries, errors=errors,
        static=static, summary=summary, policy=exam.policy,
        suite={"cases": len(exam.cases), "hash": content_hash(sorted((c.id, c.hash) for c in exam.cases)),
               "runner": exam.runner.hash, "max_output_bytes": exam.runner.max_output_bytes},
        shard={"index": shard[0], "count": shard[1], "plan": split.digest} if shard and split else None,
        timings={"total_s": round(time.perf_counter() - started, 3), "runs_started": runs.started,
                 "runs_cached": runs.cached, "runs_shared": runs.shared, "jobs": jobs},
        created=_now(), exam_digest=t.old.digest, change=t.kind,
        exam_change=_exam_change(t, runs, shard, split) if t.new else None,
        approvals=_approval_record(repo, t), notices=runs.notices,
    )


def _holdout(repo, t: Transition, runs, jobs: int, use_cache: bool, decision: str,
             reasons: list[str], where=None) -> tuple[str, list[str], dict]:
    """Run the held-out cases on both sides; (decision, reasons, the report's summary.holdout).

    Only counts leave this function: reports reach evolvers as history, and an evolver
    must never learn which held-out case failed (docs/evolve.md)."""
    from aevolve._gate.decision import apply_holdout, holdout_summary
    from aevolve._gate.execute import Job, execute

    held = t.exam.held_out()
    trees = {"baseline": t.base_tree, "candidate": t.cand_tree}
    plan = [Job(side, trees[side], "exam", c.id, rep) for c in held.cases for side in SIDES for rep in range(c.repeat)]
    done = execute(repo, plan, {"exam": held}, jobs=jobs, use_cache=use_cache, executor=where)
    runs.started += done.started
    runs.cached += done.cached
    section = holdout_summary(_entries(held.cases, done, held)[0])
    decision, reasons = apply_holdout(decision, reasons, section, t.exam.holdout_no_regressions)
    return decision, reasons, section


def _plan(t: Transition, cases, shard, split) -> list:
    from aevolve._gate.execute import Job

    trees = {"baseline": t.base_tree, "candidate": t.cand_tree}
    plan = [Job(side, trees[side], "exam", c.id, rep) for c in cases for side in SIDES for rep in range(c.repeat)]
    if t.new:  # the old exam on the baseline, to show what the new exam judges differently
        plan += [Job("old-exam", trees["baseline"], "old", c.id, rep)
                 for c in _in_shard(t.old.cases, shard, split) for rep in range(c.repeat)]
    return plan


def _in_shard(cases: list, shard, split) -> list:
    return split.select(cases, shard[0]) if shard and split else cases


@dataclass(frozen=True)
class Keep:
    """What the report keeps of each run's output as evidence (cases that are not pass->pass)."""

    bytes: int  # gate.report_output_bytes; 0 keeps assertion results but no output
    secrets: tuple[str, ...] = ()  # values redacted before the output is cut (a cut key would not match)

    @classmethod
    def of(cls, repo, exam: Exam, baseline: str) -> Keep:
        from aevolve._config import DEFAULTS
        from aevolve._trust.record import secret_names
        from aevolve._trust.secrets import secret_values

        cap = exam.cfg["gate"].get("report_output_bytes", DEFAULTS["gate"]["report_output_bytes"])
        cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0 else 0
        return cls(cap, tuple(secret_values(names=secret_names(repo, baseline))))

    def text(self, output: str) -> tuple[str, int | None]:
        """(the redacted output cut at `bytes`, its full size in bytes when it was cut, else None)."""
        from aevolve._trust.secrets import redact

        clean = redact(output or "", list(self.secrets))
        data = clean.encode("utf-8", "replace")
        if len(data) <= self.bytes:
            return clean, None
        return data[:self.bytes].decode("utf-8", "ignore"), len(data)  # a character cut in two is dropped

    def outputs(self, results: list) -> list[dict]:
        """The runs worth reading, failing ones first, at most OUTPUT_RUNS_KEPT (repeat order otherwise)."""
        order = sorted(range(len(results)), key=lambda rep: (results[rep].ok, rep))[:OUTPUT_RUNS_KEPT]
        return [self._run(rep, results[rep]) for rep in sorted(order)]

    def _run(self, rep: int, g) -> dict:
        run = g.run
        out: dict = {"repeat": rep, "passed": g.ok, "asserts": list(getattr(g, "asserts", []) or [])}
        if self.bytes:
            out["output"], full = self.text(run.output)
            if full is not None:
                out["output_bytes"] = full
        if run.status == "error":
            out["error"] = run.error
        out["latency_ms"] = round(run.latency_ms, 1)
        if run.cost is not None:
            out["cost"] = run.cost
        return out


def _side(results: list) -> dict:
    """Summarize the runs of one case on one side: [Graded]."""
    runs = len(results)
    passes = sum(1 for g in results if g.ok)
    errors = sum(1 for g in results if g.run.status == "error")
    failures: list[str] = []
    for g in results:
        for reason in ([f"runner error: {g.run.error}"] if g.run.status == "error" else g.reasons):
            if reason not in failures and len(failures) < FAILURES_KEPT:
                failures.append(reason)
    truncated = sorted({s for g in results for s in g.run.truncated})  # output cut at gate.max_output_bytes
    costs = [g.run.cost for g in results if g.run.cost is not None]  # mean over the runs that reported one
    return {"runs": runs, "passes": passes, "errors": errors,
            "pass_rate": round(passes / runs, 6) if runs else None, "failures": failures,
            "cached": bool(results) and all(g.run.cached for g in results),
            "latency_ms": round(sum(g.run.latency_ms for g in results) / runs, 1) if runs else None,
            "latency_source": _latency_source(results),
            **({"cost": round(sum(costs) / len(costs), 6)} if costs else {}),
            **({"truncated": truncated} if truncated else {})}


def _latency_source(results: list) -> str:
    """Whose latency a side reports: the runner's own (`latency_ms` in its JSON), ours, or both."""
    sources = {g.run.latency_source for g in results}
    return "mixed" if len(sources) > 1 else next(iter(sources), "measured")


def _entries(cases, runs, exam, sides=SIDES, keep: Keep | None = None) -> tuple[list[dict], list[dict]]:
    from aevolve._gate.decision import flip, judge_case
    from aevolve._gate.execute import Job

    trees: dict[str, str] = {}
    for job in runs.graded:
        trees.setdefault(job.side, job.tree)
    entries, errors = [], []
    for case in cases:
        if not all(side in trees for side in sides):
            break  # nothing ran (a static rejection)
        entry = {"id": case.id, "tags": case.tags, "repeat": case.repeat, "threshold": case.threshold,
                 "file": case.where}
        graded = {}
        for side in sides:
            results = [runs.graded[Job(side, trees[side], "exam", case.id, rep)] for rep in range(case.repeat)]
            graded[side] = results
            entry[side] = _side(results)
            for rep, g in enumerate(results):
                if g.run.status == "error":
                    errors.append({"case": case.id, "side": side, "repeat": rep, "error": g.run.error,
                                   "kind": g.run.error_kind, "exit_code": g.run.exit_code,
                                   "stderr": g.run.stderr[-STDERR_IN_REPORT:],
                                   **({"truncated": g.run.truncated} if g.run.truncated else {})})
        entry = judge_case(entry, exam.policy["significance"])
        if keep is not None and flip(entry) != "pass_pass":  # what changed, or still fails, is evidence
            for side in sides:
                entry[side]["outputs"] = keep.outputs(graded[side])
        entries.append(entry)
    return entries, errors


def _remeasure(repo, t: Transition, entries: list[dict], runs, jobs: int, keep: Keep | None = None,
               where=None) -> list[dict]:
    """A latency regression (or improvement) counts only when a second measurement
    of both sides confirms it: one slow run on a loaded machine proves nothing."""
    from aevolve._gate.execute import Job, execute
    from aevolve._gate.suite import is_timed

    by_id = {c.id: c for c in t.exam.cases}
    moved = [e for e in entries if e.get("regressed") or e.get("verdict") == "improvement"]
    timed = [by_id[e["id"]] for e in moved if is_timed(by_id[e["id"]])]
    if not timed:
        return entries
    trees = {"baseline": t.base_tree, "candidate": t.cand_tree}
    plan = [Job(side, trees[side], "exam", c.id, rep) for c in timed for side in SIDES for rep in range(c.repeat)]
    again = execute(repo, plan, {"exam": t.exam}, jobs=jobs, use_cache=False, executor=where)
    runs.started += again.started
    second = {e["id"]: e for e in _entries(timed, again, t.exam, keep=keep)[0]}
    out = []
    for entry in entries:
        redo = second.get(entry["id"])
        if redo is None:
            out.append(entry)
        elif redo.get("verdict") == entry.get("verdict"):
            out.append({**entry, "remeasured": f"the {entry['verdict']} was confirmed by a second measurement"})
        else:
            out.append({**redo, "remeasured": f"a timed {entry['verdict']} was not confirmed by a second "
                                              "measurement of both sides; the second measurement counts"})
    return out


def _decide(repo, t: Transition, entries: list[dict], errors: list[dict], static: list[str], shard, total: int):
    """(decision, reasons, summary): static problems reject; what could not be judged is an error."""
    from aevolve._gate.decision import decide

    decision, reasons, summary = decide(entries, t.exam.policy, static)
    if static:
        return decision, reasons, summary
    failed = _unjudgeable(entries, errors, t.exam.max_errors)
    if failed:  # regressions found on the way are still worth reading
        reasons = failed + (reasons if decision == "reject" else [])
        decision = "error"
    elif t.kind == "maintainer" and decision == "accept":
        decision, more = _approval_decision(repo, t)
        reasons += more
    if shard is not None:
        reasons = [f"shard {shard[0]}/{shard[1]}: {len(entries)} of {total} case(s); "
                   "merge all shards with `aevolve gate --collect` to decide"] + reasons
        decision = "partial" if decision != "error" else decision
    return decision, reasons, summary


def _unjudgeable(entries: list[dict], errors: list[dict], max_errors: int) -> list[str]:
    """Why the runs cannot support a verdict: a side where every run errored, a run
    that wrote into its state dir, or more errored cases than gate.policy.max_errors allows."""
    out = []
    for side in SIDES:
        runs = sum((e.get(side) or {}).get("runs", 0) for e in entries)
        errs = [e for e in entries if (e.get(side) or {}).get("errors")]
        if runs and sum(e[side]["errors"] for e in errs) == runs:
            example = errs[0][side]["failures"][:1]
            out.append(f"every run on the {side} errored, so nothing was judged"
                       + (f" (e.g. {errs[0]['id']}: {example[0]})" if example else ""))
    tampered = sorted({e["case"] for e in errors if e.get("kind") == "tampered"})
    if tampered:  # its runs read files a runner wrote: nothing they say can be trusted
        out.append(f"runs wrote into their read-only state dir (cases {', '.join(tampered[:10])}); "
                   "the copies were rebuilt, but those runs cannot be judged")
    if out:
        return out
    errored = [e for e in entries if e["candidate"].get("errors") and not e.get("regressed")]
    if len(errored) > max_errors:
        ids = ", ".join(e["id"] for e in errored[:10]) + (" ..." if len(errored) > 10 else "")
        out.append(f"{len(errored)} case(s) errored on the candidate without a passing baseline to regress "
                   f"from, so they were not judged: {ids} (gate.policy.max_errors allows {max_errors})")
    return out


def _approvals(repo, t: Transition):
    from aevolve._git.reader import GitReader
    from aevolve._git.repo import APPROVALS_REF
    from aevolve._trust.approvals import count_approvals, parse_approvals
    from aevolve._trust.signing import allowed_signers_file

    reader = GitReader(repo)
    data = reader.note([reader.ref(APPROVALS_REF)], t.cand)
    return count_approvals(parse_approvals(data), t.cand, t.cand_tree, allowed_signers_file(repo))


def _approval_record(repo, t: Transition) -> list[dict] | None:
    """Who approved a maintainer change, as the report keeps it (None for other changes)."""
    if t.kind != "maintainer":
        return None
    return [{"signer": s} for s in _approvals(repo, t).signers]


def _approval_decision(repo, t: Transition) -> tuple[str, list[str]]:
    from aevolve._trust.exam import required_approvals

    needed = required_approvals(t.old.cfg)
    counted = _approvals(repo, t)
    what = "the exam" if t.new else "what no evolver may change"
    lines = [f"a maintainer change of {what} ({', '.join(t.outside[:5])}): "
             f"{len(counted.signers)} of {needed} required approval(s)"
             + (f" by {', '.join(counted.signers)}" if counted.signers else "")]
    if counted.checked_against is None and counted.signers:
        lines.append("no allowed signers list is configured here (gpg.ssh.allowedSignersFile or "
                     "aevolve.allowedSigners), so any valid signature counted as an approval")
    lines += [f"approval not counted: {p}" for p in counted.problems]
    if len(counted.signers) < needed:
        lines.append(f"approve it with `aevolve approve {t.cand[:12]}` (gate.exam_approvals: {needed})")
        return "reject", lines
    return "accept", lines


def _exam_change(t: Transition, runs, shard, split=None) -> dict:
    """Per case, what the new exam adds, removes and judges differently on the baseline's state."""
    from aevolve._gate.execute import Job

    assert t.new is not None  # only asked for a change of the exam

    def passes(exam_key: str, side: str, case) -> bool | None:
        results = [runs.graded.get(Job(side, t.base_tree, exam_key, case.id, rep)) for rep in range(case.repeat)]
        if not results or any(g is None for g in results):
            return None
        return sum(g.ok for g in results) / len(results) >= case.threshold - 1e-12

    old = {c.id: c for c in _in_shard(t.old.cases, shard, split)}
    new = {c.id: c for c in _in_shard(t.new.cases, shard, split)}
    added, removed, changed, unchanged = [], [], [], 0
    for cid in sorted(set(old) | set(new)):
        before = passes("old", "old-exam", old[cid]) if cid in old else None
        after = passes("exam", "baseline", new[cid]) if cid in new else None
        if cid not in old:
            added.append({"id": cid, "passes": after})
        elif cid not in new:
            removed.append({"id": cid, "passed": before})
        elif before != after or old[cid].hash != new[cid].hash:
            changed.append({"id": cid, "old": before, "new": after, "edited": old[cid].hash != new[cid].hash})
        else:
            unchanged += 1
    return {"new_digest": t.new.digest, "added": added, "removed": removed, "changed": changed,
            "unchanged": unchanged}


def _warnings(cases, significance: float) -> list[str]:
    from aevolve._gate.decision import min_p_value

    return sorted({f"case {c.id}: {c.repeat} repeats can never show a significant change at "
                   f"significance {significance:g}; use more repeats" for c in cases
                   if c.repeat > 1 and min_p_value(c.repeat) > significance})


def collect(repo, reports: list[dict], *, write_note: bool = True) -> GateReport:
    """Merge the partial reports of shards 1..N of one gate run and decide.

    The shards must together cover exactly the cases of the exam the repository
    holds for that transition, under the same exam digest, baseline and candidate.
    """
    from aevolve._errors import InvalidInput
    from aevolve._gate.decision import judge_case
    from aevolve._trust.record import store_report

    repo = _open(repo)
    first, count = _check_shards(reports)
    t = read_transition(repo, first["baseline"], first["candidate"])
    if first.get("exam_digest") != t.old.digest:
        raise InvalidInput(f"the shard reports were made under exam {str(first.get('exam_digest'))[:19]}, but the "
                           f"exam at {first['baseline'][:12]} is {t.old.digest[:19]}: gate the shards again")
    cases = [c for rep in reports for c in rep.get("cases") or []]
    ids = [c.get("id") for c in cases]
    expected = {c.id for c in t.exam.cases}
    static = static_checks(repo, t)
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidInput(f"case(s) {', '.join(map(str, dup[:5]))} appear in more than one shard report")
    if not static and set(ids) != expected:
        missing, extra = sorted(expected - set(ids)), sorted(set(ids) - expected)
        raise InvalidInput("the shard reports do not cover exactly the exam's cases: "
                           + (f"missing {', '.join(missing[:10])}" if missing else "")
                           + ("; " if missing and extra else "")
                           + (f"not in the exam {', '.join(map(str, extra[:10]))}" if extra else ""))
    policy = t.exam.policy
    order = {c.id: n for n, c in enumerate(t.exam.cases)}  # the unsharded gate's order (regressions too)
    cases = [judge_case(dict(c), policy["significance"])
             for c in sorted(cases, key=lambda c: (order.get(c["id"], len(order)), str(c["id"])))]
    errors = [e for rep in reports for e in rep.get("errors") or []]
    decision, reasons, summary = _decide(repo, t, cases, errors, static, None, len(expected))
    summary["warnings"] = sorted({w for rep in reports for w in (rep.get("summary") or {}).get("warnings", [])})
    timings = {"total_s": round(sum((r.get("timings") or {}).get("total_s", 0) for r in reports), 3),
               "runs_started": sum((r.get("timings") or {}).get("runs_started", 0) for r in reports),
               "runs_cached": sum((r.get("timings") or {}).get("runs_cached", 0) for r in reports),
               "runs_shared": sum((r.get("timings") or {}).get("runs_shared", 0) for r in reports),
               "shards": count}
    report = GateReport(
        candidate=t.cand, baseline=t.base, decision=decision, reasons=reasons,
        candidate_tree=t.cand_tree, baseline_tree=t.base_tree, cases=cases,
        errors=errors, static=static, summary=summary,
        policy=policy, suite=first.get("suite") or {}, shard=None, timings=timings, created=_now(),
        exam_digest=t.old.digest, change=t.kind,
        exam_change=_merge_exam_changes(reports) if t.new else None,
        approvals=_approval_record(repo, t),
        notices=sorted({n for rep in reports for n in rep.get("notices") or []}),
    )
    if write_note:
        store_report(repo, report.to_dict())
    return report


def _check_shards(reports: list[dict]) -> tuple[dict, int]:
    """The first report and the shard count, when the reports are shards 1..N of one run."""
    from aevolve._errors import InvalidInput

    if not reports:
        raise InvalidInput("no shard reports to collect")
    first = reports[0]
    same = ("candidate", "baseline", "candidate_tree", "baseline_tree", "exam_digest", "suite", "policy")
    seen: dict[int, int] = {}
    counts = set()
    for n, rep in enumerate(reports, 1):
        if not isinstance(rep, dict) or not isinstance(rep.get("shard"), dict):
            raise InvalidInput(f"report {n} is not a shard report (no 'shard'): "
                               "run `aevolve gate --shard K/N --output FILE`")
        for key in same:
            if rep.get(key) != first.get(key):
                raise InvalidInput(f"report {n} differs from report 1 in {key!r}: "
                                   "shards of different gate runs cannot be merged")
        index, count = rep["shard"].get("index"), rep["shard"].get("count")
        counts.add(count)
        if index in seen:
            raise InvalidInput(f"shard {index}/{count} given twice (reports {seen[index]} and {n})")
        seen[index] = n
    if not isinstance(first.get("candidate"), str) or not isinstance(first.get("baseline"), str):
        raise InvalidInput("the shard reports name no candidate or baseline commit")
    if len(counts) != 1:
        raise InvalidInput(f"shard reports disagree on the number of shards: {sorted(counts, key=str)}")
    plans = {str(rep["shard"].get("plan")) for rep in reports}
    if len(plans) != 1:
        raise InvalidInput("the shards split the cases differently (each plans from the run durations in its "
                           "clone's refs/notes/aevolve-runs): run `aevolve sync` in every shard's clone before "
                           "gating, and gate the shards again")
    count = counts.pop()
    missing = sorted(set(range(1, count + 1)) - set(seen)) if isinstance(count, int) else [1]
    if missing:
        raise InvalidInput(f"missing shard(s) {', '.join(f'{m}/{count}' for m in missing)}: "
                           f"all of 1..{count} are needed")
    return first, count


def _merge_exam_changes(reports: list[dict]) -> dict:
    parts = [r.get("exam_change") or {} for r in reports]
    merged = {"new_digest": parts[0].get("new_digest"), "unchanged": sum(p.get("unchanged", 0) for p in parts)}
    for key in ("added", "removed", "changed"):
        merged[key] = sorted((c for p in parts for c in p.get(key, [])), key=lambda c: c["id"])
    return merged
