"""diff, review, log, rollback: reading and undoing evolution."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, is_tty, json_option, open_repo


@click.command("diff")
@click.argument("a", required=False, metavar="[A")
@click.argument("b", required=False, metavar="[B]]")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="Output layout.")
@click.option("--stat", is_flag=True, help="Only counts per layer.")
@click.option("--full", is_flag=True, help="Whole values and every memory record (not cut at 160 characters).")
@json_option
@click.pass_context
def diff_cmd(ctx, a, b, fmt, stat, full, as_json) -> None:
    """Show what changed between two states, layer by layer.

    A defaults to main. B defaults to the working tree when the checkout has
    changes, else to the current branch (HEAD). Either may be any revision, or
    :worktree / :index. Works in bare repositories with revisions.
    """
    import pygit2

    from aevolve._review.diff import default_sides, semantic_diff

    # A read-only display: skip libgit2's re-hash of every blob read (git does
    # not verify on read either); it is 40% of reading a 30 MB memory file.
    pygit2.option(pygit2.enums.Option.ENABLE_STRICT_HASH_VERIFICATION, False)
    repo = open_repo(ctx)
    a, b = default_sides(repo, a, b)
    result = semantic_diff(repo, a, b)
    fmt = "json" if as_json else fmt
    color = fmt == "text" and is_tty()
    click.echo(result.render(fmt, stat=stat, full=full, paint=_paint if color else None), nl=False)


# the kinds aevolve._review.render paints; "+!" / "-!" are the changed words of a long line
_STYLES: dict[str, dict] = {"+": {"fg": "green"}, "-": {"fg": "red"}, "@": {"fg": "cyan"}, "~": {"fg": "yellow"},
                            "bold": {"bold": True}, "alarm": {"fg": "red", "bold": True},
                            "+!": {"fg": "black", "bg": "green"}, "-!": {"fg": "black", "bg": "red"}}


def _paint(text: str, kind: str) -> str:
    """Colours through cli.common.style, so the terminal filter keeps them (raw escapes it would show)."""
    from aevolve.cli.common import style

    return style(text, **_STYLES[kind]) if kind in _STYLES and text else text


@click.command("review")
@click.argument("branch")
@click.option("--base", default="main", show_default=True, help="The branch the pull request targets.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the Markdown body to FILE (for `gh pr create --body-file FILE`).")
@click.option("--full", is_flag=True, help="Whole memory records and outputs, not cut.")
@json_option
@click.pass_context
def review_cmd(ctx, branch, base, output, full, as_json) -> None:
    """Print the pull-request body for BRANCH: rationale, evidence, semantic diff, gate results.

    Flips first (regressions, fixes, still failing) with both outputs side by side; the
    body stays within GitHub's 65,536-character limit and says what it left out.
    """
    from aevolve._review.review import build_review

    result = build_review(open_repo(ctx), branch, base, full=full)
    if as_json:
        import json

        text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
    else:
        text = result.markdown()
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


_STATUS_MARK = {"main": "*", "rejected": "x", "ungated": "?", "accepted": "+", "partial": "~"}


@click.command("log")
@click.option("--all", "show_all", is_flag=True, help="Also rejected and ungated proposals (evolve/* branches).")
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N entries.")
@click.option("--base", default="main", show_default=True)
@json_option
@click.pass_context
def log_cmd(ctx, show_all, limit, base, as_json) -> None:
    """The evolution history of main, newest first: evolver, evidence, gate score."""
    from aevolve._review.history import log
    from aevolve.cli.common import style

    entries = log(open_repo(ctx), all=show_all, n=limit, base=base)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo(f"no commits on {base}")
        return
    for e in entries:
        mark = _STATUS_MARK.get(e.status, " ")
        score = e.score or ("not gated" if e.aevolve or e.status != "main" else "")
        who = f"[{e.evolver or '?'}, {len(e.evidence)} evidence]" if e.aevolve else "[not aevolve]"
        colour = {"rejected": "red", "ungated": "yellow", "accepted": "green"}.get(e.status)
        head = f"{mark} {e.short} {e.date[:10]} {score:<16} {who} {e.subject}"
        click.echo(style(head, fg=colour) if colour else head)
        if e.branch:
            click.echo(f"    {e.status} · {e.branch}")
            if e.status == "rejected":
                for reason in (e.gate or {}).get("reasons", [])[:5]:
                    click.echo(f"    - {reason}")


@click.command("rollback")
@click.argument("ref")
@click.option("--base", default="main", show_default=True, help="The branch the rollback builds on.")
@click.option("--reason", help="Why: goes into the rationale's Diagnosis.")
@click.option("--evidence", multiple=True, metavar="OBS_ID", help="Observation ids that call for it (repeatable).")
@json_option
@click.pass_context
def rollback_cmd(ctx, ref, base, reason, evidence, as_json) -> None:
    """Open an evolution branch that restores REF's prompts, skills, tools and memory.

    Protected paths (evals/, aevolve.yaml) stay as on the base. History is
    never rewritten: the branch goes through `aevolve gate` like any change.
    """
    from aevolve._review.history import rollback

    result = rollback(open_repo(ctx), ref, base=base, reason=reason, evidence=list(evidence))
    if as_json:
        echo_json(result.to_dict())
        return
    if result.nothing_to_do:
        click.echo(result.reason)
        return
    click.echo(f"Opened {result.branch} ({result.commit[:12]}): {result.message.splitlines()[0]}")
    for line in result.summary:
        click.echo(f"  {line}")
    click.echo(f"Next: aevolve review {result.branch}   then   aevolve gate {result.branch}")
