"""observe, observations, propose: evidence in, evolution branches out."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo, style


@click.command("observe")
@click.argument("sources", nargs=-1, required=True, metavar="FILE... | -")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "otel", "langsmith"]), default="jsonl",
              show_default=True, help="jsonl: observation records; otel: OTLP JSON traces (GenAI conventions); "
                                      "langsmith: an exported LangSmith runs file (JSON lines).")
@click.option("--skip-invalid", is_flag=True,
              help="With --format otel/langsmith: ingest the readable records, report and skip the others.")
@json_option
@click.pass_context
def observe_cmd(ctx, sources, fmt, skip_invalid, as_json) -> None:
    """Ingest observations (JSONL; - for stdin) into refs/aevolve/observations.

    Every line is validated first: one bad line and nothing is ingested (exit 3).
    main, the index and the working tree are never touched. With --format otel or
    langsmith, each agent run of an exported trace file becomes one observation.
    """
    if fmt != "jsonl":
        _observe_traces(ctx, sources, fmt, skip_invalid, as_json)
        return
    if skip_invalid:
        raise click.UsageError("--skip-invalid goes with --format otel or langsmith; observation JSONL is "
                               "all or nothing")
    from aevolve._state.observations import observe

    result = observe(open_repo(ctx), list(sources))
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"ingested {result.added} observation(s), {result.duplicates} already stored"
               + (f" (refs/aevolve/observations at {result.commit[:12]})" if result.commit else ""))
    for key in result.conflicts:
        click.echo(style(f"warning: {key} is already stored with different content; kept the stored one",
                         fg="yellow"), err=True)


def _observe_traces(ctx, sources, fmt, skip_invalid, as_json) -> None:
    from aevolve._ecosystem.traces import ingest

    result = ingest(open_repo(ctx), fmt, list(sources), skip_invalid=skip_invalid)
    for problem in result.skipped:
        click.echo(style(f"skipped: {problem}", fg="yellow"), err=True)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"ingested {result.added} run(s) from {fmt} as observations, {result.duplicates} already stored"
               + (f", {len(result.skipped)} invalid record(s) skipped" if result.skipped else "")
               + (f" (refs/aevolve/observations at {result.commit[:12]})" if result.commit else ""))
    for key in result.conflicts:
        click.echo(style(f"warning: {key} is already stored with different content; kept the stored one",
                         fg="yellow"), err=True)


@click.command("observations")
@click.option("--failed", is_flag=True, help="Only unsuccessful observations.")
@click.option("--since", metavar="DATE", help="Only observations at or after DATE (YYYY-MM-DD or RFC 3339).")
@json_option
@click.pass_context
def observations_cmd(ctx, failed, since, as_json) -> None:
    """List stored observations, oldest first."""
    from aevolve._state.observations import load_observations

    records = load_observations(open_repo(ctx), failed=True if failed else None, since=since)
    if as_json:
        echo_json(records)
        return
    if not records:
        click.echo("no observations" + (" match" if failed or since else " yet (see `aevolve observe`)"))
        return
    for r in records:
        fb = r["feedback"]
        mark = style("ok  ", fg="green") if fb["success"] else style("FAIL", fg="red")
        score = f" score={fb['score']:g}" if isinstance(fb.get("score"), (int, float)) else ""
        tags = f" [{', '.join(r['tags'])}]" if r.get("tags") else ""
        task = r["task"] if isinstance(r["task"], str) else __import__("json").dumps(r["task"], ensure_ascii=False)
        task = " ".join(task.split())
        click.echo(f"{r['id']}  {r['ts']}  {mark}{score}{tags}  {task[:70]}")


def _options(pairs) -> dict:
    """`-o KEY=VALUE` pairs; each VALUE is YAML (a number, a list...), read by the bounded loader."""
    from aevolve._errors import FileError
    from aevolve._state.model import load_yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"-o/--option takes KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = load_yaml(value, f"-o {key}") if value.strip() else ""
        except FileError as exc:
            raise click.UsageError(f"-o {key}: {exc.detail} (VALUE is read as YAML; quote text, "
                                   "e.g. -o 'key=\"[text\"')") from None
    return out


@click.command("propose")
@click.option("--evolver", "evolver_name", metavar="NAME",
              help="rules | patch | command | openai (default: aevolve.yaml evolver.default).")
@click.option("--base", default="main", show_default=True, help="The commit the proposal builds on.")
@click.option("--observations", "obs", multiple=True, metavar="IDS",
              help="Observation ids (comma-separated, repeatable); default: all.")
@click.option("--dry-run", is_flag=True, help="Print the would-be commit; write nothing.")
@click.option("--seed", type=int, default=0, show_default=True, help="Tie-breaking / sampling seed.")
@click.option("--focus", metavar="LAYER", help="Concentrate on one layer (prompts, skills, tools, memory).")
@click.option("--temperature", type=float, help="Sampling temperature for LLM evolvers.")
@click.option("--edits", type=click.Path(dir_okay=False), help="patch: YAML/JSON edit list or proposal document.")
@click.option("--diff", "diff_file", type=click.Path(dir_okay=False),
              help="patch: unified diff (as `git diff` prints).")
@click.option("--rationale", type=click.Path(dir_okay=False),
              help="patch: YAML file with title, diagnosis, change, expected_effect, evidence.")
@click.option("--title", help="patch: the subject line.")
@click.option("--diagnosis", help="patch: why the change is needed.")
@click.option("--change", help="patch: what the change does.")
@click.option("--expected-effect", help="patch: what should improve.")
@click.option("--evidence", help="patch: observation ids, comma-separated.")
@click.option("--layer", help="patch: the layer named in the subject.")
@click.option("--command", "command_argv", metavar="JSON",
              help='command: argv as JSON, e.g. \'["python", "evolve.py"]\'.')
@click.option("--timeout", type=float, help="command: seconds before the program is killed.")
@click.option("--model", help="openai: the model (default: aevolve.yaml evolver.openai.model, OPENAI_MODEL).")
@click.option("--base-url", help="openai: an OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1.")
@click.option("-o", "--option", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any evolver option (repeatable), e.g. -o model=gpt-4.1.")
@click.option("--push", "push", is_flag=False, flag_value="", default=None, metavar="[REMOTE]",
              help="Publish the new branch (and the observations, merged with REMOTE's first) to REMOTE "
                   "(default: main's upstream, else origin).")
@json_option
@click.pass_context
def propose_cmd(ctx, evolver_name, base, obs, dry_run, seed, focus, temperature, edits, diff_file, rationale,
                title, diagnosis, change, expected_effect, evidence, layer, command_argv, timeout, model, base_url,
                extra, push, as_json) -> int:
    """Run an evolver and open an evolve/* branch with one commit and its rationale.

    The working tree, index and current branch are untouched. Exit 0 (also when
    there is nothing to propose), 4 refused by policy, 5 evolver failed.
    """
    from aevolve._errors import UsageError
    from aevolve._propose.run import default_evolver, propose

    repo = open_repo(ctx)
    patch_opts = {"edits": edits, "diff": diff_file, "rationale": rationale, "title": title, "diagnosis": diagnosis,
                  "change": change, "expected_effect": expected_effect, "evidence": evidence, "layer": layer}
    command_opts = {"command": command_argv, "timeout": timeout}
    openai_opts = {"model": model, "base_url": base_url}
    if evolver_name is None:
        if any(v is not None for v in patch_opts.values()):
            evolver_name = "patch"
        elif command_argv is not None:
            evolver_name = "command"
        else:
            evolver_name = default_evolver(repo, base)
    options = {}
    for name, group in (("patch", patch_opts), ("command", command_opts), ("openai", openai_opts)):
        given = {k: v for k, v in group.items() if v is not None}
        if evolver_name == name:
            options.update(given)
        elif given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UsageError(f"{flags} only appl{'ies' if len(given) == 1 else 'y'} to the {name} evolver")
    options.update(_options(extra))
    ids = [i.strip() for chunk in obs for i in chunk.split(",") if i.strip()] or None
    result = propose(repo, evolver=evolver_name, base=base, observation_ids=ids, evolver_options=options,
                     dry_run=dry_run, seed=seed, focus=focus, temperature=temperature)
    pushed = _push_proposal(repo, result, push, base) if push is not None and not dry_run else []
    if as_json:
        echo_json({**result.to_dict(), **({"pushed": pushed} if push is not None else {})})
        return 0
    if result.nothing_to_do:
        click.echo(f"nothing to propose: {result.reason}")
        return 0
    head = "dry run: would create" if dry_run else "created"
    where = f" at {result.commit[:12]}" if result.commit else ""
    click.echo(style(f"{head} {result.branch}{where} (base {base} {result.base[:12]})", bold=True))
    click.echo("")
    click.echo(result.message.rstrip())
    click.echo("")
    click.echo("Edits:")
    for line in result.summary:
        click.echo(f"  {line}")
    if result.proposal is not None and result.proposal.usage:
        click.echo("Usage: " + ", ".join(f"{k}={v}" for k, v in result.proposal.usage.items()))
    if pushed:
        click.echo(f"\npushed {', '.join(pushed)}")
    if not dry_run:
        click.echo(f"\nnext: aevolve gate {result.branch}")
    return 0


def _push_proposal(repo, result, remote: str, base: str) -> list[str]:
    """`propose --push`: publish the new branch (nothing when there was nothing to propose)."""
    from aevolve._remote.publish import publish_proposal

    if result.nothing_to_do or not result.commit or not result.branch:
        return []
    main = base if base in ("main", "refs/heads/main") else "main"
    return publish_proposal(repo, result.branch, remote or None, main=main)
