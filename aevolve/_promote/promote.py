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

import random
import time
from dataclasses import dataclass, field

from aevolve._errors import AevolveError, Conflict, GateRejected, NotGated, RefMoved
from aevolve._git.repo import NOTES_REF, ZERO, Repo

ATTEMPTS = 12  # main moved under us (another promotion won)
NOTE_RETRIES = 100  # only the notes ref moved (a gate added a note)


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
    from aevolve._gate.run import gate as run_gate  # the gate package; imported late (it may import us

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
    """Fast-forward `main` to `candidate` if its verdicts admit it (see module doc).

    Raises GateRejected (the gate said no), NotGated (no admissible verdict and
    regate=False), GateError (the gate could not judge), Conflict (a checkout
    would lose work, the rebase conflicts, or main kept moving),
    CheckoutNotUpdated (main moved but a checkout changed under us and could not follow).
    """
    from aevolve._state.merge import rebase_onto
    from aevolve._git.notes import read_gate_report, store_report
    from aevolve._trust.verdicts import GitReader, check_chain, local_trust
    from aevolve._promote.worktree import check_checkouts, update_checkouts

    main_ref = _full_ref(main)
    cand = str(repo.resolve(candidate).id)
    branch = _branch_of(repo, candidate)
    reader = GitReader(repo)
    fresh: dict[str, dict] = {}  # the report of this call's gate run, keyed by commit, not yet noted
    rebases: dict[str, str] = {}  # main -> the candidate rebased onto it (made once per main)
    gated = False

    def keep_gate_work() -> None:
        """Note an unused gate run on the candidate itself (a rebase is thrown away)."""
        if cand in fresh:
            store_report(repo, fresh.pop(cand))

    for _ in range(attempts):
        old_main = repo.ref_target(main_ref)
        if old_main is None:
            raise AevolveError(f"{main_ref} does not exist; nothing to promote onto")
        if cand == old_main or repo.git.descendant_of(old_main, cand):
            keep_gate_work()
            return PromoteResult(old_main, old_main, False, read_gate_report(repo, old_main),
                                 cand, branch, gated, [], main_ref)

        # 1. The commit that may move main: the candidate, or its rebase onto main
        # (also when it reaches main only through a merge: main moves along first parents).
        target, rebased = cand, False
        if reader.first_parent_chain(old_main, cand) is None:
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

        # 2. Admissible verdicts for every commit old_main..target, or a gate run now.
        # A verdict against an older main is stale: main may have gained passing cases since.
        trust = local_trust(repo)
        problems = [] if target in fresh else check_chain(reader, old_main, target, trust)
        if problems:
            if not regate:
                raise _not_admitted(read_gate_report(repo, target), target, old_main, problems)
            report = _run_gate(repo, target, old_main)
            gated = True
            fresh = {target: report} if report.get("candidate") == target else {}
            if report.get("decision") != "accept":
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
                if not _move(repo, reader, trust, main_ref, old_main, target, fresh.get(target), extra):
                    continue  # main moved, or the accepting note vanished: start over
            except Conflict:
                keep_gate_work()  # nothing moved; the gate's verdict is still worth keeping
                raise
            report = fresh.pop(target, None) or read_gate_report(repo, target)
            done = update_checkouts(checkouts, old_main, target)
        return PromoteResult(old_main, target, rebased, report, cand, branch, gated,
                             [str(p) for p in done], main_ref, move_branch)
    keep_gate_work()
    raise Conflict(
        f"{main_ref} kept moving while promoting {cand[:12]} ({attempts} attempts); nothing was changed, retry"
    )


def _notes_in(repo: Repo, notes_commit: str | None, commits: list[str]) -> dict[str, bytes | None]:
    """The note bytes of each commit in one notes commit (in-process: this runs inside the retry loop)."""
    if not notes_commit:
        return dict.fromkeys(commits)
    tree = repo.git[notes_commit].tree
    out: dict[str, bytes | None] = {}
    for commit in commits:
        paths = (commit, f"{commit[:2]}/{commit[2:]}", f"{commit[:2]}/{commit[2:4]}/{commit[4:]}")
        out[commit] = next((d for d in (repo.read(tree, p) for p in paths) if d is not None), None)
    return out


def _not_admitted(report: dict | None, target: str, old_main: str, problems: list[str]) -> AevolveError:
    """Why --no-regate cannot promote: the gate said no, or there is no admissible verdict."""
    if report and report.get("decision") == "reject" and report.get("baseline") == old_main:
        return _rejection(report, target, None)
    lines = "".join(f"\n  - {p}" for p in problems)
    return NotGated(f"{target[:12]} has no admissible gate verdict against main {old_main[:12]}; "
                    f"promote without --no-regate to gate it now:{lines}")


def _move(repo: Repo, reader, trust, main_ref: str, old_main: str, target: str, report: dict | None,
          extra: list[tuple[str, str, str]], tries: int = NOTE_RETRIES) -> bool:
    """One transaction: main OLD -> target, and the notes ref to a commit holding
    the accepting note (`report` added, or the notes already there kept).

    The verifier runs once on a snapshot of the notes; inside the transaction
    only a cheap comparison shows that the notes it installs say the same for
    every commit on the chain. Retries while only the notes ref moves (parallel
    gates adding notes); returns False when main itself moved or the verdict is
    gone; True when done.
    """
    from dataclasses import replace

    from aevolve._git.notes import prepare_report
    from aevolve._trust.verdicts import check_chain

    data = prepare_report(repo, report) if report is not None else None
    chain = reader.first_parent_chain(old_main, target) or [target]
    verified: dict[str, bytes | None] | None = None
    for attempt in range(tries):
        txn = _RefTransaction(repo)  # opened before reading the refs (design note 3)
        try:
            notes_old = repo.ref_target(NOTES_REF)
            notes_new = str(repo.note_commit(target, data, notes_old)) if data is not None else notes_old
            seen = _notes_in(repo, notes_new, chain)
            if seen != verified:  # first time, or a note on the chain changed: verify (slow) outside
                txn.abort()
                problems = check_chain(reader, old_main, target, replace(trust, notes=[notes_new]))
                if problems:
                    if report is not None:  # our own accepting verdict does not verify: never move main
                        raise AevolveError("the gate accepted, but its verdict does not verify; main did not "
                                           "move:" + "".join(f"\n  - {p}" for p in problems))
                    return False
                verified = seen
                continue
            txn.prepare([(main_ref, target, old_main), (NOTES_REF, notes_new, notes_old or ZERO), *extra])
            txn.commit()  # every ref was locked and checked by prepare: the notes are the verified ones
            return True
        except RefMoved:
            if repo.ref_target(main_ref) != old_main or any(repo.ref_target(r) != o for r, _, o in extra):
                return False
            time.sleep(random.uniform(0.0005, 0.002 * (attempt + 1)))
    raise Conflict(f"{NOTES_REF} kept moving while promoting {target[:12]} ({tries} attempts); "
                   "nothing was changed, retry")
