"""The loop: each cycle plans K candidates, proposes, gates them against one main,
selects, promotes the winner and records it all on refs/aevolve/cycles.

The record is written before and after each step, so a killed loop, run again,
resumes the unfinished cycle: plans already proposed are found again (by the
record, or by the branch they left), verdicts already noted are read back, and
a winner already on main is not promoted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aevolve._errors import AevolveError, UsageError
from aevolve._evolve.plan import Plan, group_failures, history, open_failures, plan_cycle
from aevolve._evolve.records import load_records, write_record
from aevolve._faults import pause
from aevolve._git.repo import MAIN, Repo

DUPLICATE_PREFIX = "the same change is already proposed on "  # aevolve/_propose/run.py, _duplicate


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CycleResult:
    cycle: int
    status: str  # proposing | gated | done
    base: str  # main when the cycle started: every candidate is gated against it
    candidates: list[dict] = field(default_factory=list)
    choice: dict | None = None
    promoted: bool = False
    main: str = ""  # main after the cycle
    pass_rate: float | None = None  # main's gate pass rate after the cycle (None: nothing was gated)
    gain: float = 0.0  # gate pass-rate gain promoted this cycle
    holdout_pass_rate: float | None = None
    holdout_gain: float | None = None
    compute: dict = field(default_factory=dict)
    resumed: bool = False

    @classmethod
    def of(cls, record: dict, resumed: bool = False) -> CycleResult:
        choice = record.get("choice") or None
        winner = _winner(record)
        gated = [c for c in record.get("candidates") or [] if c.get("decision")]
        promoted = bool(choice and choice.get("promoted"))
        if promoted and winner:
            rate, gain = winner.get("pass_rate"), float(winner.get("gain") or 0.0)
            hold = winner.get("holdout") or {}
            h_rate, h_gain = hold.get("candidate_pass_rate"), hold.get("gain")
        else:
            rate = gated[0].get("baseline_pass_rate") if gated else None
            hold = (gated[0].get("holdout") or {}) if gated else {}
            gain, h_rate, h_gain = 0.0, hold.get("baseline_pass_rate"), (0.0 if hold else None)
        return cls(cycle=record["cycle"], status=record.get("status", ""), base=record.get("base", ""),
                   candidates=list(record.get("candidates") or []), choice=choice, promoted=promoted,
                   main=record.get("main_after") or record.get("base", ""), pass_rate=rate, gain=gain,
                   holdout_pass_rate=h_rate, holdout_gain=h_gain, compute=dict(record.get("compute") or {}),
                   resumed=resumed)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class EvolveResult:
    main_before: str | None
    main_after: str | None = None
    cycles: list[CycleResult] = field(default_factory=list)
    stopped_by: str = ""  # cycles | until | patience | max-runs | max-cost | nothing-to-do
    reason: str = ""
    compute: dict = field(default_factory=dict)

    @property
    def promoted(self) -> list[str]:
        return [c.main for c in self.cycles if c.promoted]

    def to_dict(self) -> dict:
        return {"main_before": self.main_before, "main_after": self.main_after, "stopped_by": self.stopped_by,
                "reason": self.reason, "promoted": self.promoted, "compute": self.compute,
                "cycles": [c.to_dict() for c in self.cycles]}


@dataclass
class Settings:
    cycles: int | None = 1
    candidates: int = 2
    evolvers: list[str] = field(default_factory=list)
    until: float | None = None
    patience: int | None = None
    max_runs: int | None = None
    allow_no_gain: bool = False
    evolver_options: dict = field(default_factory=dict)  # evolver name -> options
    jobs: int | None = None
    max_cost: float | None = None
    push: str | None = None  # a remote: sync before each cycle, publish promotions and cycle records


def _winner(record: dict) -> dict | None:
    choice = record.get("choice") or {}
    index = choice.get("candidate")
    cands = record.get("candidates") or []
    return cands[index] if isinstance(index, int) and 0 <= index < len(cands) else None


def evolve(repo: Repo | str | Path, *, cycles: int | None = 1, candidates: int = 2,
           evolvers: list[str] | None = None, until: float | None = None, patience: int | None = None,
           max_runs: int | None = None, allow_no_gain: bool = False, evolver_options: dict | None = None,
           jobs: int | None = None, max_cost: float | None = None, push: str | None = None,
           progress: Callable[[str], None] | None = None) -> EvolveResult:
    """Run the loop until a stop condition holds; resume an unfinished cycle first.

    `evolver_options` maps an evolver name to its options. Stops on `cycles`
    cycles run, main's pass rate reaching `until`, `patience` cycles in a row
    without a promotion, `max_runs` runner starts, `max_cost` spent (runner-reported
    cost plus the cost evolvers report), or nothing left to propose. With `push`
    (a remote) each cycle syncs first and publishes its promotion and the cycle records.
    """
    repo = repo if isinstance(repo, Repo) else Repo.open(repo)
    settings = _settings(repo, cycles, candidates, evolvers, until, patience, max_runs, allow_no_gain,
                         evolver_options, jobs)
    settings.max_cost, settings.push = _check_cost(max_cost), _check_remote(repo, push)
    say = progress or (lambda line: None)
    with repo.lock("evolve", timeout=5):  # one loop per repository: two would propose the same plans
        from aevolve._gate.ray_executor import use

        with use():  # one Ray connection for every gate of the loop (when the exam runs on Ray)
            return _loop(repo, settings, say)


def _settings(repo, cycles, candidates, evolvers, until, patience, max_runs, allow_no_gain, options, jobs):
    from aevolve._propose.run import default_evolver

    if cycles is not None and cycles < 1:
        raise UsageError(f"--cycles {cycles}: give 1 or more")
    if candidates < 1:
        raise UsageError(f"--candidates {candidates}: give 1 or more")
    if until is not None and not 0.0 <= until <= 1.0:
        raise UsageError(f"--until {until}: a pass rate between 0 and 1")
    if patience is not None and patience < 1:
        raise UsageError(f"--patience {patience}: give 1 or more")
    if max_runs is not None and max_runs < 1:
        raise UsageError(f"--max-runs {max_runs}: give 1 or more")
    names = list(dict.fromkeys(evolvers or [])) or [default_evolver(repo)]
    return Settings(cycles, candidates, names, until, patience, max_runs, allow_no_gain, dict(options or {}), jobs)


def _check_cost(max_cost: float | None) -> float | None:
    if max_cost is not None and not max_cost > 0:
        raise UsageError(f"--max-cost {max_cost}: give a cost above 0 (in the unit your runner reports)")
    return max_cost


def _check_remote(repo: Repo, remote: str | None) -> str | None:
    if remote is not None:
        from aevolve._remote.fetch import check_remote

        check_remote(repo, remote)
    return remote


COMPUTE_KEYS = ("runner_starts", "runs_cached", "evolver_calls", "tokens", "runner_cost", "evolver_cost", "cost")


def _loop(repo: Repo, s: Settings, say: Callable[[str], None]) -> EvolveResult:
    result = EvolveResult(main_before=repo.ref_target(MAIN))
    totals: dict = {key: 0 for key in COMPUTE_KEYS}
    quiet = 0
    while True:
        stop = _budget_stop(s, len(result.cycles), totals)
        if stop:
            result.stopped_by, result.reason = stop
            break
        if s.push:
            _sync(repo, s.push, say)
        records = load_records(repo)
        last = records[-1] if records else None
        resumed = bool(last and last.get("status") != "done")
        record = last if resumed else _new_cycle(repo, records, s)
        if record is None:
            result.stopped_by = "nothing-to-do"
            result.reason = "no open failure is left that was not tried: every failed observation is fixed on main " \
                            "or its candidates were rejected, changed nothing or gained nothing"
            break
        assert record is not None
        if resumed:
            say(f"cycle {record['cycle']}: resuming ({record.get('status')}) from refs/aevolve/cycles")
        before = dict(record.get("compute") or {})
        _run_cycle(repo, record, s, say)
        for key in totals:
            totals[key] += (record.get("compute") or {}).get(key, 0) - before.get(key, 0)
        for key in ("runner_cost", "evolver_cost", "cost"):
            totals[key] = round(totals[key], 9)
        cycle = CycleResult.of(record, resumed)
        result.cycles.append(cycle)
        quiet = 0 if cycle.promoted else quiet + 1
        stop = _after_cycle_stop(s, cycle, quiet)
        if stop:
            result.stopped_by, result.reason = stop
            break
    result.main_after = repo.ref_target(MAIN)
    result.compute = totals
    say(f"stopped: {result.reason}")
    return result


def _budget_stop(s: Settings, done: int, totals: dict) -> tuple[str, str] | None:
    if s.cycles is not None and done >= s.cycles:
        return "cycles", f"ran {done} cycle(s) (--cycles {s.cycles})"
    if s.max_runs is not None and totals["runner_starts"] >= s.max_runs:
        return "max-runs", f"{totals['runner_starts']} runner starts reached the budget (--max-runs {s.max_runs})"
    if s.max_cost is not None and totals["cost"] >= s.max_cost:
        return "max-cost", (f"cost {totals['cost']:.6g} reached the budget (--max-cost {s.max_cost:g}): "
                            f"{totals['runner_cost']:.6g} reported by the runner, {totals['evolver_cost']:.6g} "
                            "reported by evolvers")
    return None


def _sync(repo: Repo, remote: str, say: Callable[[str], None]) -> None:
    from aevolve._remote.sync import sync

    got = sync(repo, remote)
    say(f"synced {remote}: main {got.main.state}, {got.observations.added} new observation(s)"
        if got.changed else f"synced {remote}: up to date")


def _after_cycle_stop(s: Settings, cycle: CycleResult, quiet: int) -> tuple[str, str] | None:
    if s.until is not None and cycle.pass_rate is not None and cycle.pass_rate + 1e-12 >= s.until:
        return "until", f"main's gate pass rate {cycle.pass_rate:.3f} reached --until {s.until:g}"
    if s.patience is not None and quiet >= s.patience:
        return "patience", f"{quiet} cycle(s) in a row promoted nothing (--patience {s.patience})"
    return None


# -- one cycle -------------------------------------------------------------------------


def _new_cycle(repo: Repo, records: list[dict], s: Settings) -> dict | None:
    """The record of a new cycle with its plans (written), or None when there is nothing to propose."""
    from aevolve._state.observations import load_observations

    number = (records[-1]["cycle"] + 1) if records else 1
    past = history(repo, records)
    groups = group_failures(open_failures(load_observations(repo), past), past)
    plans = plan_cycle(groups, s.evolvers, s.candidates, number, past)
    if not plans:
        return None
    record = {
        "version": 1, "cycle": number, "status": "proposing", "base": repo.resolve_branch(MAIN),
        "started": _now(), "settings": {"candidates": s.candidates, "evolvers": s.evolvers},
        "groups": [{"symptom": g.key, "observations": g.observations, "tainted": g.tainted} for g in groups],
        "plans": [p.to_dict() for p in plans], "candidates": [], "choice": None,
        "compute": {key: 0 for key in COMPUTE_KEYS},
    }
    write_record(repo, record)
    return record


def _run_cycle(repo: Repo, record: dict, s: Settings, say: Callable[[str], None]) -> None:
    number = record["cycle"]
    if record.get("status") == "proposing":
        plans = [Plan.from_dict(p) for p in record.get("plans") or []]
        say(f"cycle {number}: {len(plans)} candidate(s) on main {record['base'][:12]}, "
            f"{len(record.get('groups') or [])} open failure group(s)")
        learned = evolver_history(repo, load_records(repo))
        for index, plan in enumerate(plans):
            if any(c.get("plan") == index for c in record["candidates"]):
                continue  # proposed before a kill
            cand = _propose_one(repo, record, index, plan, s, learned)
            record["candidates"].append(cand)
            say(f"  propose {index + 1}/{len(plans)} ({plan.evolver}, {len(plan.observations)} obs): "
                + (cand.get("branch") or "") + (f" {cand['outcome']}" if cand["outcome"] != "proposed" else ""))
            write_record(repo, record)
        for cand in record["candidates"]:
            if cand["outcome"] == "proposed":
                _gate_one(repo, record, cand, s)
                say(f"  gate {cand['branch']}: {cand['outcome']} ({len(cand.get('improvements') or [])} fixed, "
                    f"{len(cand.get('regressions') or [])} regressed{_holdout_text(cand)})")
                write_record(repo, record)
        _try_merge(repo, record, s, say)
        record["choice"] = select(record["candidates"], s.allow_no_gain)
        _ablate(repo, record, s, say)
        record["status"] = "gated"
        write_record(repo, record)
    pause("evolve-cycle")
    if record.get("status") == "gated":
        _promote_choice(repo, record, s.push)
        record["pruned"] = _prune_done(repo, record, s.push, say)
        record["status"], record["finished"] = "done", _now()
        record["main_after"] = repo.ref_target(MAIN)
        write_record(repo, record)
        if s.push:
            _publish_records(repo, s.push, say)
    choice = record.get("choice") or {}
    say(f"cycle {number}: " + ("promoted " + str(choice.get("branch")) if choice.get("promoted")
                               else "promoted nothing") + f": {choice.get('why', '')}")


def _holdout_text(cand: dict) -> str:
    hold = cand.get("holdout")
    if not hold:
        return ""
    return f"; held-out {hold.get('baseline_pass_rate')} -> {hold.get('candidate_pass_rate')}"


def _propose_one(repo: Repo, record: dict, index: int, plan: Plan, s: Settings, learned: list[dict]) -> dict:
    from aevolve._propose.run import propose

    cand: dict = {"plan": index, "evolver": plan.evolver, "observations": plan.observations, "group": plan.group}
    found = _left_by_a_kill(repo, record, plan)
    if found:
        return {**cand, "outcome": "proposed", "branch": found[0], "commit": found[1], "reused": True}
    record["compute"]["evolver_calls"] += 1
    try:
        got = propose(repo, evolver=plan.evolver, base=record["base"], observation_ids=plan.observations,
                      evolver_options=s.evolver_options.get(plan.evolver) or None, seed=plan.seed,
                      temperature=plan.temperature, history=learned)
    except AevolveError as exc:
        return {**cand, "outcome": "failed", "reason": str(exc)}
    usage = (got.proposal.usage if got.proposal else None) or {}
    record["compute"]["tokens"] += int(usage.get("total_tokens")
                                       or (usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)))
    _add_cost(record, "evolver_cost", usage.get("cost"))  # only an evolver that knows its price reports one
    if got.nothing_to_do:
        if got.reason.startswith(DUPLICATE_PREFIX):
            branch = got.reason.removeprefix(DUPLICATE_PREFIX).strip()
            if any(c.get("branch") == branch for c in record["candidates"]):
                return {**cand, "outcome": "duplicate", "branch": branch, "reason": got.reason}
            target = repo.ref_target(f"refs/heads/{branch}")
            if target:  # proposed before, by hand or by a killed loop: gate that branch
                return {**cand, "outcome": "proposed", "branch": branch, "commit": target, "reused": True}
        return {**cand, "outcome": "nothing", "reason": got.reason}
    return {**cand, "outcome": "proposed", "branch": got.branch, "commit": got.commit,
            "summary": got.summary, **({"usage": usage} if usage else {})}


NO_GAIN_REASON = ("accepted by the gate but not promoted: it fixed no case and raised no pass rate (no gain); "
                  "do not propose it again unchanged")


def evolver_history(repo: Repo, records: list[dict]) -> list[dict]:
    """What evolvers learn from, newest first: the gate reports of the loop's rejected and
    no-gain candidates (their branches may be pruned; the notes stay), then the rejected
    evolution branches `aevolve propose` shows them anyway."""
    from aevolve._git.notes import read_gate_report
    from aevolve._propose.rationale import parse
    from aevolve._propose.run import HISTORY_LIMIT, rejected_history

    found: list[dict] = []
    seen: set[str] = set()
    for record in reversed(records):
        for cand in record.get("candidates") or []:
            commit = cand.get("commit")
            if cand.get("outcome") not in ("rejected", "no-gain") or not isinstance(commit, str) or commit in seen:
                continue
            report = read_gate_report(repo, commit)
            if report is None:
                continue
            seen.add(commit)
            rationale = parse(repo.message(commit))
            entry = {**report, "branch": cand.get("branch"), "commit": commit,
                     "title": rationale.title if rationale else cand.get("branch")}
            if cand["outcome"] == "no-gain":
                entry.update(decision="no-gain", reasons=[NO_GAIN_REASON, *(report.get("reasons") or [])])
            found.append(entry)
    found += [h for h in rejected_history(repo) if h.get("commit") not in seen]
    return found[:HISTORY_LIMIT]


def _left_by_a_kill(repo: Repo, record: dict, plan: Plan) -> tuple[str, str] | None:
    """An evolve/* branch on this cycle's base whose evolver and evidence fit `plan`, not yet a
    candidate: a loop killed after proposing but before recording left it."""
    from aevolve._evolve.plan import combination
    from aevolve._propose.rationale import parse
    from aevolve._propose.run import BRANCH_PREFIX

    claimed = {c.get("branch") for c in record["candidates"]}
    wanted = set(plan.observations)
    for name, target in sorted(repo.refs(BRANCH_PREFIX).items()):
        branch = name.removeprefix("refs/heads/")
        commit = repo.resolve(target)
        if branch in claimed or [str(p) for p in commit.parent_ids] != [record["base"]]:
            continue
        rationale = parse(commit.message)
        if (rationale and rationale.evidence and set(rationale.evidence) <= wanted
                and combination(rationale.evolver, [])[0] == combination(plan.evolver, [])[0]
                and _recent(record, commit.commit_time)):
            return branch, target
    return None


def _recent(record: dict, commit_time: int) -> bool:
    started = datetime.strptime(record["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return commit_time >= int(started.timestamp()) - 1


def _gate_one(repo: Repo, record: dict, cand: dict, s: Settings) -> None:
    from aevolve._gate.run import gate

    try:
        report = gate(repo, cand["commit"], base=record["base"], jobs=s.jobs).to_dict()
    except AevolveError as exc:
        cand.update(outcome="error", reason=str(exc))
        return
    timings, summary = report.get("timings") or {}, report.get("summary") or {}
    record["compute"]["runner_starts"] += int(timings.get("runs_started") or 0)
    record["compute"]["runs_cached"] += int(timings.get("runs_cached") or 0)
    _add_runner_cost(record, summary)
    outcome = {"accept": "accepted", "reject": "rejected"}.get(report["decision"], "error")
    cand.update(outcome=outcome, decision=report["decision"], reasons=report.get("reasons") or [],
                improvements=report.get("improvements") or [], regressions=report.get("regressions") or [],
                gain=summary.get("gain") or 0.0, pass_rate=summary.get("candidate_pass_rate"),
                baseline_pass_rate=summary.get("baseline_pass_rate"), runs_started=timings.get("runs_started", 0),
                size=_size(repo, record["base"], cand["commit"]))
    hold = _holdout(report)
    if hold:
        cand["holdout"] = hold


def _add_cost(record: dict, key: str, value) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        compute = record["compute"]
        compute[key] = round(compute.get(key, 0) + value, 9)
        compute["cost"] = round(compute.get("cost", 0) + value, 9)


def _add_runner_cost(record: dict, summary: dict) -> None:
    """The runner-reported cost of a gate: the candidate's side, and the baseline's once per
    cycle (every candidate is gated against the same main, whose runs come from the cache)."""
    found = summary.get("cost")
    cost: dict = found if isinstance(found, dict) else {}
    sides = ["candidate"] if record.get("baseline_costed") else ["baseline", "candidate"]
    for side in sides:
        _add_cost(record, "runner_cost", (cost.get(side) or {}).get("total"))
    record["baseline_costed"] = True


def _holdout(report: dict) -> dict | None:
    """The held-out counts of a report (summary.holdout; None without held-out cases)."""
    hold = (report.get("summary") or {}).get("holdout")
    return dict(hold) if isinstance(hold, dict) and hold.get("cases") else None


def _size(repo: Repo, base: str, commit: str) -> int:
    """Lines added and removed: the smaller change wins a tie."""
    stats = repo.tree(base).diff_to_tree(repo.tree(commit)).stats
    return int(stats.insertions + stats.deletions)


# -- selecting and promoting ------------------------------------------------------------


def rank_key(cand: dict) -> tuple:
    """No regressions first, then most fixes, then highest pass rate, then the smallest change."""
    return (len(cand.get("regressions") or []), -len(cand.get("improvements") or []),
            -(cand.get("pass_rate") or 0.0), cand.get("size") or 0, cand.get("plan", 0))


def has_gain(cand: dict) -> bool:
    return bool(cand.get("improvements")) or float(cand.get("gain") or 0.0) > 1e-12


def select(cands: list[dict], allow_no_gain: bool = False) -> dict:
    """The choice among gated candidates (their outcomes refined: lost, no-gain), and why."""
    accepted = [c for c in cands if c.get("outcome") in ("accepted", "lost", "no-gain")]  # chosen again: refined anew
    for cand in accepted:
        cand["outcome"] = "accepted" if has_gain(cand) else "no-gain"
    pool = [c for c in accepted if allow_no_gain or has_gain(c)]
    if not pool:
        counts = {o: sum(1 for c in cands if c.get("outcome") == o) for o in
                  ("rejected", "no-gain", "nothing", "duplicate", "failed", "error")}
        shown = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no candidate"
        return {"candidate": None, "branch": None, "promote": False, "promoted": False,
                "why": f"no accepted candidate with a gain ({shown})"}
    pool.sort(key=rank_key)
    best = pool[0]
    for cand in pool[1:]:
        cand["outcome"] = "lost"
    fixes = best.get("improvements") or []
    why = (f"{len(fixes)} fix(es) ({', '.join(fixes[:5]) or 'none'}), no regressions, pass rate "
           f"{best.get('baseline_pass_rate')} -> {best.get('pass_rate')}, {best.get('size')} line(s) changed"
           + (f"; beat {len(pool) - 1} other accepted candidate(s)" if len(pool) > 1 else ""))
    if best.get("merge_of"):
        why += f"; a merge of candidates {best['merge_of'][0] + 1} and {best['merge_of'][1] + 1}, beating both"
    if best.get("without"):
        why += f"; candidate {best['ablation_of'] + 1} without {', '.join(best['without'])}, which fixed nothing"
    return {"candidate": cands.index(best), "branch": best["branch"], "commit": best["commit"],
            "promote": True, "promoted": False, "why": why}


# -- candidates built from candidates: merge and ablation ----------------------------------------


def _try_merge(repo: Repo, record: dict, s: Settings, say: Callable[[str], None]) -> None:
    """GEPA's merge: the two best accepted candidates with a gain that fix different cases and
    touch different files are combined into one more candidate, gated like the others."""
    from aevolve._evolve.bundle import parts_of, touched

    cands = record["candidates"]
    if any(c.get("merge_of") for c in cands):
        return  # done before a kill
    pool = sorted((c for c in cands if c.get("outcome") == "accepted" and has_gain(c)
                   and not c.get("regressions")), key=rank_key)
    for i, first in enumerate(pool):
        for second in pool[i + 1:]:
            if set(first.get("improvements") or []) & set(second.get("improvements") or []):
                continue
            a, b = parts_of(repo, record["base"], first["commit"]), parts_of(repo, record["base"], second["commit"])
            if not a or not b or touched(a) & touched(b):
                continue
            which = [cands.index(first), cands.index(second)]
            fixes = sorted({*first["improvements"], *second["improvements"]})
            rationale = {"title": f"combine candidates {which[0] + 1} and {which[1] + 1}: {len(fixes)} fixes",
                         "diagnosis": f"Two accepted candidates fix different cases ({', '.join(fixes)}) and "
                                      "change different files.",
                         "change": "Both candidates' changes, as one proposal: "
                                   + ", ".join(sorted(touched(a) | touched(b))),
                         "expected_effect": f"Fixes {', '.join(fixes)}; regresses nothing."}
            obs = list(dict.fromkeys([*first["observations"], *second["observations"]]))
            _build(repo, record, s, say, a + b, rationale, obs, {"group": "merge", "merge_of": which})
            return


def _ablate(repo: Repo, record: dict, s: Settings, say: Callable[[str], None]) -> None:
    """Judge evidence, not bundles: a winner of several parts is gated without each part in
    turn; a part whose removal keeps every fix earns no place, and the smallest candidate
    with the winner's gain is chosen (select ranks the smaller first on equal gain)."""
    from aevolve._evolve.bundle import MAX_PARTS, cited, parts_of

    winner = _winner(record)
    cands = record["candidates"]
    if winner is None or any(c.get("ablation_of") is not None for c in cands):
        return
    parts = parts_of(repo, record["base"], winner["commit"])
    if not parts or not 2 <= len(parts) <= MAX_PARTS:
        return
    index = cands.index(winner)
    say(f"  ablation of {winner['branch']}: {len(parts)} parts, each left out in turn")
    needless = []
    for part in parts:
        rest = [p for p in parts if p != part]
        built = _build(repo, record, s, say, rest, _ablation_rationale(winner, index, [part]),
                       cited(rest, winner["observations"]) or winner["observations"],
                       {"group": winner.get("group", ""), "ablation_of": index, "without": [part.label]})
        if built is not None and _same_gain(built, winner):
            needless.append(part)
    rest = [p for p in parts if p not in needless]
    if len(needless) >= 2 and rest:
        _build(repo, record, s, say, rest, _ablation_rationale(winner, index, needless),
               cited(rest, winner["observations"]) or winner["observations"],
               {"group": winner.get("group", ""), "ablation_of": index, "without": [p.label for p in needless]})
    record["choice"] = select(cands, s.allow_no_gain)


def _ablation_rationale(winner: dict, index: int, dropped: list) -> dict:
    labels = ", ".join(p.label for p in dropped)
    return {"title": f"ablation of candidate {index + 1}: without {len(dropped)} part(s)",
            "diagnosis": f"Ablation of {winner['branch']}: does each part earn its place? Left out: {labels}.",
            "change": f"{winner['branch']} without {labels}.",
            "expected_effect": f"The same fixes ({', '.join(winner.get('improvements') or [])}) with a smaller change."}


def _same_gain(cand: dict, winner: dict) -> bool:
    return (cand.get("outcome") == "accepted" and not cand.get("regressions")
            and set(winner.get("improvements") or []) <= set(cand.get("improvements") or [])
            and float(cand.get("pass_rate") or 0.0) + 1e-12 >= float(winner.get("pass_rate") or 0.0))


def _build(repo: Repo, record: dict, s: Settings, say: Callable[[str], None], parts: list, rationale: dict,
           observations: list[str], extra: dict) -> dict | None:
    """Propose `parts` on the cycle's base, gate it and add it to the candidates (None: not built)."""
    from aevolve._evolve.bundle import propose_parts

    branch, commit, why = propose_parts(repo, record["base"], parts, {**rationale, "evidence": observations})
    if branch is None and why.startswith(DUPLICATE_PREFIX):
        known = why.removeprefix(DUPLICATE_PREFIX).strip()
        if any(c.get("branch") == known for c in record["candidates"]):  # the same tree as a candidate: gated
            say(f"  {extra.get('group') or 'built'} candidate: {why}")
            return None
        branch, commit = known, repo.ref_target(f"refs/heads/{known}")  # built before a kill: gate it now
    cand = {"plan": None, "evolver": "patch", "observations": observations, **extra}
    if branch is None or commit is None:
        cand.update(outcome="failed" if why else "nothing", reason=why)
        record["candidates"].append(cand)
        write_record(repo, record)
        return None
    cand.update(outcome="proposed", branch=branch, commit=commit)
    record["candidates"].append(cand)
    _gate_one(repo, record, cand, s)
    what = "merge" if extra.get("merge_of") else "without " + ", ".join(extra.get("without") or [])
    say(f"  gate {branch} ({what}): {cand['outcome']} ({len(cand.get('improvements') or [])} fixed, "
        f"{len(cand.get('regressions') or [])} regressed)")
    write_record(repo, record)
    return cand


def _promote_choice(repo: Repo, record: dict, push: str | None = None) -> None:
    from aevolve._promote.promote import promote
    from aevolve._remote.publish import publish_promotion

    choice = record.get("choice") or {}
    winner = _winner(record)
    if not choice.get("promote") or winner is None:
        return
    branch = winner["branch"]
    try:
        if push:  # promoted onto the remote's main and pushed in one atomic push; the local main follows
            publish_promotion(repo, branch, push)
        else:
            promote(repo, branch)  # nothing to do when a killed run already promoted it
    except AevolveError as exc:
        choice.update(promoted=False, why=f"{choice.get('why')}; promotion failed: {exc}")
        winner["outcome"] = "lost"
        return
    target = repo.ref_target(f"refs/heads/{branch}") or winner["commit"]
    main = repo.ref_target(MAIN) or ""
    promoted = repo.is_ancestor(target, main) or repo.is_ancestor(winner["commit"], main)
    choice["promoted"] = promoted
    winner["outcome"] = "promoted" if promoted else "lost"


# -- after the choice: pruning and publishing ---------------------------------------------------


def _prune_done(repo: Repo, record: dict, push: str | None, say: Callable[[str], None]) -> list[str]:
    """Delete this cycle's candidate branches that `aevolve prune` would delete (promoted or
    rejected), judged by its rules; locally, and on `push` too. Their gate notes stay, and
    the cycle record keeps what the next cycle's evolvers learn from them."""
    from aevolve._git.repo import ZERO
    from aevolve._remote import prune as prune_mod

    mine = {c["branch"] for c in record.get("candidates") or []
            if c.get("branch") and c.get("outcome") in ("promoted", "rejected")}
    if not mine:
        return []
    try:
        judged = prune_mod.prune(repo, dry_run=True, remote=push)
    except AevolveError as exc:
        say(f"  prune: skipped ({exc})")
        return []
    local = [p for p in judged.deleted if p.ref.removeprefix("refs/heads/") in mine]
    if local:
        repo.transaction([(p.ref, ZERO, p.tip) for p in local])
    gone = [p.ref.removeprefix("refs/heads/") for p in local]
    if push:
        from aevolve._state.gitsetup import tracking_ref

        base = tracking_ref(push, "refs/heads/")
        remote = [p for p in judged.deleted if p.ref.startswith(base) and p.ref.removeprefix(base) in mine]
        if remote:
            try:
                prune_mod._delete_on_remote(repo, push, "evolve/", f"{base}evolve/", remote)
                gone += [f"{push}/{p.ref.removeprefix(base)}" for p in remote]
            except AevolveError as exc:
                say(f"  prune on {push}: {exc}")
    if gone:
        say(f"  pruned {len(gone)} branch(es) (promoted or rejected; their notes stay)")
    return gone


def _publish_records(repo: Repo, remote: str, say: Callable[[str], None]) -> None:
    """Push refs/aevolve/cycles (fast-forward only: never over another loop's records)."""
    from aevolve._evolve.records import CYCLES_REF
    from aevolve._remote.publish import push

    outcome = push(repo, remote, [f"{CYCLES_REF}:{CYCLES_REF}"])
    if not outcome.ok:
        say(f"cycle records not published to {remote}: {outcome.summary}")
