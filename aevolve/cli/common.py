"""Helpers shared by the command modules: the repository, --json, printing."""

from __future__ import annotations

import json
import sys

import click


def open_repo(ctx: click.Context):
    from aevolve._git.repo import Repo

    repo = Repo.open(ctx.obj["repo_path"] if ctx.obj else ".")
    if not _inside_git(ctx):
        heal(repo)
    return repo


def _inside_git(ctx: click.Context) -> bool:
    """Run by git itself (a hook): git may hold the index lock; the next command heals."""
    current: click.Context | None = ctx
    while current is not None:
        if current.info_name in ("hook", "merge-jsonl"):
            return True
        current = current.parent
    return False


def heal(repo) -> None:
    """Finish what a killed promotion left undone (see aevolve/_promote/journal.py), saying
    so on stderr; when it cannot be finished, say how and go on: the command may be the fix."""
    from aevolve._promote.journal import heal as heal_journal
    from aevolve._promote.journal import pending

    if not pending(repo):  # one stat on every command
        return
    from aevolve._git import early

    early.discard()  # a status started before the heal may miss what it changes
    from aevolve._errors import AevolveError

    try:
        healed = heal_journal(repo)
    except AevolveError as exc:
        click.echo(f"aevolve: warning: could not finish an interrupted promotion: {exc}", err=True)
        return
    for line in healed.messages:
        click.echo(f"aevolve: {line}", err=True)
    if healed.blocked:
        click.echo(f"aevolve: warning: {healed.blocked}", err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON document.")


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


_tty: tuple[object, bool] = (None, False)  # (stream, answer): style() asks once per printed line


def is_tty() -> bool:
    global _tty
    stream = sys.stdout
    if _tty[0] is not stream:  # tests and main() swap sys.stdout: ask again for a new stream
        _tty = (stream, stream.isatty())
    return _tty[1]


def style(text: str, **kwargs) -> str:
    """Colour only on a terminal; the colour codes are marked as ours (cli/terminal.py)."""
    if not is_tty():
        return text
    from aevolve.cli.terminal import own_escape

    start, _, end = click.style("\0", **kwargs).partition("\0")
    return own_escape(start) + text + own_escape(end)
