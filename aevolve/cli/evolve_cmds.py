"""`aevolve evolve`: the autonomous loop (aevolve/_evolve)."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo


@click.command("evolve")
@click.option("--cycles", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cycles to run (a resumed cycle counts as one).")
@click.option("--candidates", "-k", type=click.IntRange(min=1), default=2, show_default=True,
              help="Candidates proposed and gated per cycle.")
@click.option("--evolver", "evolvers", multiple=True, metavar="NAME",
              help="An evolver to propose with; repeat to alternate several (default: evolver.default).")
@click.option("--until", type=click.FloatRange(0.0, 1.0), default=None, metavar="PASS_RATE",
              help="Stop once main's gate pass rate reaches PASS_RATE.")
@click.option("--patience", type=click.IntRange(min=1), default=None, metavar="P",
              help="Stop after P cycles in a row that promote nothing.")
@click.option("--max-runs", type=click.IntRange(min=1), default=None, metavar="R",
              help="Stop before a new cycle once the gates started R runner processes.")
@click.option("--max-cost", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="C",
              help="Stop before a new cycle once the cost spent reaches C: what the runner reports "
                   "(gate reports' cost totals) plus what evolvers report.")
@click.option("--push", "push", default=None, metavar="REMOTE",
              help="Sync with REMOTE before each cycle, publish each promotion to it (as promote --push) "
                   "and push refs/aevolve/cycles.")
@click.option("--allow-no-gain", is_flag=True,
              help="Promote an accepted candidate even when it fixes nothing (default: only with a gain).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Parallel runs per gate.")
@json_option
@click.pass_context
def evolve_cmd(ctx: click.Context, cycles: int, candidates: int, evolvers: tuple[str, ...], until: float | None,
               patience: int | None, max_runs: int | None, max_cost: float | None, push: str | None,
               allow_no_gain: bool, jobs: int | None, as_json: bool) -> int:
    """Run observe -> propose K -> gate -> select -> promote in cycles, unattended.

    Each cycle proposes K candidates from the failures no commit on main fixes yet
    (one failure group each, never a combination rejected before), gates them all
    against the same main, promotes the best one that regresses nothing and fixes
    something, and records the cycle on refs/aevolve/cycles. Killed, it resumes the
    unfinished cycle when run again. Progress goes to stderr. See docs/evolve.md.
    """
    from aevolve._evolve import evolve

    repo = open_repo(ctx)
    result = evolve(repo, cycles=cycles, candidates=candidates, evolvers=list(evolvers) or None, until=until,
                    patience=patience, max_runs=max_runs, allow_no_gain=allow_no_gain, jobs=jobs,
                    max_cost=max_cost, push=push,
                    progress=lambda line: click.echo(f"aevolve: {line}", err=True))
    if as_json:
        echo_json(result.to_dict())
        return 0
    for cycle in result.cycles:
        what = f"promoted {cycle.choice.get('branch')}" if cycle.promoted and cycle.choice else "promoted nothing"
        rate = "n/a" if cycle.pass_rate is None else f"{cycle.pass_rate:.3f}"
        hold = "" if cycle.holdout_pass_rate is None else \
            f", held-out {cycle.holdout_pass_rate:.3f} ({(cycle.holdout_gain or 0.0):+.3f})"
        click.echo(f"cycle {cycle.cycle}: {what}; gate {rate} ({cycle.gain:+.3f}){hold}; "
                   f"{cycle.compute.get('runner_starts', 0)} runner start(s), "
                   f"{cycle.compute.get('evolver_calls', 0)} evolver call(s)")
    compute = result.compute
    click.echo(f"stopped by {result.stopped_by}: {result.reason}")
    click.echo(f"main {str(result.main_before)[:12]} -> {str(result.main_after)[:12]}; "
               f"{compute.get('runner_starts', 0)} runner start(s), {compute.get('evolver_calls', 0)} evolver "
               f"call(s), {compute.get('tokens', 0)} token(s)"
               + (f", cost {compute['cost']:.6g}" if compute.get("cost") else ""))
    return 0
