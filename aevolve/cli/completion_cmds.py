"""completion: shell completion scripts for bash, zsh and fish.

The script is click's own, with one change: it asks `aevolve completion --serve`
for the candidates, so that branch and revision arguments (`gate BRANCH`,
`promote BRANCH`, `--base`, `approve REV`...) complete to `main`, the `evolve/*`
branches and the proposal ids on their tips, not only to commands and options.
"""

from __future__ import annotations

import os
import re

import click

SHELLS = ("bash", "zsh", "fish")
SERVE_VAR = "_AEVOLVE_SERVE"  # what the script sets: <shell>_complete
# where each click template starts aevolve: the serving subcommand is appended
_INVOCATION = {"bash": "bash_complete $1)", "zsh": "zsh_complete %(prog_name)s)",
               "fish": "COMP_CWORD=(commandline -t) %(prog_name)s)"}
# arguments and options that name a commit
REV_PARAMS = {"branch", "rev", "ref", "base", "a", "b"}
_PROPOSAL = re.compile(r"^Aevolve-Proposal:[ \t]*(p-[0-9a-z]{8})[ \t]*$", re.MULTILINE)


def _completer(shell: str):
    """click's completion class for `shell`, completing revisions too, and starting
    `aevolve completion --serve` instead of `aevolve` with click's variable set."""
    from click.shell_completion import get_completion_class

    base = get_completion_class(shell)
    if base is None:  # click ships all three
        raise click.UsageError(f"no completion for {shell}")
    anchor, template = _INVOCATION[shell], base.source_template
    if anchor not in template:
        raise click.ClickException(f"click's {shell} completion script changed; aevolve cannot adapt it")

    class Completer(base):  # type: ignore[valid-type,misc]
        source_template = template.replace(anchor, anchor[:-1] + " completion --serve)")

        def get_completions(self, args, incomplete):
            from click.shell_completion import _resolve_context, _resolve_incomplete

            ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, args)
            param, incomplete = _resolve_incomplete(ctx, args, incomplete)
            if isinstance(param, click.Parameter) and is_rev(param):
                return rev_items(ctx, incomplete)
            return param.shell_complete(ctx, incomplete)

    return Completer


def is_rev(param: click.Parameter) -> bool:
    metavar = str(getattr(param, "metavar", None) or "")
    return param.name in REV_PARAMS or "BRANCH" in metavar or "REV" in metavar


def revisions(repo_path: str) -> list[tuple[str, str]]:
    """(name, help) of what a revision argument completes to: main, the evolve/*
    branches, and the proposal ids on their tips; nothing outside a repository."""
    from aevolve._errors import AevolveError
    from aevolve._git.repo import Repo

    try:
        repo = Repo.open(repo_path)
        branches = repo.refs("refs/heads/")
    except (AevolveError, OSError, ValueError):
        return []
    out = [("main", "the promoted state")] if "refs/heads/main" in branches else []
    proposals: dict[str, str] = {}
    for ref in sorted(branches):
        if not ref.startswith("refs/heads/evolve/"):
            continue
        name = ref.removeprefix("refs/heads/")
        try:
            message = repo.message(branches[ref])
        except (AevolveError, KeyError, ValueError):
            continue
        subject = message.splitlines()[0] if message else ""
        out.append((name, subject[:60]))
        for found in _PROPOSAL.findall(message):
            proposals.setdefault(found, name)
    out += [(pid, f"proposal on {branch}") for pid, branch in sorted(proposals.items())]
    return out


def rev_items(ctx: click.Context, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    root = ctx.find_root()
    repo_path = (root.params or {}).get("repo_path") or "."
    return [CompletionItem(name, help=info or None) for name, info in revisions(repo_path)
            if name.startswith(incomplete)]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS), required=False)
@click.option("--serve", is_flag=True, hidden=True, help="Answer the completion script (it sets the variables).")
def completion_cmd(shell, serve) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash: eval "$(aevolve completion bash)"        (in ~/.bashrc)
    zsh:  eval "$(aevolve completion zsh)"         (in ~/.zshrc)
    fish: aevolve completion fish > ~/.config/fish/completions/aevolve.fish
    """
    from aevolve.cli import cli

    if serve:
        instruction = os.environ.get(SERVE_VAR, "")
        asked, _, _rest = instruction.partition("_")
        if asked not in SHELLS:
            raise click.UsageError(f"--serve is for the completion script (it sets {SERVE_VAR})")
        click.echo(_completer(asked)(cli, {}, "aevolve", SERVE_VAR).complete(), nl=False)
        return
    if shell is None:
        raise click.UsageError("name a shell: aevolve completion bash|zsh|fish")
    click.echo(_completer(shell)(cli, {}, "aevolve", SERVE_VAR).source())
