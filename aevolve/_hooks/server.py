"""The server's pre-receive hook: the rules a client can skip, enforced on the remote.

- `main` moves only forward, and only through verified transitions: every
  commit it gains carries a gate verdict on exactly its own step, checked by
  `aevolve._trust.verdicts.check_move` (signed by an allowed key when the repository
  has an allowed signers list: `aevolve hooks install --server --allowed-signers`).
- Gate notes, approvals and the display notes (`refs/notes/aevolve*`, the
  one-line verdicts `git log` shows included) only grow: never deleted,
  never rewound, and the note of a commit in `main` never changes.
- Evolver commits (an `Aevolve-Proposal` trailer) never change anything outside
  `main`'s evolvable layers, on whatever ref they arrive (tags and notes too).
- No tag may carry `main`'s name: git would resolve `main` to it.
- No new commit, on any ref, adds a path no checkout may safely hold
  (`aevolve._state.names`: `.git` and its NTFS/HFS aliases, `..`, control,
  zero-width and bidi characters ...), and no pushed tip adds a name that
  differs only in case from another one of its tree.

Inside pre-receive the pushed objects sit in a quarantine directory that only
the `git` command knows about (GIT_QUARANTINE_PATH & co.), and refs still hold
their old values: everything here reads through `git` (`verdicts.GitReader`),
never pygit2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aevolve._git.reader import GitReader
from aevolve._git.repo import APPROVALS_REF, MAIN, NOTES_REF, ZERO, Repo
from aevolve._hooks.outcome import HookOutcome, main_branch_ref

NOTES_PREFIX = "refs/notes/aevolve"  # the gate notes, the approvals, and any later aevolve notes
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
SHOWN = 5  # paths or commits named in one refusal line
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str


@dataclass
class Push:
    """One push as pre-receive sees it, and the server's `main` it is judged against."""

    repo: Repo
    reader: GitReader
    updates: list[Update]
    main_ref: str
    main_tip: str | None  # the current main (None in an empty repository)
    cfg: dict  # main's effective aevolve.yaml
    layers: list[str]  # main's evolvable layers
    _commits: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)  # pushed value -> its new commits
    _changed: dict[str, list[str]] = field(default_factory=dict)  # commit -> paths it changes

    @property
    def main(self) -> str:
        return self.main_ref.removeprefix("refs/heads/")

    def new_commits(self, u: Update) -> list[tuple[str, list[str]]]:
        """(sha, parents) of each commit `u` brings that the repository lacks (asked once per value)."""
        if u.new not in self._commits:
            self._commits[u.new] = _new_commits(self, u)
        return self._commits[u.new]

    def changed(self, sha: str, parents: list[str]) -> list[str]:
        """The paths commit `sha` changes against its first parent (asked once per commit)."""
        if sha not in self._changed:
            self._changed[sha] = self.reader.changed_paths(parents[0] if parents else EMPTY_TREE, sha)
        return self._changed[sha]

    def pushed(self, ref: str) -> str | None:
        """The value this push gives `ref`, None when the push leaves it alone."""
        return next((u.new for u in self.updates if u.ref == ref and u.new != ZERO), None)


def parse_updates(stdin: str) -> list[Update]:
    return [Update(*parts[:3]) for parts in (line.split() for line in stdin.splitlines()) if len(parts) >= 3]


def _open_push(repo: Repo, stdin: str) -> Push:
    from aevolve._trust.exam import read_config, read_layers

    reader = GitReader(repo)
    tip = reader.rev(MAIN)
    read = _tree_reader(reader, tip)
    cfg = read_config(read)
    main_ref = main_branch_ref(cfg)
    if main_ref != MAIN:  # aevolve.yaml names another branch: judge by that one
        tip = reader.rev(main_ref)
        read = _tree_reader(reader, tip)
        cfg = read_config(read)
    return Push(repo, reader, parse_updates(stdin), main_ref, tip, cfg, read_layers(read))


def _tree_reader(reader: GitReader, commit: str | None):
    info = reader.commit(commit) if commit else None
    return reader.reader(info.tree) if info else (lambda path: None)


def pre_receive(repo: Repo, stdin: str) -> HookOutcome:
    push = _open_push(repo, stdin)
    lines = (_tag_refusals(push) + _notes_refusals(push) + _main_refusals(push) + _name_refusals(push)
             + _evolver_refusals(push))
    if lines:
        lines.append("aevolve: the whole push was refused; nothing was updated.")
    return HookOutcome(1 if lines else 0, lines)


# -- refs/tags/<main> ------------------------------------------------------------------


def _tag_refusals(push: Push) -> list[str]:
    tag = f"refs/tags/{push.main}"
    if not any(u.ref == tag and u.new != ZERO for u in push.updates):
        return []
    return [
        f"aevolve: refusing {tag}: a tag named {push.main!r} makes `{push.main}` ambiguous, and git resolves "
        f"an ambiguous name to the tag, so every clone would gate and promote against the tag instead of "
        f"the branch {push.main_ref}.",
        "  Give the tag another name.",
    ]


# -- refs/notes/aevolve* -----------------------------------------------------------------


def _notes_refusals(push: Push) -> list[str]:
    lines: list[str] = []
    for u in push.updates:
        if not u.ref.startswith(NOTES_PREFIX):
            continue
        if u.new == ZERO:
            lines.append(f"aevolve: refusing to delete {u.ref}: the gate notes and approvals are the record "
                         "of what was accepted, and are never deleted.")
        elif u.old != ZERO and not push.reader.is_ancestor(u.old, u.new):
            lines += [f"aevolve: refusing a non-fast-forward update of {u.ref}: gate notes and approvals are "
                      "only ever added, on top of the server's.",
                      _restart_hint(u.ref, f"Your {u.ref} does not contain the server's.")]
        elif u.old != ZERO:
            lines += _rewrite_refusals(push, u)
    return lines


def _restart_hint(ref: str, why: str) -> str:
    """How to put one's notes back on top of the server's (never a hand notes merge,
    whose strategies can overwrite a verdict)."""
    return (f"  {why} Run `aevolve sync` (it merges the server's {ref} with yours, "
            "keeping every verdict) and push again.")


def _rewrite_refusals(push: Push, u: Update) -> list[str]:
    """A fast-forward that changes or deletes the note of a commit in main."""
    changed = _changed_notes(push.reader, u.old, u.new)
    if not changed:
        return []
    current = _in_history(push.reader, changed, [push.main_tip])
    if not current:
        return []  # candidates not yet in main may be re-gated or re-approved; check_move judges the note
    return [
        f"aevolve: refusing {u.ref} {u.old[:12]} -> {u.new[:12]}: it changes or deletes the note of "
        f"{_commits(current)}, already in {push.main}. A verdict on a commit in {push.main} is the "
        "record of why it was admitted and is never rewritten.",
        _restart_hint(u.ref, "Drop that change from your notes."),
    ]


def _changed_notes(reader: GitReader, old: str, new: str) -> list[str]:
    """Commits whose note in `old` differs in `new` (changed or gone), compared by
    commit id, whatever fan-out paths (`ab/cdef...`) either side uses."""
    names = {p.replace("/", "") for p in reader.changed_paths(old, new)}
    touched = sorted(n for n in names if _OBJECT_ID.fullmatch(n))  # anything else is no note
    before, after = reader.notes_of(old, touched), reader.notes_of(new, touched)
    return [c for c in touched if before[c] is not None and after[c] != before[c]]


def _in_history(reader: GitReader, commits: list[str], tips: list[str | None]) -> set[str]:
    """Those of `commits` reachable from any of `tips`."""
    found = [t for t in tips if t]
    if not commits or not found:
        return set()
    if len(commits) > 16:  # one walk of the history beats many ancestry checks
        return set(commits) & reader.reachable(found)
    return {c for c in commits if any(reader.is_ancestor(c, t) for t in found)}


# -- main ------------------------------------------------------------------------------


def _main_refusals(push: Push) -> list[str]:
    update = next((u for u in push.updates if u.ref == push.main_ref), None)
    if update is None or (update.old == ZERO and update.new != ZERO):
        return []  # untouched, or the first main: the baseline every later gate compares against
    main, old, new = push.main, update.old, update.new
    if new == ZERO:
        return [f"aevolve: refusing to delete {main}: it is the agent's gated state."]
    if not push.reader.is_ancestor(old, new):
        return [
            f"aevolve: refusing a non-fast-forward update of {main} ({old[:12]} -> {new[:12]}): "
            f"{main} only moves forward, to gated commits; history is never rewritten.",
            f"  Rebase your change onto the current {main} (`git pull --rebase`), gate it, and push again; "
            "to undo a change use `aevolve rollback REF`, which opens a new gated commit.",
        ]
    return _verdict_refusals(push, old, new)


def _verdict_refusals(push: Push, old: str, new: str) -> list[str]:
    from aevolve._trust.signing import allowed_signers_file
    from aevolve._trust.verdicts import check_move

    signers = allowed_signers_file(push.repo)  # a configured list that is gone raises: fail closed
    notes = [push.pushed(NOTES_REF), push.reader.ref(NOTES_REF)]
    approvals = [push.pushed(APPROVALS_REF), push.reader.ref(APPROVALS_REF)]
    problems = check_move(push.reader, old, new, notes=[n for n in notes if n],
                          approvals=[a for a in approvals if a], allowed_signers=signers,
                          require_signed=signers is not None)
    if not problems:
        return []
    main = push.main
    if push.pushed(NOTES_REF) is None:  # the usual cause: say it first, not "no gate note"
        lines = [f"aevolve: refusing {main} {old[:12]} -> {new[:12]}: the push carried no notes ref; push "
                 f"`{NOTES_REF}` with `{main}` (only the server's {NOTES_REF} was looked in, and it has no "
                 "admitting verdict for:",
                 *(f"  - {p}" for p in problems),
                 f"  If `git push` also printed `! [rejected] {NOTES_REF} (non-fast-forward)`, the notes diverged "
                 "from the server's: run `aevolve sync` (it merges them, keeping every verdict), then push again; "
                 f"`aevolve promote BRANCH --push` does all of it."]
    else:
        lines = [f"aevolve: refusing {main} {old[:12]} -> {new[:12]}: every commit {main} gains needs a gate "
                 "verdict on exactly its own step (against its parent, under its parent's exam):"]
        lines += [f"  - {p}" for p in problems]
    if signers is not None:
        lines.append(f"  This repository admits only verdicts signed by a key in its allowed signers ({signers}).")
    lines.append(f"  Gate each commit against its parent (`aevolve gate --promote` on the evolution branch does), "
                 f"then push {main} with its notes: `git push origin {main} {NOTES_REF}` (and {APPROVALS_REF} "
                 "for an approved maintainer change), or publish with `aevolve promote BRANCH --push`.")
    return lines


# -- evolver commits -------------------------------------------------------------------


def _evolver_refusals(push: Push) -> list[str]:
    from aevolve._trust.exam import outside_layers
    from aevolve._trust.verdicts import is_evolver_commit

    lines: list[str] = []
    seen: set[str] = set()
    for u in push.updates:
        for sha, parents in push.new_commits(u):
            if sha in seen:
                continue
            seen.add(sha)
            info = push.reader.commit(sha)
            if info is None or not is_evolver_commit(info.message):
                continue
            paths = push.changed(sha, parents)
            forbidden = outside_layers(paths, push.layers, push.cfg)
            if forbidden:
                lines += _evolver_lines(push, u.ref, sha, info.subject, forbidden)
    return lines


def _new_commits(push: Push, u: Update) -> list[tuple[str, list[str]]]:
    """(sha, parents) of each commit `u` brings that the repository lacks."""
    tip = push.reader.rev(u.new) if u.new != ZERO else None
    if tip is None:
        return []  # a deletion, or a ref to a tree or blob: no commits
    return push.reader.new_commits(tip)  # raises when git cannot list them: never let them through unchecked


def _evolver_lines(push: Push, ref: str, sha: str, subject: str, forbidden: list[str]) -> list[str]:
    shown = ", ".join(forbidden[:SHOWN]) + (f" and {len(forbidden) - SHOWN} more" if len(forbidden) > SHOWN else "")
    return [
        f"aevolve: refusing evolver commit {sha[:12]} ({subject}) on {ref}: it carries an Aevolve-Proposal "
        f"trailer and changes what no evolver may change: {shown}.",
        f"  Evolvers change only files inside the evolvable layers of {push.main}'s manifest.yaml "
        f"({', '.join(push.layers)}), never evals/, aevolve.yaml, protected paths (protection.protected) "
        "or git control files such as .gitattributes. Drop those edits from the proposal; a person "
        "changes them in an ordinary commit without the trailer.",
    ]


# -- path names ------------------------------------------------------------------------


def _name_refusals(push: Push) -> list[str]:
    """New commits (any ref, any author) that add a path no checkout may safely hold, and
    pushed tips where a name the push brings differs only in case from another one."""
    lines: list[str] = []
    seen: set[str] = set()
    for u in push.updates:
        brought: set[str] = set()  # every path (and folder) the new commits of `u` change
        for sha, parents in push.new_commits(u):
            paths = push.changed(sha, parents)
            brought.update(f for p in paths for f in _folders_and_self(p))
            if sha in seen:
                continue
            seen.add(sha)
            unsafe = _unsafe_added(push, sha, paths)
            if unsafe:
                lines += _unsafe_lines(push, u.ref, sha, unsafe)
        if brought:
            lines += _collision_lines(push, u, brought)
    return lines


def _unsafe_added(push: Push, sha: str, paths: list[str]) -> list[tuple[str, str]]:
    """(path, why) for each unsafe path the commit adds or changes (deleting one is welcome)."""
    from aevolve._state.names import unsafe_reason

    found = [(p, why) for p in paths if (why := unsafe_reason(p))]
    if not found:
        return []
    info = push.reader.commit(sha)
    present = push.reader.files(info.tree) if info else {}
    return [(p, why) for p, why in found if p in present]


def _unsafe_lines(push: Push, ref: str, sha: str, unsafe: list[tuple[str, str]]) -> list[str]:
    from aevolve._state.names import shown

    info = push.reader.commit(sha)
    subject = info.subject if info else "?"
    lines = [f"aevolve: refusing commit {sha[:12]} ({shown(subject)[1:-1]}) on {ref}: it adds "
             f"{len(unsafe)} path{'s' if len(unsafe) != 1 else ''} no checkout may safely hold:"]
    lines += [f"  - {shown(path)}: {why}" for path, why in unsafe[:SHOWN]]
    if len(unsafe) > SHOWN:
        lines.append(f"  - and {len(unsafe) - SHOWN} more")
    lines.append("  Rename or remove those paths in that commit (rewrite it before pushing), then push again.")
    return lines


def _collision_lines(push: Push, u: Update, brought: set[str]) -> list[str]:
    """Names of the pushed tip that differ only in case, where the push brings one of them."""
    from aevolve._state.names import case_collisions, shown

    tip = push.reader.rev(u.new)  # a tag names its commit
    info = push.reader.commit(tip) if tip else None
    if info is None:
        return []
    pairs = [(a, b) for a, b in case_collisions(sorted(push.reader.files(info.tree))) if a in brought or b in brought]
    if not pairs:
        return []
    lines = [f"aevolve: refusing {u.ref} at {u.new[:12]}: names that differ only in case; a checkout on a "
             "case-insensitive file system (macOS, Windows) holds only one of each pair:"]
    lines += [f"  - {shown(a)} and {shown(b)}" for a, b in pairs[:SHOWN]]
    if len(pairs) > SHOWN:
        lines.append(f"  - and {len(pairs) - SHOWN} more")
    lines.append("  Rename one of each pair, then push again.")
    return lines


def _folders_and_self(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b', 'a/b/c']."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# -- helpers ---------------------------------------------------------------------------


def _commits(commits) -> str:
    ordered = sorted(commits)
    shown = ", ".join(c[:12] for c in ordered[:SHOWN])
    return shown + (f" and {len(ordered) - SHOWN} more" if len(ordered) > SHOWN else "")
