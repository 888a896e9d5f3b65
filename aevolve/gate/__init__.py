"""The gate: run the regression suite on a candidate and its baseline, and decide.

`gate(repo, candidate)` checks the candidate statically (it validates, protected
paths are unchanged, it descends from the baseline), runs every case on both
trees (cached by content), judges each case, applies the policy and notes the
report on the candidate commit. `collect` merges the partial reports of shards.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone

from ..api import callable_module
from .report import GateReport

__all__ = ["gate", "collect", "GateReport"]

FAILURES_KEPT = 3
STDERR_IN_REPORT = 600


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(repo):
    from ..repo import Repo

    return repo if isinstance(repo, Repo) else Repo.open(repo)


def static_checks(repo, base_commit, cand_commit, base_state, cand_state, cfg) -> list[str]:
    """Why the candidate may not even be tested: ancestry, protected paths, validity."""
    from ..config import is_protected
    from ..validate import validate

    problems = []
    if base_commit.id != cand_commit.id and not repo.git.descendant_of(cand_commit.id, base_commit.id):
        problems.append(f"candidate {str(cand_commit.id)[:12]} does not descend from the baseline "
                        f"{str(base_commit.id)[:12]}: rebase it onto the baseline first")
    changed = []
    for path in sorted(set(base_state.files) | set(cand_state.files)):
        if not is_protected(path, cfg):
            continue
        a, b = base_state.files.get(path), cand_state.files.get(path)
        if ((a.oid, a.mode) if a else None) != ((b.oid, b.mode) if b else None):
            changed.append(path)
    if changed:
        shown = ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else "")
        problems.append(f"protected path(s) differ from the baseline (a candidate may not change its own exam): {shown}")
    report = validate(cand_state, repo)
    for problem in report.errors[:5]:
        problems.append(f"candidate state does not validate: {problem}")
    if len(report.errors) > 5:
        problems.append(f"candidate state does not validate: {len(report.errors) - 5} more error(s)")
    return problems


def _side(results: list[tuple]) -> dict:
    """Summarize the runs of one case on one side: [(RunResult, passed, failures)]."""
    runs = len(results)
    passes = sum(1 for _, ok, _ in results if ok)
    errors = sum(1 for run, _, _ in results if run.status == "error")
    failures: list[str] = []
    for run, ok, reasons in results:
        for reason in ([f"runner error: {run.error}"] if run.status == "error" else reasons):
            if reason not in failures and len(failures) < FAILURES_KEPT:
                failures.append(reason)
    return {"runs": runs, "passes": passes, "errors": errors,
            "pass_rate": round(passes / runs, 6) if runs else None, "failures": failures,
            "cached": bool(results) and all(run.cached for run, _, _ in results),
            "latency_ms": round(sum(run.latency_ms for run, _, _ in results) / runs, 1) if runs else None}


def gate(repo, candidate: str, *, base: str = "main", jobs: int | None = None,
         shard: tuple[int, int] | None = None, use_cache: bool = True, progress: bool = False,
         write_note: bool = True) -> GateReport:
    """Gate `candidate` against `base`; a complete report is noted on the candidate commit."""
    from ..errors import UsageError
    from ..notes import write_gate_report
    from ..state import State
    from .assertions import AssertContext, grade
    from .cases import content_hash, load_cases, select_shard
    from .decision import decide, judge_case, min_p_value
    from .materialize import materialize
    from .results_cache import ResultsCache
    from .runner import RunnerConfig, kill_all, run_once

    started = time.perf_counter()
    repo = _open(repo)
    if shard is not None:
        index, count = shard
        if not (1 <= index <= count):
            raise UsageError(f"--shard {index}/{count}: K must be between 1 and N")
    cand_commit, base_commit = repo.resolve(candidate), repo.resolve(base)
    base_sha, cand_sha = str(base_commit.id), str(cand_commit.id)
    base_state, cand_state = State.from_tree(repo, base_sha), State.from_tree(repo, cand_sha)
    cfg = base_state.config()  # the exam is always the baseline's: never the candidate's aevolve.yaml
    gate_cfg = cfg["gate"]
    policy = dict(gate_cfg.get("policy") or {})
    significance = float(policy.get("significance") or 0.05)
    runner = RunnerConfig.from_config(cfg)
    all_cases = load_cases(base_state)
    cases = select_shard(all_cases, shard)
    static = static_checks(repo, base_commit, cand_commit, base_state, cand_state, cfg)
    suite = {"cases": len(all_cases), "hash": content_hash(sorted((c.id, c.hash) for c in all_cases)),
             "runner": runner.hash}
    jobs = max(1, int(jobs or gate_cfg.get("jobs") or 1))

    trees = {"baseline": base_state.tree_id, "candidate": cand_state.tree_id}
    entries: list[dict] = []
    errors: list[dict] = []
    started_runs = cached_runs = 0
    if not static and cases:
        roots = {side: materialize(repo, tree) for side, tree in trees.items()}
        ctx_base = {"root": roots["baseline"], "repo": repo, "llm": cfg}
        cache = ResultsCache(repo, enabled=use_cache)
        try:
            keys = {(side, case.id, rep): (trees[side], case.hash, runner.hash, rep)
                    for side in trees for case in cases for rep in range(case.repeat)}
            known = cache.get_many(sorted(set(keys.values())))
            by_id = {c.id: c for c in cases}
            # one task per distinct key: identical trees are run once
            tasks: dict[tuple, tuple] = {}
            for (side, cid, rep), key in keys.items():
                tasks.setdefault(key, (side, cid, rep))

            def work(key, side, cid, rep):
                case = by_id[cid]
                run = known.get(key)
                if run is None:
                    run = run_once(runner, roots[side], cid, case.input, rep)
                if run.status == "error":
                    return key, run, False, []
                ok, reasons = grade(case.asserts, run, AssertContext(case_id=cid, case_input=case.input, **ctx_base))
                return key, run, ok, reasons

            graded: dict[tuple, tuple] = {}
            fresh = []
            bar = _progress(len(tasks)) if progress else None
            try:
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    futures = [pool.submit(work, key, *where) for key, where in tasks.items()]
                    try:
                        for future in as_completed(futures):
                            key, run, ok, reasons = future.result()
                            graded[key] = (run, ok, reasons)
                            if run.cached:
                                cached_runs += 1
                            else:
                                started_runs += 1
                                fresh.append((key, run))
                            if bar:
                                bar.update(1)
                    except BaseException:  # Ctrl-C or a crash: stop queued runs, kill running ones
                        for future in futures:
                            future.cancel()
                        kill_all()
                        raise
            finally:
                if bar:
                    bar.__exit__(None, None, None)
            cache.put_many(fresh)
        finally:
            cache.close()
        for case in cases:
            entry = {"id": case.id, "tags": case.tags, "repeat": case.repeat, "threshold": case.threshold,
                     "file": case.where}
            for side in trees:
                results = [graded[keys[(side, case.id, rep)]] for rep in range(case.repeat)]
                entry[side] = _side(results)
                for rep, (run, _, _) in enumerate(results):
                    if run.status == "error":
                        errors.append({"case": case.id, "side": side, "repeat": rep, "error": run.error,
                                       "exit_code": run.exit_code, "stderr": run.stderr[-STDERR_IN_REPORT:]})
            entries.append(judge_case(entry, significance))

    warnings = sorted({f"case {c.id}: {c.repeat} repeats can never show a significant change at "
                       f"significance {significance:g}; use more repeats" for c in cases
                       if c.repeat > 1 and min_p_value(c.repeat) > significance})
    if shard is not None:
        decision = "partial"
        local, reasons, summary = decide(entries, policy, static)
        reasons = [f"shard {shard[0]}/{shard[1]}: {len(entries)} of {len(all_cases)} case(s); "
                   "merge all shards with `aevolve gate --collect` to decide"] + reasons
    else:
        decision, reasons, summary = decide(entries, policy, static)
    summary["warnings"] = warnings
    policy["significance"] = significance
    report = GateReport(
        candidate=cand_sha, baseline=base_sha, decision=decision, reasons=reasons,
        candidate_tree=trees["candidate"], baseline_tree=trees["baseline"], cases=entries, errors=errors,
        static=static, summary=summary, policy=policy, suite=suite,
        shard={"index": shard[0], "count": shard[1]} if shard else None,
        timings={"total_s": round(time.perf_counter() - started, 3), "runs_started": started_runs,
                 "runs_cached": cached_runs, "jobs": jobs},
        created=_now(),
    )
    if write_note and shard is None:
        write_gate_report(repo, report.to_dict())
    return report


def _progress(total: int):
    import click

    bar = click.progressbar(length=total, label="gate", file=sys.stderr, show_pos=True)
    bar.__enter__()
    return bar


def collect(repo, reports: list[dict], *, write_note: bool = True) -> GateReport:
    """Merge the partial reports of shards 1..N of one gate run and decide."""
    from ..errors import InvalidInput
    from ..notes import write_gate_report
    from .decision import decide, judge_case

    repo = _open(repo)
    if not reports:
        raise InvalidInput("no shard reports to collect")
    first = reports[0]
    same = ("candidate", "baseline", "candidate_tree", "baseline_tree", "suite", "policy")
    counts = set()
    seen_shards: dict[int, int] = {}
    for n, rep in enumerate(reports, 1):
        if not isinstance(rep, dict) or not isinstance(rep.get("shard"), dict):
            raise InvalidInput(f"report {n} is not a shard report (no 'shard'): run `aevolve gate --shard K/N --output FILE`")
        for key in same:
            if rep.get(key) != first.get(key):
                raise InvalidInput(f"report {n} differs from report 1 in {key!r}: shards of different gate runs cannot be merged")
        index, count = rep["shard"].get("index"), rep["shard"].get("count")
        counts.add(count)
        if index in seen_shards:
            raise InvalidInput(f"shard {index}/{count} given twice (reports {seen_shards[index]} and {n})")
        seen_shards[index] = n
    if len(counts) != 1:
        raise InvalidInput(f"shard reports disagree on the number of shards: {sorted(counts)}")
    count = counts.pop()
    missing = sorted(set(range(1, count + 1)) - set(seen_shards))
    if missing:
        raise InvalidInput(f"missing shard(s) {', '.join(f'{m}/{count}' for m in missing)}: all of 1..{count} are needed")
    cases: list[dict] = []
    ids: set[str] = set()
    for rep in reports:
        for entry in rep.get("cases") or []:
            if entry["id"] in ids:
                raise InvalidInput(f"case {entry['id']!r} appears in more than one shard report")
            ids.add(entry["id"])
            cases.append(entry)
    static = list(dict.fromkeys(s for rep in reports for s in rep.get("static") or []))
    if not static and len(cases) != (first.get("suite") or {}).get("cases", len(cases)):
        raise InvalidInput(f"the shards hold {len(cases)} case(s) but the suite has {first['suite']['cases']}")
    policy = dict(first.get("policy") or {})
    significance = float(policy.get("significance") or 0.05)
    cases = [judge_case(dict(c), significance) for c in sorted(cases, key=lambda c: c["id"])]
    decision, reasons, summary = decide(cases, policy, static)
    summary["warnings"] = sorted({w for rep in reports for w in (rep.get("summary") or {}).get("warnings", [])})
    timings = {"total_s": round(sum((r.get("timings") or {}).get("total_s", 0) for r in reports), 3),
               "runs_started": sum((r.get("timings") or {}).get("runs_started", 0) for r in reports),
               "runs_cached": sum((r.get("timings") or {}).get("runs_cached", 0) for r in reports),
               "shards": count}
    report = GateReport(
        candidate=first["candidate"], baseline=first.get("baseline"), decision=decision, reasons=reasons,
        candidate_tree=first.get("candidate_tree"), baseline_tree=first.get("baseline_tree"), cases=cases,
        errors=[e for rep in reports for e in rep.get("errors") or []], static=static, summary=summary,
        policy=policy, suite=first.get("suite") or {}, shard=None, timings=timings, created=_now(),
    )
    if write_note:
        write_gate_report(repo, report.to_dict())
    return report


callable_module(__name__, gate)
