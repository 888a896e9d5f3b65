"""The server's pre-receive hook: the rules a client can skip, enforced on the remote.

`main` only fast-forwards, to commits with an accepting gate note; gate notes
are never deleted or rewritten; evolver commits (Aevolve-Proposal trailer)
never touch protected paths.

Inside pre-receive the pushed objects sit in a quarantine directory that only
the `git` command knows about (GIT_QUARANTINE_PATH & co.), and refs still hold
their old values: everything here reads through `git`, never pygit2.
"""

from __future__ import annotations

import json
import re

from . import config as config_mod
from .hooks import HookOutcome, main_branch_ref
from .repo import MAIN, NOTES_REF, ZERO, Repo

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _cat_batch(repo: Repo, names: list[str]) -> list[bytes | None]:
    """Contents of each object name (`sha`, `rev:path`), None where missing; one process."""
    if not names:
        return []
    proc = repo.run_git(["cat-file", "--batch"], input=("\n".join(names) + "\n").encode(), check=False)
    out, pos, results = proc.stdout, 0, []
    for _ in names:
        nl = out.find(b"\n", pos)
        if nl < 0:
            results.append(None)
            continue
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) == 3 and header[2].isdigit():
            size = int(header[2])
            results.append(out[pos:pos + size])
            pos += size + 1
        else:
            results.append(None)
    return results


def _note_paths(commit: str) -> list[str]:
    # git notes trees use fan-out once they grow: ab/cdef..., ab/cd/ef...
    return [commit, f"{commit[:2]}/{commit[2:]}", f"{commit[:2]}/{commit[2:4]}/{commit[4:]}"]


def _accepting_note(repo: Repo, notes_commits: list[str], commit: str) -> bool:
    from .notes import is_accepting

    names = [f"{n}:{p}" for n in notes_commits if n and n != ZERO for p in _note_paths(commit)]
    for data in _cat_batch(repo, names):
        if data is None:
            continue
        try:
            report = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(report, dict) and is_accepting(report, commit):
            return True
    return False


def _is_ancestor(repo: Repo, old: str, new: str) -> bool:
    return repo.run_git(["merge-base", "--is-ancestor", old, new], check=False).returncode == 0


def _server_config(repo: Repo) -> dict:
    from .state import CONFIG_FILE, FileError, load_yaml

    data = _cat_batch(repo, [f"{MAIN}:{CONFIG_FILE}"])[0]
    try:
        raw = load_yaml(data.decode("utf-8"), CONFIG_FILE) if data else {}
    except (FileError, UnicodeDecodeError):
        raw = {}  # a broken config never weakens the always-protected paths
    return config_mod.resolve(raw if isinstance(raw, dict) else {})


_PROPOSAL = re.compile(rb"^Aevolve-Proposal\s*:", re.IGNORECASE | re.MULTILINE)


def _new_commits(repo: Repo, tips: list[str]) -> list[list[str]]:
    """[sha, parents...] of every commit reachable from `tips` that the repository lacks."""
    if not tips:
        return []
    proc = repo.run_git(["rev-list", "--parents", *tips, "--not", "--all"], check=False)
    return [line.split() for line in proc.stdout.splitlines() if line.strip()]


def _changed_paths(repo: Repo, sha: str, parents: list[str]) -> list[str]:
    base = parents[0] if parents else EMPTY_TREE  # a merge: what it brings onto its first parent
    proc = repo.run_git(["diff-tree", "-r", "-z", "--name-only", "--no-renames", base, sha], input=b"", check=False)
    return [p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p]


def pre_receive(repo: Repo, stdin: str) -> HookOutcome:
    updates = [(old, new, ref) for old, new, ref in (line.split()[:3] for line in stdin.splitlines() if len(line.split()) >= 3)]
    cfg = _server_config(repo)
    main_ref = main_branch_ref(cfg)
    main = main_ref.removeprefix("refs/heads/")
    lines: list[str] = []
    current_notes = repo.run_git(["rev-parse", "-q", "--verify", NOTES_REF], check=False).stdout.strip()
    pushed_notes = next((new for old, new, ref in updates if ref == NOTES_REF and new != ZERO), "")

    for old, new, ref in updates:
        if ref == NOTES_REF:
            if new == ZERO:
                lines.append(f"aevolve: refusing to delete {NOTES_REF}: the gate notes are the record of what was accepted.")
            elif old != ZERO and not _is_ancestor(repo, old, new):
                lines += [
                    f"aevolve: refusing a non-fast-forward update of {NOTES_REF}: gate notes are only ever added.",
                    f"  Fetch and merge them first: `git fetch origin` then "
                    f"`git notes --ref=aevolve merge -s theirs refs/notes/remotes/origin/aevolve`, and push again.",
                ]
            continue
        if ref != main_ref:
            continue
        if new == ZERO:
            lines.append(f"aevolve: refusing to delete {main}: it is the agent's gated state.")
            continue
        if old != ZERO and not _is_ancestor(repo, old, new):
            lines += [
                f"aevolve: refusing a non-fast-forward update of {main} ({old[:12]} -> {new[:12]}): "
                f"{main} only moves forward, to gated commits; history is never rewritten.",
                f"  Rebase your change onto the current {main} (`git pull --rebase`), gate it, and push again; "
                "to undo a change use `aevolve rollback REF`, which opens a new gated commit.",
            ]
            continue
        if old == ZERO:
            continue  # the first main is the baseline every later gate compares against
        if not _accepting_note(repo, [pushed_notes, current_notes], new):
            lines += [
                f"aevolve: refusing {main} at {new[:12]}: it has no accepting gate note "
                f"(looked in {NOTES_REF}{' as pushed' if pushed_notes else ''}).",
                f"  Gate the commit (`aevolve gate {new[:12]}`, or `aevolve gate --promote` on its branch), "
                f"then push it together with its note: `git push origin {main} {NOTES_REF}`.",
            ]

    tips = [new for old, new, ref in updates if new != ZERO and not ref.startswith("refs/notes/")]
    commits = _new_commits(repo, tips)
    if commits:
        bodies = _cat_batch(repo, [c[0] for c in commits])
        for (sha, *parents), body in zip(commits, bodies):
            if body is None:
                continue
            _, _, message = body.partition(b"\n\n")
            if not _PROPOSAL.search(message):
                continue
            touched = sorted(p for p in _changed_paths(repo, sha, parents) if config_mod.is_protected(p, cfg))
            if touched:
                shown = ", ".join(touched[:5]) + (f" and {len(touched) - 5} more" if len(touched) > 5 else "")
                lines += [
                    f"aevolve: refusing evolver commit {sha[:12]} ({_line1(message)}): it carries an "
                    f"Aevolve-Proposal trailer and touches protected path(s): {shown}.",
                    "  Evolvers may not edit evals/, aevolve.yaml or other protected paths (protection.protected "
                    f"in {main}'s aevolve.yaml). Drop those edits from the proposal; a person changes "
                    "them in an ordinary commit without the trailer.",
                ]
    if lines:
        lines.append("aevolve: the whole push was refused; nothing was updated.")
    return HookOutcome(1 if lines else 0, lines)


def _line1(message: bytes) -> str:
    first = message.decode("utf-8", "replace").strip().splitlines()
    return first[0][:72] if first else "?"
