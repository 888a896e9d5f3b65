"""`aevolve sync [REMOTE]`: fetch the remote's work and merge it in, losing nothing."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo, style

SHOWN = 20  # unpublished commits listed one by one; the rest are counted


@click.command("sync")
@click.argument("remote", required=False)
@click.option("--main", "main", default="main", show_default=True, metavar="BRANCH",
              help="The branch to bring up to date.")
@json_option
@click.pass_context
def sync_cmd(ctx: click.Context, remote: str | None, main: str, as_json: bool):
    """Fetch REMOTE (default: main's upstream, else origin) and merge it in.

    Fetches main, the evolution branches, the gate and approval notes and the
    observations; merges the notes and observations (a union: nothing local is
    dropped); fast-forwards main when it holds nothing unpublished, else says
    what is unpublished. In a fresh clone it also configures what `aevolve
    init` would, and commits nothing. Exit codes: 0 synced (main may be ahead or
    diverged: see the output), 6 main could not move (a checkout would lose
    work), 2 no such remote, 1 error (the fetch failed).
    """
    from aevolve._remote.sync import sync

    result = sync(open_repo(ctx), remote, main=main)
    if as_json:
        echo_json(result.to_dict())
    else:
        _print(result)
    return 6 if result.main.state == "blocked" else 0


def _print(result) -> None:
    for line in result.configured:
        click.echo(f"git config: {line}")
    click.echo(f"synced with {result.remote}: {len(result.branches)} evolution branch(es) there")
    _print_notes("gate notes", result.notes)
    _print_notes("approvals", result.approvals)
    obs = result.observations
    if obs.changed:
        click.echo(f"observations: {obs.added} new from {result.remote} ({obs.action})")
    for key in obs.conflicts:
        click.echo(style(f"observations: {key} is stored with different content here and on {result.remote}; "
                         "both are kept", fg="yellow"))
    _print_main(result.main, result.remote)


def _print_notes(what: str, merge) -> None:
    if merge.changed:
        click.echo(f"{what}: {merge.taken} taken from the remote ({merge.action})")
    for choice in merge.choices:
        line = f"{what}: {choice.commit[:12]}: kept the {choice.kept} note: {choice.why}"
        click.echo(style(line, fg="yellow") if choice.conflict else line)


def _print_main(main, remote: str) -> None:
    name = main.ref.removeprefix("refs/heads/")
    if main.state == "no-remote-main":
        click.echo(f"{name}: {remote} has no {name} yet")
    elif main.state == "up-to-date":
        click.echo(f"{name}: up to date with {remote}/{name} ({main.new[:12]})")
    elif main.state in ("fast-forward", "created"):
        old = main.old[:12] if main.old else "(none)"
        click.echo(style(f"{name}: {old} -> {main.new[:12]} ({remote}/{name})", fg="green"))
        for path in main.checkouts:
            click.echo(f"updated checkout {path}")
    elif main.state == "blocked":
        click.echo(style(f"{name} was not moved to {remote}/{name} ({main.remote[:12]}): {main.message}", fg="red"),
                   err=True)
    else:
        _print_unpublished(main, name, remote)


def _print_unpublished(main, name: str, remote: str) -> None:
    count = len(main.unpublished)
    if main.state == "ahead":
        click.echo(f"{name}: {count} commit(s) unpublished (not on {remote}/{name}); publish them with "
                   f"`git push {remote} {name}` (their notes travel with it)")
    else:
        click.echo(style(f"{name}: diverged from {remote}/{name}: {count} local commit(s) unpublished, "
                         f"{main.behind} of {remote}'s missing here; {name} was not moved", fg="yellow"))
    for item in main.unpublished[:SHOWN]:
        click.echo(f"  {item['commit'][:12]} {item['subject']}")
    if count > SHOWN:
        click.echo(f"  ... and {count - SHOWN} more (`git log {remote}/{name}..{name}`)")
    if main.state == "diverged":
        click.echo(f"  {name} only moves to gated commits: keep them on a branch (`git branch evolve/local {name}`), "
                   f"put {name} back on {remote}'s (`git reset --keep {remote}/{name}` with {name} checked out), "
                   "then `aevolve promote evolve/local` rebases and gates them again")


@click.command("prune")
@click.option("--remote", metavar="REMOTE", help="Also delete them on REMOTE (after a sync), in one atomic push.")
@click.option("--older-than", type=click.FloatRange(min=0), metavar="DAYS",
              help="Also delete ungated or accepted-but-unpromoted branches whose tip is older than DAYS.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@click.option("--main", "main", default="main", show_default=True, metavar="BRANCH")
@json_option
@click.pass_context
def prune_cmd(ctx: click.Context, remote: str | None, older_than: float | None, dry_run: bool, main: str,
              as_json: bool):
    """Delete evolution branches already in main or rejected by their gate note.

    Notes stay, so `aevolve log` keeps the history. Never deletes an ungated or
    accepted-but-unpromoted branch unless older than --older-than, nor a
    checked-out one.
    """
    from aevolve._remote.prune import prune

    result = prune(open_repo(ctx), remote=remote, older_than=older_than, dry_run=dry_run, main=main)
    if as_json:
        echo_json(result.to_dict())
        return 0
    verb = "would delete" if dry_run else "deleted"
    for item in result.deleted:
        click.echo(f"{verb} {item.ref.removeprefix('refs/heads/')} ({item.tip[:12]}, {item.why})")
    for item in result.kept:
        click.echo(f"kept {item.ref.removeprefix('refs/heads/')} ({item.tip[:12]}, {item.why})")
    if not result.deleted:
        click.echo("nothing to prune")
    return 0
