"""The client hook checks: what `pre-commit`, `commit-msg` and `pre-push` refuse.

A convenience, not enforcement: anyone can `--no-verify` past them. The
server's pre-receive (`aevolve._hooks.server`) is what holds.
"""

from __future__ import annotations

import os
from pathlib import Path

from aevolve import _config as config_mod
from aevolve._errors import AevolveError
from aevolve._git.repo import NOTES_REF, ZERO, Repo
from aevolve._hooks.outcome import HookOutcome, main_branch_ref


def _head_config(repo: Repo) -> dict:
    """The effective aevolve.yaml at HEAD (the index before the first commit)."""
    from aevolve._state.model import CONFIG_FILE, FileError, load_yaml

    data = None
    try:
        if not repo.head_is_unborn:
            data = repo.read(repo.tree("HEAD"), CONFIG_FILE)
        else:
            index = repo.index()
            data = repo.blob(index[CONFIG_FILE].id) if CONFIG_FILE in index else None
        raw = load_yaml(data.decode("utf-8"), CONFIG_FILE) if data else {}
    except (FileError, UnicodeDecodeError, AevolveError):
        raw = {}  # a broken aevolve.yaml is pre-commit's to report, not a reason to crash here
    return config_mod.resolve(raw if isinstance(raw, dict) else {})


# pre-commit ---------------------------------------------------------------------


def _staged_index(repo: Repo):
    """The index git is committing: GIT_INDEX_FILE when git set one (commit -a, commit PATH)."""
    return repo.index(os.environ.get("GIT_INDEX_FILE") or None)


def pre_commit(repo: Repo) -> HookOutcome:
    """Validate the staged state, reporting problems only in what this commit changes.

    Only the changed files, plus the config, manifest and the whole folders of
    touched skills (for the layout rules), are validated; the validation cache
    makes unchanged files free.
    """
    from aevolve._git.repo import TreeFile
    from aevolve._state.model import CONFIG_FILE, MANIFEST_FILE, State
    from aevolve._state.validate import validate_state

    index = _staged_index(repo)
    files = {e.path: TreeFile(e.path, str(e.id), e.mode) for e in index}
    if repo.head_is_unborn:
        changed = set(files)
    else:
        diff = repo.tree("HEAD").diff_to_index(index)  # the Index may have no repo attached
        changed = set()
        for delta in diff.deltas:
            changed.add(delta.old_file.path)
            changed.add(delta.new_file.path)
    if not changed:
        return HookOutcome()
    skills = {p.split("/")[1] for p in changed if p.startswith("skills/") and p.count("/") >= 2}
    keep = {p for p in changed if p in files} | ({CONFIG_FILE, MANIFEST_FILE} & files.keys())
    keep |= {p for p in files if p.startswith("skills/") and p.count("/") >= 2 and p.split("/")[1] in skills}
    state = State({p: files[p] for p in keep}, lambda f: repo.blob(f.oid), "the index")
    report = validate_state(state, repo)

    def relevant(problem) -> bool:
        if problem.path.endswith("/"):  # a folder-level (layout) problem
            return any(p.startswith(problem.path) for p in changed)
        return problem.path in changed

    errors = [p for p in report.errors if relevant(p)]
    warnings = [p for p in report.warnings if relevant(p)]
    lines = [str(p) for p in errors + warnings]
    if not errors:
        return HookOutcome(0, lines)
    noun = "error" if len(errors) == 1 else "errors"
    lines.append(
        f"aevolve pre-commit: the staged state has {len(errors)} {noun}; fix the file(s), "
        "`git add` them and commit again (`git commit --no-verify` skips this check)"
    )
    return HookOutcome(1, lines)


# commit-msg ---------------------------------------------------------------------

_SCISSORS = " ------------------------ >8 ------------------------"


def _clean_message(repo: Repo, text: str) -> str:
    """The message as git will store it: comment lines and the scissors part removed."""
    value = repo.config_value("core.commentChar")
    char = value if value is not None and len(value) == 1 else "#"
    out = []
    for line in text.splitlines():
        if line == char + _SCISSORS:
            break
        if line.startswith(char):
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"


def missing_sections(message: str, required: list[str]) -> list[str]:
    """The required sections the message lacks (a section may also be a trailer,
    e.g. `Aevolve-Evidence: obs-1`)."""
    from aevolve._propose.rationale import parse_trailers, sections

    found = sections(message, required)
    trailers = {k.lower(): v for k, v in parse_trailers(message).items()}
    return [name for name in required
            if not found.get(name) and not trailers.get(f"aevolve-{name.lower()}", "").strip()]


def commit_msg(repo: Repo, message_file: str) -> HookOutcome:
    cfg = _head_config(repo)
    hooks_cfg = cfg.get("hooks") or {}
    prefix = hooks_cfg.get("branch_prefix") or "evolve/"
    required = [str(s) for s in (hooks_cfg.get("rationale_sections") or [])]
    branch = repo.head_branch()
    if not branch or not branch.startswith("refs/heads/"):
        return HookOutcome()
    short = branch[len("refs/heads/"):]
    if not short.startswith(prefix) or not required:
        return HookOutcome()
    if (repo.git_dir / "MERGE_HEAD").exists():
        return HookOutcome()  # merging main into an evolution branch needs no new diagnosis
    try:
        text = Path(message_file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AevolveError(f"commit-msg: cannot read the message file {message_file}: {exc.strerror}") from None
    message = _clean_message(repo, text)
    missing = missing_sections(message, required)
    if not missing:
        return HookOutcome()
    lines = [
        f"aevolve commit-msg: commits on evolution branches ({prefix}*) need a rationale; "
        f"branch {short!r} is missing: {', '.join(missing)}.",
        "Add each as a section of the message body, e.g.:",
        "",
    ]
    for name in missing:
        lines += [f"    {name}:", f"    <{_hint(name)}>", ""]
    if any(n.lower() == "evidence" for n in missing):
        lines.append("Evidence may instead be a trailer: `Aevolve-Evidence: obs-1, obs-2`.")
    lines.append("(Sections required are set by hooks.rationale_sections in aevolve.yaml.)")
    return HookOutcome(1, lines)


def _hint(name: str) -> str:
    return {
        "diagnosis": "what went wrong, in which observations, and why",
        "evidence": "the observation ids or runs that show it",
        "change": "what this commit changes",
        "expected effect": "what should get better, and what must not change",
    }.get(name.lower(), "text")


# pre-push -----------------------------------------------------------------------


def parse_push_lines(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.append((parts[0], parts[1], parts[2], parts[3]))
    return out


def pre_push(repo: Repo, remote: str, stdin: str) -> HookOutcome:
    """Refuse what the server would refuse, before anything is sent.

    `main` may only move along verified transitions (the same verifier as the
    server, `verdicts.check_move`, over the local notes and the remote's
    fetched copy); it is never deleted, and no tag takes its name.
    """
    from aevolve._git.reader import GitReader

    main_ref = main_branch_ref(_head_config(repo))
    main = main_ref.removeprefix("refs/heads/")
    remote = remote or "origin"
    reader = GitReader(repo)
    lines = []
    for _local_ref, local_sha, remote_ref, remote_sha in parse_push_lines(stdin):
        if remote_ref == f"refs/tags/{main}" and local_sha != ZERO:
            lines.append(f"aevolve pre-push: refusing to push the tag {main!r} to {remote}: a tag named like "
                         f"the branch makes `{main}` ambiguous, and git resolves it to the tag. Name the tag "
                         "something else.")
        if remote_ref != main_ref:
            continue
        if local_sha == ZERO:
            lines.append(
                f"aevolve pre-push: refusing to delete {main} on {remote}: main is the agent's gated "
                "state and is never deleted."
            )
        elif remote_sha != ZERO:  # a first main is the baseline: nothing to gate it against
            lines += _main_move(repo, reader, remote, main, remote_sha, local_sha)
    return HookOutcome(1 if lines else 0, lines)


def _main_move(repo: Repo, reader, remote: str, main: str, old: str, new: str) -> list[str]:
    """Why moving the remote's main OLD -> NEW would be refused (empty: it would not)."""
    from aevolve._trust.verdicts import check_chain, local_trust

    if reader.commit(old) is None:
        return [f"aevolve pre-push: {remote}'s {main} is at {old[:12]}, which this clone does not have: "
                f"fetch it (`git fetch {remote}`), rebase onto it, and push again."]
    # a verdict the remote already has (fetched into its tracking copy) counts too; when
    # `remote` is a URL there is no such copy, and only local notes count
    problems = check_chain(reader, old, new, local_trust(repo, remote=remote))
    if not problems:
        return []
    return [
        f"aevolve pre-push: refusing to push {main} at {new[:12]} ({repo.subject(new)}) to {remote}: "
        f"not every commit it adds to {remote}'s {main} ({old[:12]}) carries a verified gate verdict:",
        *(f"  - {p}" for p in problems),
        f"  Only gated commits may become {main}. Gate each against its parent (`aevolve gate "
        "--promote` on its evolution branch does), then push the commit with its notes: "
        f"`git push {remote} {main} {NOTES_REF}`.",
    ]
