"""`aevolve gate`: run the regression suite on a candidate and decide (exit 0 / 100)."""

from __future__ import annotations

import json
import sys

import click

from aevolve.cli.common import echo_json, json_option, open_repo


def _parse_shard(value: str | None):
    if value is None:
        return None
    from aevolve._errors import UsageError

    k, sep, n = value.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not (1 <= int(k) <= int(n)):
        raise UsageError(f"--shard {value!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/4")
    return int(k), int(n)


def _load_reports(paths: tuple[str, ...]) -> list[dict]:
    from aevolve._errors import InvalidInput
    from aevolve._json import loads

    out = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                out.append(loads(fh.read()))
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read shard report ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{exc.lineno}: not a JSON gate report ({exc.msg})") from None
    return out


@click.command("gate")
@click.argument("args", nargs=-1, metavar="[BRANCH] | --collect REPORT...")
@click.option("--base", default="main", show_default=True, help="The baseline the candidate must not regress from.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Case runs in parallel (default: gate.jobs).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
              help="Where case runs happen (default: gate.executor); ray needs `pip install 'aevolve[ray]'`.")
@click.option("--ray-address", metavar="ADDR", default=None,
              help="With --executor ray: the Ray cluster (default: gate.ray.address, $RAY_ADDRESS, else a local Ray).")
@click.option("--shard", metavar="K/N", default=None, help="Run only slice K of N; writes a partial report (no note).")
@click.option("--collect", is_flag=True, help="Merge shard reports (the ARGS) into one decision and note it.")
@click.option("--no-cache", is_flag=True, help="Run every case again, ignoring cached results.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the JSON report to FILE (shards: the file to collect later).")
@click.option("--promote", is_flag=True, help="If accepted, fast-forward main to the candidate.")
@click.option("--push", "push", is_flag=False, flag_value="", default=None, metavar="[REMOTE]",
              help="With --promote: sync with REMOTE first, then publish main, the notes and the branch in one "
                   "atomic push (as `aevolve promote --push`).")
@json_option
@click.pass_context
def gate_cmd(ctx, args, base, jobs, executor, ray_address, shard, collect, no_cache, fmt, output, promote, push,
             as_json) -> int:
    """Gate BRANCH (default: HEAD) against --base: exit 0 accepted, 100 rejected, 1 error.

    Runs every case of the baseline's evals/ on both commits (cached by
    content), checks the candidate statically, decides by the baseline's
    aevolve.yaml policy and stores the report as a git note on the candidate.
    """
    from aevolve._gate.ray_executor import use

    with use(executor, ray_address):  # also for the gates that promote runs
        return _gate_cmd(ctx, args, base, jobs, shard, collect, no_cache, fmt, output, promote, push, as_json)


def _gate_cmd(ctx, args, base, jobs, shard, collect, no_cache, fmt, output, promote, push, as_json) -> int:
    from aevolve._errors import UsageError
    from aevolve._gate.run import collect as collect_reports
    from aevolve._gate.run import gate as run_gate

    shard_spec = _parse_shard(shard)
    repo = open_repo(ctx)
    if collect:
        if not args:
            raise UsageError("--collect needs the shard report files: aevolve gate --collect r1.json r2.json ...")
        if shard_spec:
            raise UsageError("--collect merges shards; it cannot also run one (--shard)")
        report = collect_reports(repo, _load_reports(args))
    else:
        if len(args) > 1:
            raise UsageError(f"one BRANCH at a time (got {len(args)}); to merge shard reports use --collect")
        if promote and shard_spec:
            raise UsageError("a shard cannot promote: collect the shards first")
        candidate = args[0] if args else "HEAD"
        if push is not None:
            if not promote:
                raise UsageError("--push publishes a promotion: use it with --promote")
            return _gate_promote_push(repo, candidate, base, push or None, output, fmt, as_json)
        if promote and _promote_decides(repo, candidate, base):
            report, promoted = _gate_and_promote(repo, candidate, base)
            report = _redacted(repo, report)
            _write_output(output, report.to_dict())
            _show(report, report.to_dict(), promoted, fmt, as_json)
            return 0
        progress = sys.stderr.isatty() and not as_json
        report = run_gate(repo, candidate, base=base, jobs=jobs, shard=shard_spec,
                          use_cache=not no_cache, progress=progress)
    shown = _redacted(repo, report)  # shard files travel as CI artifacts: no secrets in them
    _write_output(output, shown.to_dict())
    promoted = None
    if promote and report.accepted:
        from aevolve._promote.promote import promote as do_promote

        promoted = do_promote(repo, report.candidate if collect else candidate, main=base)
    _show(shown, shown.to_dict(), promoted, fmt, as_json)
    return {"accept": 0, "partial": 0, "reject": 100}.get(report.decision, 1)


def _gate_promote_push(repo, candidate: str, base: str, remote: str | None, output, fmt: str, as_json: bool) -> int:
    """`gate BRANCH --promote --push`: sync, then gate and promote exactly as `promote
    --push` does (onto the remote's main, rebased when it moved), then publish."""
    from aevolve._gate.report import GateReport
    from aevolve._remote.publish import publish_promotion
    from aevolve.cli.promote_cmds import echo_published

    published = publish_promotion(repo, candidate, remote, main=base)
    report = _redacted(repo, GateReport.from_dict(published.promotion.report or {}))
    _write_output(output, report.to_dict())
    if as_json:
        echo_json({**report.to_dict(), "published": published.to_dict()})
        return 0
    if published.promotion.report:
        click.echo(report.render(fmt))
    echo_published(published, candidate)
    return 0


def _redacted(repo, report):
    """The report as it may be shown or written: secrets replaced, like its note."""
    from aevolve._gate.report import GateReport
    from aevolve._trust.record import secret_names
    from aevolve._trust.secrets import redact_obj, secret_values

    data = redact_obj(report.to_dict(), secret_values(names=secret_names(repo, report.baseline)))
    return GateReport.from_dict(data)


def _write_output(output: str | None, data: dict) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")


def _promote_decides(repo, candidate: str, base: str) -> bool:
    """Is the candidate already in main (nothing to do, exit 0, as `promote` says), or off
    main's line (main moved on since it was made: promote rebases and gates it)?"""
    from aevolve._git.reader import GitReader

    cand, main = str(repo.resolve(candidate).id), repo.resolve_branch(base)
    return repo.is_ancestor(cand, main) or GitReader(repo).first_parent_chain(main, cand) is None


def _gate_and_promote(repo, branch: str, base: str):
    """`gate BRANCH --promote` on a branch behind main: rebase and gate it exactly as
    `promote` does, so the verdict is about the commit that would become main."""
    from aevolve._gate.report import GateReport
    from aevolve._promote.promote import promote as do_promote

    promoted = do_promote(repo, branch, main=base)
    return GateReport.from_dict(promoted.report or {}), promoted


def _show(report, data: dict, promoted, fmt: str, as_json: bool) -> None:
    if as_json:
        if promoted is not None:
            data = {**data, "promoted": {"old": str(promoted.old), "new": str(promoted.new),
                                         "rebased": bool(promoted.rebased), "branch_moved": promoted.branch_moved}}
        echo_json(data)
        return
    click.echo(report.render(fmt))
    if promoted is not None:
        click.echo(f"promoted: main {str(promoted.old)[:12]} -> {str(promoted.new)[:12]}"
                   + (" (rebased onto the moved main and gated again)" if promoted.rebased else ""))
        if promoted.branch_moved:
            click.echo(f"{promoted.branch.removeprefix('refs/heads/')} now points at the rebased commit")
    if report.decision == "error":
        click.echo("aevolve: the gate could not judge the candidate (see above); nothing was accepted", err=True)
