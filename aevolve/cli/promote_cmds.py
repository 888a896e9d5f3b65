"""`aevolve promote BRANCH`: fast-forward main to a gated candidate."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo, style


@click.command("promote")
@click.argument("branch")
@click.option("--main", "main", default="main", show_default=True, metavar="BRANCH",
              help="The branch to move.")
@click.option("--no-regate", is_flag=True,
              help="Never run the gate: refuse a candidate without an accepting note, or one main moved away from.")
@click.option("--push", "push", is_flag=False, flag_value="", default=None, metavar="[REMOTE]",
              help="Sync with REMOTE (default: main's upstream, else origin) first, then publish main, the notes "
                   "and the branch in one atomic push; retries when someone else pushed first.")
@json_option
@click.pass_context
def promote_cmd(ctx: click.Context, branch: str, main: str, no_regate: bool, push: str | None, as_json: bool):
    """Move main to BRANCH if the gate accepts exactly that commit.

    Gates BRANCH first when it has no gate note; rebases it onto main and gates
    it again when main moved. main and the gate notes move in one atomic
    transaction; a checkout of main is updated like `git merge --ff-only`.
    BRANCH may be a proposal id (p-xxxxxxxx). Verdicts a plain `git fetch`
    brought are merged into the local notes first (no network).
    With --push: sync, promote onto the remote's main, publish (see docs/sync.md).
    Exit codes: 0 promoted (or nothing to do), 100 rejected by the gate,
    6 conflict (dirty checkout, merge conflict, lost race), 1 error.
    """
    from aevolve._errors import AevolveError
    from aevolve._promote.promote import promote
    from aevolve._remote.sync import merge_fetched_notes

    repo = open_repo(ctx)
    try:
        if push is not None:
            return _publish(repo, branch, push or None, main, no_regate, as_json)
        merge_fetched_notes(repo)
        result = promote(repo, branch, main=main, regate=not no_regate)
    except AevolveError as exc:
        if not as_json:
            raise
        echo_json({"promoted": False, "candidate": branch, "error": str(exc),
                   "exit_code": exc.exit_code, "files": getattr(exc, "files", [])})
        click.echo(f"aevolve: {exc}", err=True)
        return exc.exit_code
    if as_json:
        echo_json(result.to_dict())
        return 0
    name = result.main.removeprefix("refs/heads/")
    if not result.promoted:
        click.echo(f"{branch} is already on {name} ({result.new[:12]}); nothing to do")
        return 0
    how = f" (rebased {result.candidate[:12]} onto {result.old[:12]}, gated again)" if result.rebased else ""
    click.echo(style(f"promoted {name}: {result.old[:12]} -> {result.new[:12]}", fg="green") + how)
    if result.branch_moved and result.branch:
        click.echo(f"{result.branch.removeprefix('refs/heads/')} now points at the rebased commit")
    for path in result.checkouts:
        click.echo(f"updated checkout {path}")
    return 0


def _publish(repo, branch: str, remote: str | None, main: str, no_regate: bool, as_json: bool) -> int:
    from aevolve._remote.publish import publish_promotion

    published = publish_promotion(repo, branch, remote, main=main, regate=not no_regate)
    if as_json:
        echo_json(published.to_dict())
        return 0
    echo_published(published, branch)
    return 0


def echo_published(published, branch: str) -> None:
    """What `promote --push` (and `gate --promote --push`) did, in a few lines."""
    result = published.promotion
    for loss in published.losses:
        click.echo(f"someone else pushed first ({loss}); synced, rebased and gated again")
    if not published.pushed:
        click.echo(f"{branch} is already on {published.remote}'s main ({result.new[:12]}); nothing to publish")
    else:
        how = f" (rebased {result.candidate[:12]}, gated again)" if result.rebased else ""
        click.echo(style(f"published {published.remote}: main {result.old[:12]} -> {result.new[:12]}", fg="green")
                   + how)
        click.echo("pushed " + ", ".join(published.pushed))
    if published.main_state == "blocked":
        click.echo(style(f"the local main was not moved: {published.main_message}", fg="yellow"), err=True)
    for path in published.checkouts:
        click.echo(f"updated checkout {path}")
