"""import, export: agents kept in other tools' formats (Letta Agent Files) in and out."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo


@click.group("import")
def import_cmd() -> None:
    """Make a state repository from another tool's agent (see docs/import.md)."""


@import_cmd.command("letta")
@click.argument("agent_file", metavar="AGENT.af", type=click.Path(dir_okay=False))
@click.argument("folder", metavar="[DIR]", required=False, type=click.Path(file_okay=False))
@json_option
def import_letta_cmd(agent_file: str, folder: str | None, as_json: bool) -> None:
    """Turn a Letta Agent File into a new state repository in DIR (default: a folder named after the agent)."""
    from aevolve._ecosystem.letta_repo import import_letta

    result = import_letta(agent_file, folder)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"imported {agent_file} into {result.path} ({len(result.files)} files)")
    for rel in result.files:
        click.echo(f"  {rel}")
    if result.commit:
        click.echo(f"Committed {result.commit[:12]} on main.")
    if result.observations or result.observations_skipped:
        click.echo(f"{result.observations} observation(s) from the message history ingested "
                   f"({result.observations_skipped} already stored)")


@click.group("export")
def export_cmd() -> None:
    """Write the state in another tool's format (see docs/import.md)."""


@export_cmd.command("letta")
@click.argument("rev", required=False, default="main")
@click.option("-o", "--output", required=True, metavar="AGENT.af", type=click.Path(dir_okay=False, allow_dash=True),
              help="Where to write the Agent File ('-' for stdout).")
@click.pass_context
def export_letta_cmd(ctx: click.Context, rev: str, output: str) -> None:
    """Write the state at REV (default: main) as a Letta Agent File."""
    from aevolve._ecosystem.letta_repo import export_letta

    text = export_letta(open_repo(ctx), rev)
    if output == "-":
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as stream:
        stream.write(text)
    click.echo(f"wrote {output}", err=True)
