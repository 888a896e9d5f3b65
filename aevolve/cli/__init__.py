"""The command line: a thin face over the Python API.

Commands live in small modules and are imported only when run (or listed by
--help), so start-up stays instant. Every error becomes an exit code here,
in one place (see aevolve/errors.py for the table).
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

# command name -> "module:function"; each module imports only click at the top.
COMMANDS = {
    "init": "aevolve.cli.state_cmds:init_cmd",
    "validate": "aevolve.cli.state_cmds:validate_cmd",
    "status": "aevolve.cli.state_cmds:status_cmd",
    "observe": "aevolve.cli.propose_cmds:observe_cmd",
    "observations": "aevolve.cli.propose_cmds:observations_cmd",
    "propose": "aevolve.cli.propose_cmds:propose_cmd",
    "gate": "aevolve.cli.gate_cmds:gate_cmd",
    "promote": "aevolve.cli.promote_cmds:promote_cmd",
    "demo": "aevolve.cli.demo_cmd:demo_cmd",
    "hooks": "aevolve.cli.hooks_cmds:hooks_cmd",
    "hook": "aevolve.cli.hooks_cmds:hook_cmd",
    "merge-jsonl": "aevolve.cli.hooks_cmds:merge_jsonl_cmd",
    "diff": "aevolve.cli.review_cmds:diff_cmd",
    "review": "aevolve.cli.review_cmds:review_cmd",
    "log": "aevolve.cli.review_cmds:log_cmd",
    "rollback": "aevolve.cli.review_cmds:rollback_cmd",
    "approve": "aevolve.cli.trust_cmds:approve_cmd",
    "verify": "aevolve.cli.trust_cmds:verify_cmd",
    "sync": "aevolve.cli.remote_cmds:sync_cmd",
    "import": "aevolve.cli.import_cmds:import_cmd",
    "export": "aevolve.cli.import_cmds:export_cmd",
    "cases": "aevolve.cli.cases_cmds:cases_cmd",
    "gc": "aevolve.cli.gc_cmds:gc_cmd",
    "report": "aevolve.cli.report_cmds:report_cmd",
    "prune": "aevolve.cli.remote_cmds:prune_cmd",
    "evolve": "aevolve.cli.evolve_cmds:evolve_cmd",
    "completion": "aevolve.cli.completion_cmds:completion_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "repo_path", default=".", metavar="PATH", help="Run as if started in PATH (like git -C).")
@click.version_option(package_name="aevolve")
@click.pass_context
def cli(ctx: click.Context, repo_path: str) -> None:
    """aevolve: put a self-evolving agent's state under git and gate every change.

    The loop: observe -> propose -> gate -> promote. `aevolve demo` shows it offline.
    """
    ctx.obj = {"repo_path": repo_path}


# a full disk, a read-only file system, no permission, over quota: exit 7, not "error"
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT})


def main(argv: list[str] | None = None) -> None:
    from aevolve.cli.terminal import SafeStream

    # everything printed, ours or an agent's, reaches the terminal cleaned (cli/terminal.py)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        code = _run(argv)
        from aevolve.cli.gc_cmds import after_command

        after_command(argv, code)  # bounded growth after a writing command (docs/gc.md)
    finally:
        sys.stdout, sys.stderr = saved
    sys.exit(code if isinstance(code, int) else 0)


def _run(argv: list[str] | None) -> object:
    """The command's exit code: every error becomes its code here, in one place."""
    from aevolve._errors import AevolveError

    try:
        code = cli.main(args=argv, prog_name="aevolve", standalone_mode=False)
    except BrokenPipeError:  # `aevolve log | head`
        code = 0
    except click.exceptions.Abort:
        click.echo("aevolve: interrupted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except AevolveError as exc:
        click.echo(f"aevolve: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("aevolve: interrupted", err=True)
        code = 130
    except OSError as exc:  # a file we could not read or write: say which, not a traceback
        from aevolve._errors import STORAGE

        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"aevolve: {exc.strerror or exc}{where}", err=True)
        code = STORAGE if exc.errno in _STORAGE_ERRNOS else 1
    return code
