"""Running case jobs: each distinct run once, in parallel, cached by content, graded.

A *job* is one case of one exam run on one tree (one repeat). Jobs with the
same cache key (tree, case, runner, repeat) share one run, so a tree both
exams see is run once. Runs get a verified, guarded copy of their tree: a run
that writes into it is reported as `tampered` and the copy is rebuilt before
any other run uses it. What cannot be judged fails the gate closed: a runner
that cannot start, an assertion that cannot be evaluated.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from aevolve._errors import GateError
from aevolve._gate.ray_executor import Executor, Placement
from aevolve._gate.suite import Exam, is_timed

Key = tuple[str, str, str, int]  # (tree, case hash, runner hash, repeat): the cache key


@dataclass(frozen=True)
class Job:
    side: str  # which column of the report: "baseline", "candidate", "old-exam"
    tree: str
    exam: str  # a key into the exams dict
    case: str
    rep: int


@dataclass
class Graded:
    run: object  # RunResult
    ok: bool
    reasons: list[str]
    # each assertion's result: {"type", "passed", "reason"}; the report keeps it as evidence
    asserts: list[dict] = field(default_factory=list)


@dataclass
class Runs:
    graded: dict[Job, Graded] = field(default_factory=dict)
    started: int = 0
    cached: int = 0
    shared: int = 0  # of the cached runs, those read from the runs notes (made by another clone)
    notices: list[str] = field(default_factory=list)  # e.g. a materialized tree found modified and rebuilt
    placement: Placement | None = None  # where Ray ran the runs (None: here)


def execute(repo, plan: list[Job], exams: dict[str, Exam], *, jobs: int = 1, use_cache: bool = True,
            progress: bool = False, share: list | None = None, executor: Executor | None = None) -> Runs:
    """Run and grade every job of `plan`; raises GateError when something cannot be judged.

    Lookup order: the SQLite cache, then the runs notes other clones shared, then a
    runner: here, or a Ray task when `executor` says ray (ray_executor). The fresh
    runs worth sharing are appended to `share` (shared_runs.Shared)."""
    from aevolve._gate.materialize import MaterializedTree
    from aevolve._gate.results_cache import ResultsCache

    out = Runs()
    cases = {name: {c.id: c for c in exam.cases} for name, exam in exams.items()}
    remote = executor if executor is not None and executor.kind == "ray" else None
    trees = set() if remote else {job.tree for job in plan}  # a Ray node makes its own copies
    guards = {tree: MaterializedTree.open(repo, tree) for tree in sorted(trees)}
    for tree, guard in guards.items():
        if guard.repaired:
            shown = ", ".join(guard.repaired[:5])
            out.notices.append(f"the materialized copy of tree {tree[:12]} had been modified ({shown}); "
                               "it was discarded and rebuilt")

    def key_of(job: Job) -> Key:
        exam = exams[job.exam]
        return (job.tree, cases[job.exam][job.case].hash, exam.runner.hash, job.rep)

    by_key: dict[Key, list[Job]] = {}
    for job in plan:
        by_key.setdefault(key_of(job), []).append(job)
    timed = {k for k, js in by_key.items() if any(is_timed(cases[j.exam][j.case]) for j in js)}

    def digest_of(key: Key) -> str:
        return exams[by_key[key][0].exam].digest

    cache = ResultsCache(repo, enabled=use_cache)
    try:
        wanted = sorted(set(by_key) - timed)
        known = cache.get_many(wanted)
        if use_cache:  # the local cache missed: another clone may have made the run (shared_runs)
            shared = _shared(repo, {k: digest_of(k) for k in wanted if k not in known})
            cache.put_many(list(shared.items()))
            known.update(shared)
            out.shared = len(shared)
        runs = _Remote(repo, remote) if remote else _Local(guards)
        fresh = _run_all(by_key, known, exams, cases, runs, jobs, progress, repo, out)
        kept = [(k, run) for k, run in fresh if k not in timed and run.error_kind != "tampered"]
        cache.put_many(kept)
        if share is not None:
            from aevolve._gate.shared_runs import Shared

            share += [Shared(k, digest_of(k), run.to_dict()) for k, run in kept if run.status == "ok"]
    finally:
        cache.close()
        for guard in guards.values():  # release each tree's lock now, not when freed (gc waits on it)
            guard.close()
    cut = _cut_notice(out, exams)
    if cut:
        out.notices.append(cut)
    return out


CUT_SHOWN = 10


def _shared(repo, wanted: dict[Key, str]) -> dict:
    """Key -> RunResult read from the runs notes (shared_runs), for keys the local cache missed."""
    from aevolve._gate.runner import RunResult
    from aevolve._gate.shared_runs import lookup

    return {k: RunResult.from_dict(result, cached=True) for k, result in lookup(repo, wanted).items()}


def _cut_notice(out: Runs, exams: dict[str, Exam]) -> str:
    """Which cases printed more than gate.max_output_bytes (RunResult.truncated), in one line."""
    cut = sorted({(job.case, stream, exams[job.exam].runner.max_output_bytes)
                  for job, graded in out.graded.items() for stream in getattr(graded.run, "truncated", ())})
    if not cut:
        return ""
    shown = ", ".join(f"{case} ({stream} past {cap} bytes)" for case, stream, cap in cut[:CUT_SHOWN])
    more = f" and {len(cut) - CUT_SHOWN} more" if len(cut) > CUT_SHOWN else ""
    return (f"output was cut at gate.max_output_bytes: {shown}{more}; the head of stdout was kept and judged "
            "as plain text, the tail of stderr was kept, the rest was discarded")


class _Local:
    """Runs started here, each on the gate's guarded copy of its tree."""

    def __init__(self, guards: dict):
        self.guards = guards

    def start(self, pending: dict[Key, list[Job]], exams, cases) -> None:
        pass  # a local run starts in the thread that waits for it

    def result(self, key: Key, job: Job, exam: Exam, case):
        from aevolve._gate.runner import run_guarded

        return run_guarded(self.guards[job.tree], exam.runner, case.id, case.input, job.rep)

    def stop(self) -> None:
        from aevolve._gate.runner import kill_all

        kill_all()

    def placement(self):
        return None


class _Remote:
    """Runs as Ray tasks, all submitted at once: Ray decides how many run together."""

    def __init__(self, repo, executor: Executor):
        from aevolve._gate.ray_executor import RemoteRuns

        self.runs = RemoteRuns(repo, executor)
        self.refs: dict[Key, object] = {}

    def start(self, pending: dict[Key, list[Job]], exams, cases) -> None:
        for key, group in pending.items():
            job = group[0]
            case = cases[job.exam][job.case]
            self.refs[key] = self.runs.submit(job.tree, exams[job.exam].runner, case.id, case.input, job.rep)

    def result(self, key: Key, job: Job, exam: Exam, case):
        return self.runs.result(self.refs[key], job.tree)

    def stop(self) -> None:
        self.runs.cancel()

    def placement(self):
        return self.runs.placement


def _run_all(by_key, known, exams, cases, runs, jobs, progress, repo, out: Runs) -> list:
    from aevolve._gate.assertions import AssertContext, AssertionSetupError, grade

    def work(key: Key, group: list[Job]):
        first = group[0]
        run = known.get(key)
        if run is None:
            run = runs.result(key, first, exams[first.exam], cases[first.exam][first.case])
        graded = []
        for job in group:
            job_exam, job_case = exams[job.exam], cases[job.exam][job.case]
            if run.status == "error":
                graded.append((job, Graded(run, False, [])))
                continue
            ctx = AssertContext(exam=job_exam.state, repo=repo, llm=job_exam.cfg,
                                case_id=job_case.id, case_input=job_case.input)
            try:
                results = grade(job_case.asserts, run, ctx)
            except AssertionSetupError as exc:
                raise GateError(f"case {job_case.id} ({job_case.where}): an assertion cannot be evaluated, "
                                f"so the gate cannot judge: {exc}") from None
            reasons = [r["reason"] for r in results if not r["passed"]]
            graded.append((job, Graded(run, not reasons, reasons, results)))
        return key, run, graded

    fresh = []
    bar = _progress(len(by_key)) if progress else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = []
            try:
                runs.start({k: g for k, g in by_key.items() if k not in known}, exams, cases)
                futures = [pool.submit(work, key, group) for key, group in by_key.items()]
                for future in as_completed(futures):
                    key, run, graded = future.result()
                    if run.error_kind == "start":
                        raise GateError(f"the runner cannot be started, so nothing can be judged: {run.error} "
                                        "(gate.runner in the baseline's aevolve.yaml)")
                    out.graded.update(graded)
                    if run.cached:
                        out.cached += 1
                    else:
                        out.started += 1
                        fresh.append((key, run))
                    if bar:
                        bar.update(1)
            except BaseException:  # Ctrl-C, a crash or a gate error: stop queued runs, kill running ones
                for future in futures:
                    future.cancel()
                runs.stop()
                raise
    finally:
        if bar:
            bar.__exit__(None, None, None)
    out.placement = runs.placement()
    if progress and out.placement is not None:
        print(f"gate: {out.placement.describe()}", file=sys.stderr)
    return fresh


def _progress(total: int):
    import click

    bar = click.progressbar(length=total, label="gate", file=sys.stderr, show_pos=True)
    bar.__enter__()
    return bar
