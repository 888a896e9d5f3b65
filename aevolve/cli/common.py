"""Helpers shared by the command modules: the repository, --json, printing."""

from __future__ import annotations

import json
import sys

import click


def open_repo(ctx: click.Context):
    from aevolve._git.repo import Repo

    return Repo.open(ctx.obj["repo_path"] if ctx.obj else ".")


json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON document.")


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def is_tty() -> bool:
    return sys.stdout.isatty()


def style(text: str, **kwargs) -> str:
    """Colour only on a terminal."""
    return click.style(text, **kwargs) if is_tty() else text
