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
- `notes.displayRef` names the one-line verdicts (`refs/notes/aevolve-log`), so
  a plain `git log` shows "gate: ACCEPT ..." under each evolution commit.
- Refspecs, per remote, so a plain `git fetch`/`git push` carries the gate
  notes (`refs/notes/aevolve*`) and aevolve's own refs (`refs/aevolve/*`, the
  observations). A fetch only ever lands in remote-tracking copies
  (`tracking_ref`), never in the local refs, so it cannot fail after local
  gates; `aevolve sync` merges the copies in. See docs/hooks.md and docs/sync.md.
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
    from aevolve._git.notes import LOG_REF

    cmd = aevolve_command()
    return {
        f"merge.{DRIVER}.name": "aevolve: merge memory JSONL record by record (matched by id)",
        # git shell-quotes the %-placeholders it substitutes
        f"merge.{DRIVER}.driver": f"{cmd} merge-jsonl %O %A %B %P",
        f"diff.{DRIVER}.textconv": f"{cmd} hook textconv-jsonl",
        # `git log` shows the one-line verdicts; the JSON stays on refs/notes/aevolve
        "notes.displayRef": LOG_REF,
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



def tracking_ref(remote: str, ref: str) -> str:
    """Where a fetch from `remote` keeps its copy of `ref`, the remote's side of a
    sync: `refs/notes/remotes/R/...` for notes (git's own convention, which the
    pre-push hook reads), `refs/aevolve-remotes/R/...` for aevolve's refs,
    `refs/remotes/R/...` for branches."""
    for prefix, home in (("refs/notes/", f"refs/notes/remotes/{remote}/"),
                         ("refs/aevolve/", f"refs/aevolve-remotes/{remote}/"),
                         ("refs/heads/", f"refs/remotes/{remote}/")):
        if ref.startswith(prefix):
            return home + ref.removeprefix(prefix)
    raise ValueError(f"{ref} has no remote-tracking copy")


def remote_refspecs(remote: str) -> dict[str, list[str]]:
    """The fetch and push refspecs aevolve adds to `remote`.

    fetch: the notes and aevolve refs land only in forced remote-tracking
    copies (`tracking_ref`), never in the local refs: local gates make the
    local notes diverge from the server's all the time, and a fetch straight
    into them would then fail (`! [rejected] ... (non-fast-forward)`) or, with
    `+`, drop local verdicts. `aevolve sync` merges the copies into the local
    refs. Patterns (`aevolve*`) rather than exact names, because git fails a
    fetch whose exact source ref the remote does not have yet.
    push: `HEAD` first keeps a plain `git push` pushing the current branch
    (any configured push refspec replaces push.default), then the notes and
    aevolve refs, so main and its gate note travel in the same push.
    """
    return {
        "fetch": [
            f"+refs/notes/aevolve*:{tracking_ref(remote, 'refs/notes/aevolve*')}",
            f"+refs/aevolve/*:{tracking_ref(remote, 'refs/aevolve/*')}",
        ],
        "push": [
            "HEAD",
            "refs/notes/aevolve*:refs/notes/aevolve*",
            "refs/aevolve/*:refs/aevolve/*",
        ],
    }


# Fetch refspecs older versions configured: straight into the local refs, so a fetch
# after a local gate failed. `setup` removes them.
LEGACY_FETCH = ("refs/notes/aevolve*:refs/notes/aevolve*", "refs/aevolve/*:refs/aevolve/*")


@dataclass
class SetupReport:
    files: list[str] = field(default_factory=list)  # state files added or changed
    config: list[str] = field(default_factory=list)  # "key = value" lines added to .git/config


def configured(repo: Repo) -> tuple[dict[str, str | None], dict[str, dict]]:
    """What `setup` would configure, as it stands: each driver key's value, and per
    remote whether every aevolve refspec is there (and which are missing or outdated)."""
    config = repo.config_list(local=True)
    drivers: dict[str, str | None] = {key: (value if value in config.get(key.lower(), []) else None)
                                      for key, value in driver_config().items()}
    refspecs: dict[str, dict] = {}
    for remote in repo.remotes():
        have = {f"{kind} {spec}" for kind in ("fetch", "push")
                for spec in config.get(f"remote.{remote}.{kind}".lower(), [])}
        wanted = [f"{k} {s}" for k, specs in remote_refspecs(remote).items() for s in specs if s != "HEAD"]
        outdated = [f"fetch {s} (outdated: `aevolve hooks install` replaces it)"
                    for s in LEGACY_FETCH if f"fetch {s}" in have]
        missing = [w for w in wanted if w not in have] + outdated
        refspecs[remote] = {"configured": not missing, "missing": missing}
    return drivers, refspecs


def setup(repo: Repo, *, attributes: bool = True, drivers: bool = True, refspecs: bool = True) -> SetupReport:
    """Write what is missing (idempotent); `attributes=False` touches no file, only .git/config."""
    report = SetupReport()
    if attributes and repo.workdir is not None and _add_attributes(repo.workdir):
        report.files.append(".gitattributes")
    config = repo.config_list(local=True)
    if drivers:
        for key, value in driver_config().items():
            # keys are case-insensitive in section and name; the driver name is lower-case already
            have = config.get(key.lower(), [])
            multi = key == "notes.displayRef"  # multi-valued: keep the user's own display refs
            if (value not in have) if multi else (have != [value]):
                repo.set_config(key, value, add=multi)
                report.config.append(f"{key} = {value}")
    if refspecs:
        for remote in repo.remotes():
            for kind, specs in remote_refspecs(remote).items():
                key = f"remote.{remote}.{kind}"
                report.config += _set_refspecs(repo, key, config.get(key.lower(), []), specs)
    return report


def _add_attributes(workdir) -> bool:
    path = workdir / ".gitattributes"
    current = path.read_text() if path.exists() else ""
    if ATTRIBUTES.strip() in (line.strip() for line in current.splitlines()):
        return False
    sep = "" if not current or current.endswith("\n") else "\n"
    path.write_text(current + sep + ATTRIBUTES)
    return True


def _set_refspecs(repo: Repo, key: str, have: list[str], specs: list[str]) -> list[str]:
    """Add the missing `specs` to the multi-valued `key` and drop outdated ones; the
    "key = value" lines changed."""
    kept = [spec for spec in have if not (key.endswith(".fetch") and spec in LEGACY_FETCH)]
    added = [spec for spec in specs if spec not in kept and not (spec == "HEAD" and have)]
    # `HEAD` only when the user had no push refspec: theirs already say what `git push` pushes
    lines = [f"{key} = {spec} (removed: a fetch into the local ref fails after local gates)"
             for spec in have if spec not in kept]
    if len(kept) < len(have):  # git config cannot drop one exact value portably: rewrite the key
        wanted = kept + added
        repo.set_config(key, wanted[0])  # --replace-all
        for spec in wanted[1:]:
            repo.set_config(key, spec, add=True)
    else:
        for spec in added:
            repo.set_config(key, spec, add=True)
    return lines + [f"{key} = {spec}" for spec in added]


def configure_repo(repo: Repo) -> list[str]:
    """Write what is missing; returns the state files it added or changed."""
    return setup(repo).files
