"""Repository settings aevolve relies on: attributes, merge/diff drivers, refspecs.

Called by `aevolve init` and `aevolve hooks install`; every step is idempotent
(a second run finds everything in place and changes nothing).

- `.gitattributes` (a state file, committed by `aevolve init`) routes memory
  JSONL through the `aevolve-jsonl` merge and diff drivers (the diff
  driver's textconv, `textconv_jsonl`, is here; the merge driver is
  `aevolve._state.merge.merge_jsonl`).
- The drivers themselves live in the repository's own config (`.git/config`):
  git never runs a command named by a cloned file, so each clone opts in by
  running `aevolve init` or `aevolve hooks install`.
- Refspecs, per remote, so a plain `git fetch`/`git push` carries the gate
  notes (`refs/notes/aevolve`) and aevolve's own refs (`refs/aevolve/*`, the
  observations). See docs/hooks.md for why each one looks the way it does.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field

from aevolve._git.repo import Repo

DRIVER = "aevolve-jsonl"
ATTRIBUTES = f"memory/**/*.jsonl merge={DRIVER} diff={DRIVER}\n"


def aevolve_command() -> str:
    """How git should start aevolve: this interpreter, absolute, shell-quoted.

    Git runs driver commands through `sh -c`, so this is the one place a shell
    string is unavoidable; the only variable part is our own interpreter path,
    quoted. Using the absolute interpreter makes drivers and hooks work without
    an activated virtualenv.
    """
    return f"{shlex.quote(sys.executable)} -m aevolve"


def driver_config() -> dict[str, str]:
    cmd = aevolve_command()
    return {
        f"merge.{DRIVER}.name": "aevolve: merge memory JSONL record by record (matched by id)",
        # git shell-quotes the %-placeholders it substitutes
        f"merge.{DRIVER}.driver": f"{cmd} merge-jsonl %O %A %B %P",
        f"diff.{DRIVER}.textconv": f"{cmd} hook textconv-jsonl",
    }


def textconv_jsonl(data: bytes) -> str:
    """One record per line, keys sorted with `id` first, records sorted by id.

    `git diff` then shows a changed record as one changed line and ignores
    reordering; lines that are not JSON objects are kept, after the records.
    """
    from aevolve._state.jsonl import lines, record_key

    records, other = [], []
    for line in lines(data.decode("utf-8", "replace")):
        value = line.record
        if value is not None:
            ordered = {"id": value["id"]} if "id" in value else {}
            ordered.update({k: value[k] for k in sorted(value) if k != "id"})
            records.append((record_key(value), json.dumps(ordered, ensure_ascii=False, sort_keys=False)))
        else:
            other.append(line.raw.rstrip())
    records.sort(key=lambda r: r[0])
    return "".join(text + "\n" for _, text in records) + "".join(line + "\n" for line in other)



def remote_refspecs(remote: str) -> dict[str, list[str]]:
    """The fetch and push refspecs aevolve adds to `remote`.

    fetch: the notes and aevolve refs go straight to the local refs *without*
    `+`: they only ever fast-forward, so a diverged local note (gated here and
    there) is never overwritten — git refuses that one ref loudly instead. The
    forced copy under refs/notes/remotes/<remote>/ always lands, so the two
    can be merged with `git notes --ref=aevolve merge`. Patterns (`aevolve*`)
    rather than exact names, because git fails a fetch whose exact source ref
    the remote does not have yet.
    push: `HEAD` first keeps a plain `git push` pushing the current branch
    (any configured push refspec replaces push.default), then the notes and
    aevolve refs, so main and its gate note travel in the same push.
    """
    return {
        "fetch": [
            "refs/notes/aevolve*:refs/notes/aevolve*",
            f"+refs/notes/aevolve*:refs/notes/remotes/{remote}/aevolve*",
            "refs/aevolve/*:refs/aevolve/*",
        ],
        "push": [
            "HEAD",
            "refs/notes/aevolve*:refs/notes/aevolve*",
            "refs/aevolve/*:refs/aevolve/*",
        ],
    }


@dataclass
class SetupReport:
    files: list[str] = field(default_factory=list)  # state files added or changed
    config: list[str] = field(default_factory=list)  # "key = value" lines added to .git/config


def configured(repo: Repo) -> tuple[dict[str, str | None], dict[str, dict]]:
    """What `setup` would configure, as it stands: each driver key's value, and per
    remote whether every aevolve refspec is there (and which are missing)."""
    config = repo.config_list(local=True)
    drivers: dict[str, str | None] = {key: (config.get(key.lower()) or [""])[-1] or None for key in driver_config()}
    refspecs: dict[str, dict] = {}
    for remote in repo.remotes():
        have = {f"{kind} {spec}" for kind in ("fetch", "push")
                for spec in config.get(f"remote.{remote}.{kind}".lower(), [])}
        wanted = [f"{k} {s}" for k, specs in remote_refspecs(remote).items() for s in specs if s != "HEAD"]
        refspecs[remote] = {"configured": all(w in have for w in wanted),
                            "missing": [w for w in wanted if w not in have]}
    return drivers, refspecs


def setup(repo: Repo, *, attributes: bool = True, drivers: bool = True, refspecs: bool = True) -> SetupReport:
    report = SetupReport()
    if attributes and repo.workdir is not None:
        path = repo.workdir / ".gitattributes"
        current = path.read_text() if path.exists() else ""
        if ATTRIBUTES.strip() not in (line.strip() for line in current.splitlines()):
            sep = "" if not current or current.endswith("\n") else "\n"
            path.write_text(current + sep + ATTRIBUTES)
            report.files.append(".gitattributes")
    config = repo.config_list(local=True)
    if drivers:
        for key, value in driver_config().items():
            # keys are case-insensitive in section and name; the driver name is lower-case already
            if config.get(key.lower()) != [value]:
                repo.set_config(key, value)
                report.config.append(f"{key} = {value}")
    if refspecs:
        for remote in repo.remotes():
            for kind, specs in remote_refspecs(remote).items():
                key = f"remote.{remote}.{kind}"
                have = config.get(key.lower(), [])
                for spec in specs:
                    if spec == "HEAD" and have:
                        continue  # the user already chose what `git push` pushes
                    if spec not in have:
                        repo.set_config(key, spec, add=True)
                        have = [*have, spec]
                        report.config.append(f"{key} = {spec}")
    return report


def configure_repo(repo: Repo) -> list[str]:
    """Write what is missing; returns the state files it added or changed."""
    return setup(repo).files
