"""hooks, hook, merge-jsonl: git integration (installed shims and the drivers git runs)."""

from __future__ import annotations

import sys

import click

from aevolve.cli.common import echo_json, json_option, open_repo


@click.group("hooks")
def hooks_cmd() -> None:
    """Install, remove and list aevolve's git hooks (see docs/hooks.md)."""


@hooks_cmd.command("install")
@click.option("--server", "server", metavar="BARE_REPO", type=click.Path(exists=True, file_okay=False),
              help="Install the pre-receive hook into this (bare) repository instead.")
@click.option("--force", is_flag=True,
              help="Where a hook exists and <name>.local is taken too, set the hook aside as "
                   "<name>.aevolve-backup (kept, no longer run) instead of refusing.")
@click.option("--allowed-signers", "allowed_signers", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --server: copy this allowed_signers file (git's ssh format) into the repository; "
                   "main then moves only with gate verdicts signed by one of its keys.")
@json_option
@click.pass_context
def install_cmd(ctx, server, force, allowed_signers, as_json) -> None:
    """Install the client hooks: pre-commit, commit-msg, pre-push.

    Also configures the memory JSONL merge/diff drivers and the refspecs that
    carry gate notes on fetch/push. An existing hook is moved to <name>.local
    and runs first. Running it again refreshes the shims and changes nothing else.
    """
    from aevolve._git.repo import Repo
    from aevolve._hooks.install import install

    repo = Repo.open(server) if server else open_repo(ctx)
    result = install(repo, server=bool(server), force=force, allowed_signers=allowed_signers)
    if as_json:
        echo_json(result.to_dict())
        return
    where = result.hooks_dir
    for name in result.written:
        click.echo(f"installed {name} in {where}")
    for name in result.unchanged:
        click.echo(f"{name}: already installed")
    for name in result.chained:
        click.echo(f"{name}: your existing hook now runs first, from {name}.local")
    for name, backup in result.backed_up.items():
        click.echo(f"{name}: --force: the previous hook was kept as {backup} and is no longer run")
    for line in result.config:
        click.echo(f"git config: {line}")
    for path in result.files:
        click.echo(f"updated {path} (commit it so every clone merges memory by record)")
    if result.allowed_signers:
        click.echo(f"allowed signers: {result.signer_keys} key(s) copied to {result.allowed_signers}; "
                   "main now moves only with gate verdicts signed by one of them")


@hooks_cmd.command("uninstall")
@click.option("--server", "server", metavar="BARE_REPO", type=click.Path(exists=True, file_okay=False),
              help="Remove the pre-receive hook from this (bare) repository.")
@json_option
@click.pass_context
def uninstall_cmd(ctx, server, as_json) -> None:
    """Remove aevolve's hooks; a hook that was chained (<name>.local) is put back."""
    from aevolve._git.repo import Repo
    from aevolve._hooks.install import uninstall

    result = uninstall(Repo.open(server) if server else open_repo(ctx))
    if as_json:
        echo_json(result.to_dict())
        return
    if not result.removed:
        click.echo(f"no aevolve hooks in {result.hooks_dir}")
    for name in result.removed:
        back = " (your original hook is back)" if name in result.restored else ""
        click.echo(f"removed {name}{back}")


@hooks_cmd.command("list")
@json_option
@click.pass_context
def list_cmd(ctx, as_json) -> None:
    """Show which hooks are installed, what they chain, and the driver/refspec setup."""
    from dataclasses import asdict

    from aevolve._hooks.install import list_hooks
    from aevolve._state.gitsetup import configured as git_setup

    repo = open_repo(ctx)
    hooks = list_hooks(repo)
    configured, refspecs = git_setup(repo)
    if as_json:
        echo_json({"hooks": [asdict(h) for h in hooks], "drivers": configured, "remotes": refspecs})
        return
    for h in hooks:
        extra = f" (runs {h.chained} first)" if h.chained else ""
        click.echo(f"{h.name:12} {h.status}{extra}")
    missing = [k for k, v in configured.items() if v is None]
    click.echo("drivers:     " + ("configured" if not missing else "missing " + ", ".join(missing)))
    for remote, info in refspecs.items():
        status = "refspecs configured" if info["configured"] else "missing " + ", ".join(info["missing"])
        click.echo(f"remote {remote}: " + status)


@click.group("hook", hidden=True)
def hook_cmd() -> None:
    """What installed hooks and git drivers run (not for direct use)."""


@hook_cmd.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--chain", metavar="PATH", help="The user's own hook to run first (the shim passes <hook>.local).")
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def hook_run_cmd(ctx, chain, name, args) -> int:
    """Run hook NAME as git would (ARGS and stdin as git passes them)."""
    from aevolve._errors import AevolveError, UsageError
    from aevolve._hooks import dispatch as hooks
    from aevolve._hooks.install import ALL_HOOKS

    if name not in ALL_HOOKS:
        raise UsageError(f"unknown hook {name!r}; aevolve runs {', '.join(ALL_HOOKS)}")
    # pre-push and pre-receive get ref lines on stdin: read once, give to both hooks
    stdin = sys.stdin.buffer.read() if name in ("pre-push", "pre-receive") else None
    code = hooks.run_chained(chain, list(args), stdin)
    if code != 0:
        click.echo(f"aevolve: your own {name} hook ({chain}) failed with exit code {code}", err=True)
        return code
    if name == "commit-msg" and not args:
        raise UsageError("commit-msg needs the message file (git passes it)")
    repo = open_repo(ctx)
    text = (stdin or b"").decode("utf-8", "replace")
    try:
        outcome = hooks.run(repo, name, list(args), text)
    except AevolveError:
        raise
    except Exception as exc:  # fail closed, in one line the pusher can read (no traceback over `remote:`)
        click.echo(f"aevolve: the {name} hook failed unexpectedly ({type(exc).__name__}: {exc}); "
                   "nothing was let through. Please report this.", err=True)
        return 1
    for line in outcome.messages:
        click.echo(line, err=True)
    return outcome.code


@hook_cmd.command("textconv-jsonl")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def textconv_cmd(path) -> None:
    """Print a memory JSONL file one sorted record per line (git's diff textconv)."""
    from pathlib import Path

    from aevolve._state.gitsetup import textconv_jsonl

    sys.stdout.write(textconv_jsonl(Path(path).read_bytes()))


@click.command("merge-jsonl")
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(exists=True, dir_okay=False))
@click.argument("theirs", type=click.Path(exists=True, dir_okay=False))
@click.argument("path", required=False, default="")
@json_option
def merge_jsonl_cmd(base, ours, theirs, path, as_json) -> int:
    """Merge memory JSONL record by record (git's merge driver: %O %A %B %P).

    Writes the result into OURS. Exit 0 merged cleanly, 1 conflicts (left in
    OURS between git-style conflict markers, as git expects).
    """
    from pathlib import Path

    from aevolve._state.merge import merge_jsonl

    def text(p):
        f = Path(p)
        return f.read_bytes().decode("utf-8", "replace") if f.exists() else ""

    shown = path or ours
    result = merge_jsonl(text(base), text(ours), text(theirs), shown)
    Path(ours).write_bytes(result.text.encode("utf-8"))
    if as_json:
        echo_json({"path": shown, "clean": not result.conflicts, "conflicts": result.conflicts})
    else:
        for line in result.conflicts:
            click.echo(f"aevolve merge-jsonl: conflict: {line}", err=True)
        if result.conflicts:
            click.echo(f"aevolve merge-jsonl: {shown}: resolve the records between <<<<<<< and >>>>>>>, "
                       "then `git add` the file", err=True)
    return 1 if result.conflicts else 0
