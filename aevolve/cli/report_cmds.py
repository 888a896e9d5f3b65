"""report: how the agent evolved, as one self-contained HTML page (or JSON)."""

from __future__ import annotations

import click

from aevolve.cli.common import is_tty, open_repo


@click.command("report")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
              help="Write to FILE (default: standard output; `-` too).")
@click.option("--since", metavar="REV", help="Start the history at REV, a commit on main's first-parent line.")
@click.option("--all", "show_all", is_flag=True,
              help="Also proposals that are neither promoted nor rejected: accepted but not promoted, partial, "
                   "and evolve/* branches never gated.")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html", show_default=True)
@click.option("--base", default="main", show_default=True, help="The branch whose history is reported.")
@click.pass_context
def report_cmd(ctx, output, since, show_all, fmt, base) -> None:
    """Write how the agent evolved: pass rate over main's history, rejected proposals,
    cases × versions, per-evolver figures, latency and cost (docs/report.md).

    The HTML page is one file that loads nothing: open it anywhere, attach it to a CI run.
    """
    from aevolve._errors import UsageError

    to_stdout = output in (None, "-")
    if fmt == "html" and to_stdout and is_tty():
        raise UsageError("the HTML report is one page: write it to a file with -o report.html "
                         "(or redirect standard output), or ask for --format json")
    from aevolve._report.history import build_report

    report = build_report(open_repo(ctx), since=since, all=show_all, base=base)
    text = _render(report, fmt)
    if to_stdout:
        click.echo(text, nl=False)
        return
    _write(output, text)
    s = report.summary()
    click.echo(f"wrote {output}: {s['versions']} version(s), {s['promotions']} promotion(s), "
               f"{s['rejections']} rejected proposal(s)", err=True)


def _render(report, fmt: str) -> str:
    if fmt == "json":
        import json

        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    from aevolve._report.page import render

    return render(report)


def _write(path: str, text: str) -> None:
    """Whole or not at all: a reader never opens half a page."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".aevolve-report-", dir=folder)
    try:
        os.fchmod(fd, 0o644)  # a page to share, not a secret (mkstemp makes 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
