"""demo: the whole loop, offline, on a sample agent."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option


@click.command("demo")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@json_option
def demo_cmd(path: str | None, as_json: bool) -> None:
    """Run observe -> propose -> gate -> promote offline on a sample agent.

    Builds the sample state repository in PATH (default: a new temporary
    folder), then shows a proposal the gate accepts and one it rejects.
    """
    from aevolve._demo import run_demo

    result = run_demo(path, echo=(lambda line: None) if as_json else click.echo)
    if as_json:
        echo_json(result.to_dict())
