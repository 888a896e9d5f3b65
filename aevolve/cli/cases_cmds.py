"""cases: the gate's case files (`cases import promptfoo`; more subcommands join this group)."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo


@click.group("cases")
def cases_cmd() -> None:
    """Work with the gate's case files (the exam under evals/)."""


@cases_cmd.group("import")
def cases_import_cmd() -> None:
    """Convert another tool's eval suite into aevolve cases."""


@cases_import_cmd.command("promptfoo")
@click.argument("config", metavar="PROMPTFOOCONFIG", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="evals/promptfoo.yaml", show_default=True, metavar="evals/FILE.yaml",
              help="The case file to write, relative to the repository root; never overwritten.")
@click.option("--partial", is_flag=True, help="Write the tests that convert even when others do not.")
@json_option
@click.pass_context
def cases_import_promptfoo_cmd(ctx: click.Context, config: str, output: str, partial: bool, as_json: bool) -> None:
    """Convert a promptfoo config's tests into an aevolve case file (an exam change to commit)."""
    from aevolve._ecosystem.promptfoo import import_promptfoo

    repo = open_repo(ctx)
    if repo.workdir is None:
        raise click.UsageError("a case file is written into a checkout; this repository is bare")
    result = import_promptfoo(config, repo.workdir, output, partial=partial)
    if as_json:
        echo_json(result.to_dict())
        return
    conversion = result.conversion
    for problem in conversion.problems:
        click.echo(f"aevolve: not converted: {problem}", err=True)
    for note in conversion.notes:
        click.echo(f"aevolve: note: {note}", err=True)
    click.echo(f"wrote {len(conversion.cases)} case(s) to {result.path}")
    click.echo("  review and commit it: an exam change is a maintainer change and needs approval (docs/gate.md)")


@cases_cmd.command("propose")
@click.option("--from", "observation_ids", multiple=True, metavar="OBS",
              help="An observation id to turn into a case (repeatable; default: every failed observation "
                   "with a correct answer or guidance that main's exam does not have yet).")
@click.option("-o", "--output", default=None, metavar="evals/FILE.yaml",
              help="The case file to write, relative to the repository root; never overwritten "
                   "[default: evals/field-YYYYMMDD.yaml].")
@click.option("--input-key", default=None, metavar="KEY",
              help="Give the agent the observation's task as {KEY: task} (default: the task as it is).")
@click.option("--dry-run", is_flag=True, help="Show the cases; write nothing.")
@json_option
@click.pass_context
def cases_propose_cmd(ctx: click.Context, observation_ids: tuple[str, ...], output: str | None,
                      input_key: str | None, dry_run: bool, as_json: bool) -> None:
    """Turn failed observations that carry the right answer into new eval cases (an exam change).

    The file is written into the checkout for you to review and commit; the commit
    changes the exam, so it needs approval like any exam change. See docs/evolve.md.
    """
    from aevolve._evolve.cases import propose_cases

    repo = open_repo(ctx)
    result = propose_cases(repo, observation_ids=list(observation_ids) or None, output=output,
                           input_key=input_key, dry_run=dry_run)
    if as_json:
        echo_json(result.to_dict())
        return
    for line in result.skipped:
        click.echo(f"aevolve: skipped {line}", err=True)
    if not result.cases:
        click.echo("no failed observation teaches a new case")
        return
    verb = "would write" if dry_run else "wrote"
    click.echo(f"{verb} {len(result.cases)} case(s) to {result.path}: {', '.join(c['id'] for c in result.cases)}")
    if not dry_run:
        click.echo("  check each expected answer (field feedback can be wrong), then commit it: "
                   "an exam change needs approval (docs/gate.md)")
