"""init, validate, status: the first commands a new user runs."""

from __future__ import annotations

from pathlib import Path

import click

from aevolve.cli.common import echo_json, json_option, open_repo, style


@click.command("init")
@click.argument("path", required=False, default=".", type=click.Path(file_okay=False))
@json_option
def init_cmd(path: str, as_json: bool) -> None:
    """Make PATH (default: here) a state repository, adopting what is there."""
    from aevolve._state.init import init_repo

    result = init_repo(path)
    if as_json:
        echo_json({"path": str(result.path), "created_repo": result.created_repo,
                   "added": result.added, "commit": result.commit})
        return
    if result.existing and result.configured:
        click.echo(f"{result.path}: a clone of a state repository; configured only, nothing committed.")
        for line in result.configured:
            click.echo(f"  set {line}")
        return
    if not result.changed:
        click.echo(f"{result.path} is already a state repository; nothing to do.")
        return
    if result.created_repo:
        click.echo(f"Initialized a git repository in {result.path} (branch main)")
    for rel in result.added:
        click.echo(f"  added {rel}")
    if result.commit:
        click.echo(f"Committed {result.commit[:12]} on main.")


def state_for(ctx: click.Context, target: str | None, staged: bool):
    """The State named on the command line: a ref, the index, or a folder."""
    from aevolve._errors import NotARepository, RefNotFound, UsageError
    from aevolve._git.repo import MAIN, Repo
    from aevolve._state.model import State

    if staged:
        if target:
            raise UsageError("give either --staged or a REF/PATH, not both")
        repo = open_repo(ctx)
        return State.from_index(repo), repo
    base = Path(ctx.obj["repo_path"])
    if target is None:
        repo = open_repo(ctx)
        if repo.workdir is not None:
            return State.from_folder(repo.workdir, repo), repo
        return State.from_tree(repo, MAIN), repo
    folder = (base / target)
    if folder.is_dir():
        try:
            repo = Repo.open(folder)
        except NotARepository:
            repo = None
        return State.from_folder(folder, repo), repo
    repo = open_repo(ctx)
    try:
        return State.from_tree(repo, target), repo
    except RefNotFound:
        raise UsageError(f"{target!r} is neither a folder nor a revision of {repo.workdir or repo.git_dir}") from None


@click.command("validate")
@click.argument("target", required=False, metavar="[REF | PATH]")
@click.option("--staged", is_flag=True, help="Validate what is staged in the index.")
@click.option("--no-cache", is_flag=True, help="Re-check every file, ignoring cached results.")
@json_option
@click.pass_context
def validate_cmd(ctx, target, staged, no_cache, as_json) -> int:
    """Check the state against the schemas.

    Reads a commit (REF, no checkout needed), the index (--staged), or a folder
    (PATH; default: the working tree). Exit 0 valid, 1 invalid, 2 usage error.
    """
    from aevolve._state.validate import validate, validate_state

    if target is None and not staged:  # the work tree, read beside the cache (validate's own path)
        report = validate(open_repo(ctx), use_cache=not no_cache)
    else:
        state, repo = state_for(ctx, target, staged)
        report = validate_state(state, repo, use_cache=not no_cache)
    if as_json:
        echo_json(report.to_dict())
    else:
        lines = [style(str(p), fg="red" if p.severity == "error" else "yellow")
                 for p in report.errors + report.warnings]
        if lines:
            click.echo("\n".join(lines))  # one write: a large state can have thousands
        verdict = style("valid", fg="green") if report.ok else style("invalid", fg="red")
        click.echo(
            f"{report.origin}: {verdict} — {report.files_checked} files checked, "
            f"{len(report.errors)} errors, {len(report.warnings)} warnings"
        )
    return 0 if report.ok else 1


@click.command("status")
@json_option
@click.pass_context
def status_cmd(ctx, as_json) -> None:
    """Where the state repository stands: main, open evolutions, changes, validity."""
    from aevolve._state.status import status

    info = status(open_repo(ctx))
    if as_json:
        echo_json(info.to_dict())
        return
    click.echo(f"repository: {info.repo}")
    click.echo(f"main:       {info.main[:12] + '  ' + (info.main_subject or '') if info.main else '(no commits yet)'}")
    if info.branches:
        click.echo(f"evolution branches not yet on main ({len(info.branches)}):")
        for b in info.branches:
            click.echo(f"  {b['branch']}  {b['subject']}")
    else:
        click.echo("evolution branches: none open")
    if info.worktree_changes is not None:
        n = len(info.worktree_changes)
        click.echo("working tree: same as main" if n == 0 else f"working tree: {n} file(s) differ from main")
    if info.valid is not None:
        verdict = style("valid", fg="green") if info.valid else style(f"invalid ({info.errors} errors)", fg="red")
        click.echo("state:      " + verdict + (f", {info.warnings} warnings" if info.warnings else ""))
