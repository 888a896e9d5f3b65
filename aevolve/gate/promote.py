"""Promotion: move `main` to a gated candidate, atomically, or refuse.

The rule (DESIGN.md §4): `main` only moves to a commit that descends from the
current `main` and whose gate note accepts that exact commit. `main` and
`refs/notes/aevolve` move in one `git update-ref --stdin` transaction with both
old values checked, so nobody ever sees a promoted `main` without its note.
If `main` moved since the candidate was gated, the candidate is rebased onto
it (memory JSONL merged record by record) and gated again before it may move.

The promote lock orders aevolve's own promotions; the compare-and-swap of the
transaction is what makes it correct against any other writer, and a lost
race is retried a bounded number of times.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

from ..errors import AevolveError, Conflict, GateRejected, RefMoved
from ..notes import is_accepting, write_gate_report
from ..repo import NOTES_REF, ZERO, Repo

ATTEMPTS = 12  # main moved under us (another promotion won)
NOTE_RETRIES = 100  # only the notes ref moved (a gate added a note)


class NotGated(AevolveError):
    """The candidate has no accepting gate note and gating was not allowed."""


@dataclass
class PromoteResult:
    old: str  # main before
    new: str  # main after (== old when there was nothing to do)
    rebased: bool  # the promoted commit is a rebase of the candidate onto a newer main
    report: dict | None  # the accepting gate report of `new`
    candidate: str = ""  # the candidate commit as given
    branch: str | None = None  # the candidate's branch ref, moved to `new` when rebased
    gated: bool = False  # this call ran the gate
    checkouts: list[str] = field(default_factory=list)  # worktrees brought up to date
    main: str = "refs/heads/main"
    branch_moved: bool = False  # `branch` now points at the rebased commit

    @property
    def promoted(self) -> bool:
        return self.new != self.old

    def to_dict(self) -> dict:
        return {
            "promoted": self.promoted,
            "main": self.main,
            "old": self.old,
            "new": self.new,
            "candidate": self.candidate,
            "rebased": self.rebased,
            "branch": self.branch,
            "branch_moved": self.branch_moved,
            "gated": self.gated,
            "checkouts": self.checkouts,
            "report": self.report,
        }


def _full_ref(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def _branch_of(repo: Repo, candidate: str) -> str | None:
    """The branch ref `candidate` names (an evolve/* branch usually), if any."""
    for ref in (candidate, f"refs/heads/{candidate}"):
        if ref.startswith("refs/heads/") and repo.ref_target(ref) is not None:
            return ref
    return None


def note_at(repo: Repo, notes_commit: str | None, commit: str) -> dict | None:
    """The gate report noted on `commit` in one specific notes commit (not the
    moving ref), so the check and the transaction see the same notes."""
    if not notes_commit:
        return None
    tree = repo.git[notes_commit].tree
    for depth in range(0, 4):  # git fans notes out as ab/cdef... when there are many
        parts = [commit[2 * i: 2 * i + 2] for i in range(depth)] + [commit[2 * depth:]]
        data = repo.read(tree, "/".join(parts))
        if data is not None:
            try:
                report = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
            return report if isinstance(report, dict) and "decision" in report else None
    return None


class _RefTransaction:
    """`git update-ref --stdin` opened *before* the old values are read.

    Values read from disk can go stale in the milliseconds a `git` process takes
    to start; with the process already waiting, only a pipe round trip separates
    reading the refs from `prepare`, which locks them and checks every old
    value. A parallel note writer (a gate finishing) then rarely makes us retry.
    """

    def __init__(self, repo: Repo):
        import os
        import subprocess

        self.proc = subprocess.Popen(
            ["git", "--git-dir", str(repo.git_dir), "update-ref", "--stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_INDEX_FILE")},
        )
        self._say("start")

    def _say(self, *lines: str) -> None:
        self.proc.stdin.write("".join(line + "\n" for line in lines))
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer.endswith(": ok\n"):
            self.abort()
            raise RefMoved("refs moved concurrently, nothing was changed: " + (self.error or answer.strip()))

    def prepare(self, updates: list[tuple[str, str, str | None]]) -> None:
        """Lock every ref and check its old value (RefMoved when one moved)."""
        self._say(*(f"update {name} {new} {old or ZERO}" for name, new, old in updates), "prepare")

    def commit(self) -> None:
        self._say("commit")
        self.close()

    def abort(self) -> None:
        self.error = ""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("abort\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        self.close()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.error = (self.proc.stderr.read() or "").strip()
        self.proc.wait()

    error = ""


def _run_gate(repo: Repo, commit: str, base: str) -> dict:
    from . import gate as run_gate  # the gate package; imported late (it may import us)

    report = run_gate(repo, commit, base=base, write_note=False)
    return report.to_dict() if hasattr(report, "to_dict") else dict(report)


def _rejection(report: dict | None, commit: str, rebased_from: str | None) -> GateRejected:
    what = f"{commit[:12]}" + (f" (candidate {rebased_from[:12]} rebased onto the new main)" if rebased_from else "")
    reasons = (report or {}).get("reasons") or []
    decision = (report or {}).get("decision", "no decision")
    lines = "".join(f"\n  - {r}" for r in reasons)
    return GateRejected(f"the gate did not accept {what}: {decision}{lines}")


def promote(repo: Repo, candidate: str, *, main: str = "main", regate: bool = True,
            attempts: int = ATTEMPTS) -> PromoteResult:
    """Fast-forward `main` to `candidate` if the gate accepts it (see module doc).

    Raises GateRejected (the gate said no), NotGated (no accepting note and
    regate=False), Conflict (a checkout would lose work, the rebase conflicts,
    or main kept moving), CheckoutNotUpdated (main moved but a checkout changed
    under us and could not follow).
    """
    from ..merge import rebase_onto
    from ..worktree import check_checkouts, update_checkouts

    main_ref = _full_ref(main)
    cand = str(repo.resolve(candidate).id)
    branch = _branch_of(repo, candidate)
    fresh: dict[str, dict] = {}  # the report of this call's gate run, keyed by commit, not yet noted
    rebases: dict[str, str] = {}  # main -> the candidate rebased onto it (made once per main)
    gated = False

    def keep_gate_work() -> None:
        """Note an unused gate run on the candidate itself (a rebase is thrown away)."""
        if cand in fresh:
            write_gate_report(repo, fresh.pop(cand))

    for _ in range(attempts):
        old_main = repo.ref_target(main_ref)
        if old_main is None:
            raise AevolveError(f"{main_ref} does not exist; nothing to promote onto")
        if cand == old_main or repo.git.descendant_of(old_main, cand):
            keep_gate_work()
            notes = repo.ref_target(NOTES_REF)
            return PromoteResult(old_main, old_main, False, note_at(repo, notes, old_main),
                                 cand, branch, gated, [], main_ref)

        # 1. The commit that may move main: the candidate, or its rebase onto main.
        target, rebased = cand, False
        if not repo.git.descendant_of(cand, old_main):
            if not regate:
                raise Conflict(
                    f"{main_ref.removeprefix('refs/heads/')} moved since {cand[:12]} was based on it; "
                    "promoting it needs a rebase and a new gate run (drop --no-regate)"
                )
            if old_main not in rebases:
                base = repo.git.merge_base(cand, old_main)
                if base is None:
                    raise AevolveError(f"{cand[:12]} shares no history with {main_ref}; it cannot be promoted")
                rebases[old_main] = rebase_onto(repo, cand, str(base), old_main)
            target, rebased = rebases[old_main], True

        # 2. Its gate verdict against the current main: a note that accepts exactly this
        # commit, or a gate run now. A verdict against an older main is stale: main may
        # have gained passing cases since.
        report = fresh.get(target) or note_at(repo, repo.ref_target(NOTES_REF), target)
        if not (is_accepting(report, target) and report.get("baseline") == old_main):
            if not regate:
                if is_accepting(report, target):
                    raise NotGated(
                        f"{cand[:12]} was gated against {str(report.get('baseline'))[:12]}, but main is now "
                        f"{old_main[:12]}; promote without --no-regate to gate it against the current main"
                    )
                if report is not None:
                    raise _rejection(report, target, None)
                raise NotGated(
                    f"{cand[:12]} has no gate report that accepts it; run `aevolve gate {candidate}` "
                    "first, or promote without --no-regate to gate it now"
                )
            report = _run_gate(repo, target, old_main)
            gated = True
            fresh = {target: report} if report.get("candidate") == target else {}
            if not is_accepting(report, target):
                keep_gate_work()
                raise _rejection(report, target, cand if rebased else None)

        # 3. Check and move, under the lock; the transaction's CAS is the guarantee.
        with repo.lock("promote"):
            if repo.ref_target(main_ref) != old_main:
                continue  # main moved while we rebased or gated: start over
            move_branch = rebased and branch is not None and repo.ref_target(branch) == cand
            extra = [(branch, target, cand)] if move_branch else []
            try:
                checkouts = check_checkouts(repo, main_ref, old_main, target)
                if not _move(repo, main_ref, old_main, target, fresh.get(target), extra):
                    continue  # main moved, or the accepting note vanished: start over
            except Conflict:
                keep_gate_work()  # nothing moved; the gate's verdict is still worth keeping
                raise
            fresh.clear()
            done = update_checkouts(checkouts, old_main, target)
        return PromoteResult(old_main, target, rebased, report, cand, branch, gated,
                             [str(p) for p in done], main_ref, move_branch)
    keep_gate_work()
    raise Conflict(
        f"{main_ref} kept moving while promoting {cand[:12]} ({attempts} attempts); nothing was changed, retry"
    )


def _move(repo: Repo, main_ref: str, old_main: str, target: str, report: dict | None,
          extra: list[tuple[str, str, str]], tries: int = NOTE_RETRIES) -> bool:
    """One transaction: main OLD -> target, and the notes ref to a commit holding
    the accepting note (`report` added, or the note already there kept).

    Retries while only the notes ref moves (parallel gates adding notes) and
    returns False when main itself moved or the note is gone; True when done.
    """
    for attempt in range(tries):
        txn = _RefTransaction(repo)
        try:
            notes_old = repo.ref_target(NOTES_REF)
            if report is not None:
                data = json.dumps(report, indent=2, sort_keys=True).encode() + b"\n"
                notes_new = str(repo.note_commit(target, data, notes_old))
            elif is_accepting(note_at(repo, notes_old, target), target):
                notes_new = notes_old  # kept: the transaction checks it did not move
            else:
                txn.abort()
                return False
            txn.prepare([(main_ref, target, old_main), (NOTES_REF, notes_new, notes_old or ZERO), *extra])
            txn.commit()  # every ref was locked and checked by prepare
            return True
        except RefMoved:
            if repo.ref_target(main_ref) != old_main or any(repo.ref_target(r) != o for r, _, o in extra):
                return False
            time.sleep(random.uniform(0.0005, 0.002 * (attempt + 1)))
    raise Conflict(f"{NOTES_REF} kept moving while promoting {target[:12]} ({tries} attempts); "
                   "nothing was changed, retry")
