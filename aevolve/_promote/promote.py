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
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aevolve._errors import AevolveError, Conflict, GateRejected, NotGated, RefMoved
from aevolve._faults import pause
from aevolve._git.notes import read_gate_report
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
    """The branch ref `candidate` names (an evolve/* branch usually, or the local branch
    of a proposal id), if any."""
    from aevolve._git.repo import PROPOSAL_ID

    for ref in (candidate, f"refs/heads/{candidate}"):
        if ref.startswith("refs/heads/") and repo.ref_target(ref) is not None:
            return ref
    if PROPOSAL_ID.fullmatch(candidate):
        local = [ref for ref, _tip in repo.proposal_branches(candidate) if ref.startswith("refs/heads/")]
        return local[0] if len(local) == 1 else None
    return None


def _run_gate(repo: Repo, commit: str, base: str) -> dict:
    from aevolve._gate.run import gate as run_gate

    return run_gate(repo, commit, base=base, write_note=False).to_dict()


def _rejection(report: dict | None, commit: str, rebased_from: str | None) -> GateRejected:
    what = f"{commit[:12]}" + (f" (candidate {rebased_from[:12]} rebased onto the new main)" if rebased_from else "")
    reasons = (report or {}).get("reasons") or []
    decision = (report or {}).get("decision", "no decision")
    lines = "".join(f"\n  - {r}" for r in reasons)
    return GateRejected(f"the gate did not accept {what}: {decision}{lines}")


def promote(repo: Repo, candidate: str, *, main: str = "main", regate: bool = True,
            attempts: int = ATTEMPTS, shown_as: str | None = None) -> PromoteResult:
    """Fast-forward `main` to `candidate` if its verdicts admit it (see module doc).

    Raises GateRejected (the gate said no), NotGated (no admissible verdict and
    regate=False), GateError (the gate could not judge), Conflict (a checkout
    would lose work, the rebase conflicts, or main kept moving),
    CheckoutNotUpdated (main moved but a checkout changed under us and could not follow).
    `shown_as` names the branch in the promotion's display line when `main` is a
    stand-in for it (`aevolve promote --push` promotes onto a copy of the remote's main).
    """
    _heal_first(repo, _full_ref(main))
    run = _Promotion(repo, candidate, _full_ref(main), regate)
    run.shown_as = shown_as or _full_ref(main).removeprefix("refs/heads/")
    try:
        for _ in range(attempts):
            old_main = repo.ref_target(run.main_ref)
            if old_main is None:
                raise AevolveError(f"{run.main_ref} does not exist; nothing to promote onto")
            if repo.is_ancestor(run.cand, old_main):
                return run.result(old_main, old_main, False, read_gate_report(repo, old_main))
            target, rebased = run.target_on(old_main)
            run.ensure_admissible(old_main, target, rebased)
            done = run.move(old_main, target, rebased)
            if done is not None:
                return done
        raise Conflict(f"{run.main_ref} kept moving while promoting {run.cand[:12]} ({attempts} attempts); "
                       "nothing was changed, retry")
    finally:
        run.keep_gate_work()


def _heal_first(repo: Repo, main_ref: str) -> None:
    """Finish a checkout update an earlier, killed promotion left undone: promoting over a
    checkout still at an older main would carry its staged reversal along."""
    from aevolve._promote.journal import heal

    healed = heal(repo)
    for line in healed.messages:
        print(f"aevolve: {line}", file=sys.stderr)
    if healed.blocked and healed.branch == main_ref:
        raise Conflict(healed.blocked + "; nothing was promoted")


class _Promotion:
    """One promotion's state across its attempts (main may move between them)."""

    def __init__(self, repo: Repo, candidate: str, main_ref: str, regate: bool):
        from aevolve._git.reader import GitReader

        self.repo, self.main_ref, self.regate = repo, main_ref, regate
        self.cand = str(repo.resolve(candidate).id)
        self.branch = _branch_of(repo, candidate)
        self.reader = GitReader(repo)
        self.fresh: dict[str, dict] = {}  # this call's gate report, keyed by commit, not yet noted
        self.rebases: dict[str, str] = {}  # main -> the candidate rebased onto it (made once per main)
        self.gated = False
        self.shown_as = main_ref.removeprefix("refs/heads/")

    def result(self, old: str, new: str, rebased: bool, report: dict | None,
               checkouts: list[str] | None = None, branch_moved: bool = False) -> PromoteResult:
        return PromoteResult(old, new, rebased, report, self.cand, self.branch, self.gated,
                             checkouts or [], self.main_ref, branch_moved)

    def keep_gate_work(self) -> None:
        """Note an unused gate run on the candidate itself (a rebase is thrown away)."""
        from aevolve._trust.record import store_report

        if self.cand in self.fresh:
            store_report(self.repo, self.fresh.pop(self.cand))

    def target_on(self, old_main: str) -> tuple[str, bool]:
        """The commit that may move main: the candidate, or its rebase onto main (also
        when it reaches main only through a merge: main moves along first parents)."""
        from aevolve._state.merge import rebase_onto

        if self.reader.first_parent_chain(old_main, self.cand) is not None:
            return self.cand, False
        if not self.regate:
            raise Conflict(f"{self.main_ref.removeprefix('refs/heads/')} moved since {self.cand[:12]} was based "
                           "on it; promoting it needs a rebase and a new gate run (drop --no-regate)")
        if old_main not in self.rebases:
            base = self.repo.merge_base(self.cand, old_main)
            if base is None:
                raise AevolveError(f"{self.cand[:12]} shares no history with {self.main_ref}; it cannot be promoted")
            self.rebases[old_main] = rebase_onto(self.repo, self.cand, base, old_main)
        return self.rebases[old_main], True

    def ensure_admissible(self, old_main: str, target: str, rebased: bool) -> None:
        """Admissible verdicts for every commit old_main..target, or a gate run now. A
        verdict against an older main is stale: main may have gained passing cases since."""
        from aevolve._trust.verdicts import check_chain, local_trust

        if target in self.fresh:
            return
        problems = check_chain(self.reader, old_main, target, local_trust(self.repo))
        if not problems:
            return
        if not self.regate:
            raise _not_admitted(read_gate_report(self.repo, target), target, old_main, problems)
        report = _run_gate(self.repo, target, old_main)
        self.gated = True
        self.fresh = {target: report} if report.get("candidate") == target else {}
        if report.get("decision") != "accept":
            raise _rejection(report, target, self.cand if rebased else None)

    def move(self, old_main: str, target: str, rebased: bool) -> PromoteResult | None:
        """Check and move under the lock (the transaction's CAS is the guarantee);
        None when main moved meanwhile and the caller must start over."""
        from aevolve._promote.journal import Journal, clear_journal, write_journal
        from aevolve._promote.worktree import check_checkouts, update_checkouts
        from aevolve._trust.verdicts import local_trust

        with self.repo.lock("promote"):
            if self.repo.ref_target(self.main_ref) != old_main:
                return None  # main moved while we rebased or gated
            move_branch = rebased and self.branch is not None and self.repo.ref_target(self.branch) == self.cand
            extra = [(self.branch, target, self.cand)] if move_branch and self.branch else []
            checkouts = check_checkouts(self.repo, self.main_ref, old_main, target)
            trust = local_trust(self.repo)
            if checkouts:  # before the refs move: a kill after it is healed by the next command
                write_journal(self.repo, Journal(self.main_ref, old_main, target, [str(c.path) for c in checkouts]))
            try:
                moved = _move(self.repo, self.reader, trust, self.main_ref, old_main, target,
                              self.fresh.get(target), extra, shown_as=self.shown_as)
            finally:
                if self.repo.ref_target(self.main_ref) != target:
                    clear_journal(self.repo)  # the transaction did not commit: nothing to finish
            if not moved:
                return None  # main moved, or the accepting note vanished
            pause("promote-checkout")
            report = self.fresh.pop(target, None) or read_gate_report(self.repo, target)
            # a checkout that cannot follow (CheckoutNotUpdated) keeps the journal: the next command retries
            done = update_checkouts(checkouts, old_main, target)
            clear_journal(self.repo)
        return self.result(old_main, target, rebased, report, [str(p) for p in done], move_branch)


def _not_admitted(report: dict | None, target: str, old_main: str, problems: list[str]) -> AevolveError:
    """Why --no-regate cannot promote: the gate said no, or there is no admissible verdict."""
    if report and report.get("decision") == "reject" and report.get("baseline") == old_main:
        return _rejection(report, target, None)
    lines = "".join(f"\n  - {p}" for p in problems)
    return NotGated(f"{target[:12]} has no admissible gate verdict against main {old_main[:12]}; "
                    f"promote without --no-regate to gate it now:{lines}")


def _move(repo: Repo, reader, trust, main_ref: str, old_main: str, target: str, report: dict | None,
          extra: Sequence[tuple[str, str, str | None]], tries: int = NOTE_RETRIES, shown_as: str = "main") -> bool:
    """One transaction: main OLD -> target, the notes ref to a commit holding
    the accepting note (`report` added, or the notes already there kept), and the
    display ref (`LOG_REF`) with the verdict's line and "promoted to main by ..."
    on every commit main gains (a promotion never rewrites the signed JSON verdict).

    The verifier runs once on a snapshot of the notes; inside the transaction
    only a cheap comparison shows that the notes it installs say the same for
    every commit on the chain. Retries while only the notes ref moves (parallel
    gates adding notes); returns False when main itself moved or the verdict is
    gone; True when done.
    """
    from dataclasses import replace

    from aevolve._git.notes import LOG_REF, dump_report, verdict_line, who_line
    from aevolve._trust.record import finish_report, identity, log_commit
    from aevolve._trust.verdicts import check_chain

    finished = finish_report(repo, report) if report is not None else None
    data = dump_report(finished) if finished is not None else None
    chain = reader.first_parent_chain(old_main, target) or [target]
    promoted = f"promoted to {shown_as} by {who_line(identity(repo))}"
    lines = {commit: [promoted] for commit in chain}
    if finished is not None:
        lines[target] = [verdict_line(finished), promoted]
    verified: dict[str, bytes | None] | None = None
    for attempt in range(tries):
        txn = repo.begin_transaction()  # opened before reading the refs (design note 3)
        try:
            notes_old = repo.ref_target(NOTES_REF)
            notes_new = str(repo.note_commit(target, data, notes_old)) if data is not None else notes_old
            seen = reader.notes_of(notes_new, chain)
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
            log_old = repo.ref_target(LOG_REF)
            log_new = log_commit(repo, log_old, lines)
            txn.prepare([(main_ref, target, old_main), (NOTES_REF, notes_new or ZERO, notes_old or ZERO),
                         (LOG_REF, log_new or ZERO, log_old or ZERO), *extra])
            pause("promote-prepare")
            txn.commit()  # every ref was locked and checked by prepare: the notes are the verified ones
            return True
        except RefMoved:
            if repo.ref_target(main_ref) != old_main or any(repo.ref_target(r) != o for r, _, o in extra):
                return False
            time.sleep(random.uniform(0.0005, 0.002 * (attempt + 1)))
    raise Conflict(f"{NOTES_REF} kept moving while promoting {target[:12]} ({tries} attempts); "
                   "nothing was changed, retry")
