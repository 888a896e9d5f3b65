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
@json_option
@click.pass_context
def promote_cmd(ctx: click.Context, branch: str, main: str, no_regate: bool, as_json: bool):
    """Move main to BRANCH if the gate accepts exactly that commit.

    Gates BRANCH first when it has no gate note; rebases it onto main and gates
    it again when main moved. main and the gate notes move in one atomic
    transaction; a checkout of main is updated like `git merge --ff-only`.
    Exit codes: 0 promoted (or nothing to do), 100 rejected by the gate,
    6 conflict (dirty checkout, merge conflict, lost race), 1 error.
    """
    from aevolve._errors import AevolveError
    from aevolve._promote.promote import promote

    repo = open_repo(ctx)
    try:
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
