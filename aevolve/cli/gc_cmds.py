"""`aevolve gc`, and the automatic upkeep after a writing command (docs/gc.md)."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo

# commands that write objects, trees or cache rows: the upkeep runs after them, as
# git porcelain runs `git gc --auto` after commit, merge, fetch...
WRITING = frozenset({"propose", "gate", "promote", "observe", "rollback", "approve"})


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove and pack nothing.")
@json_option
@click.pass_context
def gc_cmd(ctx: click.Context, dry_run: bool, as_json: bool) -> int:
    """Prune materialized gate trees, cached results and shared runs notes, then `git gc --auto`.

    Keeps the gc.keep_trees most recently used trees of .git/aevolve/trees and
    the gc.max_cache_rows most recently used rows of .git/aevolve/cache.sqlite,
    drops what went unused for gc.max_age_days (main's aevolve.yaml), never a
    tree a running gate uses. Drops the notes of refs/notes/aevolve-runs whose
    tree is neither among main's last gc.keep_trees commits nor an evolve/* tip
    and that gained no runs for gc.max_age_days. The same runs by itself after
    propose, gate, promote, observe, rollback and approve once a limit is passed
    twice over (the runs notes: once a day).
    Exit codes: 0 done, 7 .git/aevolve cannot be written.
    """
    from aevolve._gate.gc import collect, limits

    repo = open_repo(ctx)
    lim = limits(repo)
    result = collect(repo, lim, dry_run=dry_run)
    for warning in result.warnings:
        click.echo(f"aevolve: warning: {warning}", err=True)
    if as_json:
        echo_json({**result.to_dict(), "limits": {"keep_trees": lim.keep_trees, "max_cache_rows": lim.max_cache_rows,
                                                  "max_age_days": lim.max_age_days}})
        return 0
    verb = "would remove" if dry_run else "removed"
    trees = f"{verb} {result.trees_removed} materialized tree(s), {_size(result.tree_bytes)}"
    if result.leftovers_removed:
        trees += f" (with {result.leftovers_removed} folder(s) left by interrupted gates)"
    kept = f"; kept {result.trees_kept}"
    if result.trees_in_use:
        kept += f" ({result.trees_in_use} in use by a running gate)"
    click.echo(trees + kept)
    if dry_run:
        click.echo(f"would remove {result.rows_removed} cached result(s)")
    else:
        click.echo(f"removed {result.rows_removed} cached result(s); "
                   f"cache.sqlite shrank by {_size(result.cache_bytes)}")
    click.echo(f"{verb} {result.runs_notes_removed} runs note(s) of refs/notes/aevolve-runs, "
               f"{_size(result.runs_bytes)}; kept {result.runs_notes_kept}")
    if dry_run and result.loose_before is not None:
        click.echo(f"git: {result.loose_before} loose object(s), not packed (dry run)")
    elif result.loose_before is not None and result.loose_after is not None:
        click.echo(f"git gc --auto: {result.loose_before} loose object(s) before, {result.loose_after} after")
    return 0


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def after_command(argv: list[str] | None, code: object) -> None:
    """The automatic upkeep after a writing command that succeeded (a rejecting
    gate too: it ran). It never changes the command's outcome."""
    import sys

    name, repo_path = command_of(sys.argv[1:] if argv is None else argv)
    if name not in WRITING or code not in (0, 100) or (code == 100 and name != "gate"):
        return
    try:
        from aevolve._gate.gc import maintain
        from aevolve._git.repo import Repo

        maintain(Repo.open(repo_path))
    except KeyboardInterrupt:
        pass  # the command itself is done
    except Exception as exc:  # upkeep must not turn a success into a failure
        click.echo(f"aevolve: warning: automatic clean-up skipped ({exc}); run `aevolve gc` to retry", err=True)


def command_of(args: list[str]) -> tuple[str | None, str]:
    """(command name, -C path) of a command line; no name for --help or --version.
    The group's only options are -C PATH, --version and --help."""
    repo_path, rest = ".", iter(args)
    for token in rest:
        if token == "-C":
            repo_path = next(rest, ".")
        elif token.startswith("-C"):
            repo_path = token[2:]
        elif token.startswith("-"):
            return None, repo_path
        else:
            tail = list(rest)
            return (None if "--help" in tail or "-h" in tail else token), repo_path
    return None, repo_path
