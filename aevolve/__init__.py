"""aevolve: version control and governance for self-evolving LLM agents.

The public API: every function takes a `Repo` first and returns a result type;
every failure is an `AevolveError` with an exit code. Implementation modules are
private (`aevolve._git`, `aevolve._state`, `aevolve._trust`, `aevolve._propose`,
`aevolve._gate`, `aevolve._promote`, then `aevolve._hooks`, `aevolve._review`,
`aevolve._remote`, `aevolve._report`, `aevolve._ecosystem`, `aevolve._evolve`),
layered in that order. Names load on first use, so `import aevolve` (and
`aevolve --help`) stays cheap.

    import aevolve

    repo = aevolve.Repo.open(".")
    proposal = aevolve.propose(repo)
    report = aevolve.gate(repo, proposal.branch)
    if report.accepted:
        aevolve.promote(repo, proposal.branch)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    # functions, in the order of the loop
    "init", "validate", "status", "observe", "propose", "gate", "collect", "promote",
    "approve", "verify", "diff", "review", "log", "rollback", "sync", "report", "evolve",
    # result types
    "Repo", "State", "InitResult", "ValidationReport", "Problem", "Status", "ObserveResult",
    "ProposeResult", "GateReport", "PromoteResult", "Approval", "CommitVerdict", "SemanticDiff",
    "Review", "LogEntry", "SyncResult", "EvolutionReport", "EvolveResult",
    # exceptions
    "AevolveError", "UsageError", "InvalidInput", "FileError", "NotARepository", "RefNotFound",
    "AmbiguousRef", "GitCommandFailed", "Conflict", "RefMoved", "LockBusy", "MergeConflict",
    "DirtyCheckout", "CheckoutNotUpdated", "PolicyRefused", "EvolverFailed", "PatchDoesNotApply", "GateRejected",
    "GateError", "NotGated", "SigningError", "AssertionSetupError", "StorageError", "StaleLock",
]

# public name -> (private module, attribute)
_WHERE = {
    "init": ("aevolve._state.init", "init_repo"),
    "validate": ("aevolve._state.validate", "validate"),
    "status": ("aevolve._state.status", "status"),
    "observe": ("aevolve._state.observations", "observe"),
    "propose": ("aevolve._propose.run", "propose"),
    "gate": ("aevolve._gate.run", "gate"),
    "collect": ("aevolve._gate.run", "collect"),
    "promote": ("aevolve._promote.promote", "promote"),
    "approve": ("aevolve._trust.approvals", "approve"),
    "verify": ("aevolve._trust.verdicts", "verify_commit"),
    "diff": ("aevolve._review.diff", "semantic_diff"),
    "review": ("aevolve._review.review", "build_review"),
    "log": ("aevolve._review.history", "log"),
    "rollback": ("aevolve._review.history", "rollback"),
    "sync": ("aevolve._remote.sync", "sync"),
    "report": ("aevolve._report.history", "build_report"),
    "evolve": ("aevolve._evolve.loop", "evolve"),
    "Repo": ("aevolve._git.repo", "Repo"),
    "State": ("aevolve._state.model", "State"),
    "InitResult": ("aevolve._state.init", "InitResult"),
    "ValidationReport": ("aevolve._state.validate", "Report"),
    "Problem": ("aevolve._state.validate", "Problem"),
    "Status": ("aevolve._state.status", "Status"),
    "ObserveResult": ("aevolve._state.observations", "ObserveResult"),
    "ProposeResult": ("aevolve._propose.run", "ProposeResult"),
    "GateReport": ("aevolve._gate.report", "GateReport"),
    "PromoteResult": ("aevolve._promote.promote", "PromoteResult"),
    "Approval": ("aevolve._trust.approvals", "Approval"),
    "CommitVerdict": ("aevolve._trust.verdicts", "CommitVerdict"),
    "SemanticDiff": ("aevolve._review.diff", "SemanticDiff"),
    "Review": ("aevolve._review.review", "Review"),
    "LogEntry": ("aevolve._review.history", "LogEntry"),
    "SyncResult": ("aevolve._remote.sync", "SyncResult"),
    "EvolutionReport": ("aevolve._report.model", "Report"),
    "EvolveResult": ("aevolve._evolve.loop", "EvolveResult"),
}
_WHERE.update({name: ("aevolve._errors", name) for name in __all__ if name not in _WHERE})

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads on first use
    from aevolve._errors import (
        AevolveError,
        AmbiguousRef,
        AssertionSetupError,
        CheckoutNotUpdated,
        Conflict,
        DirtyCheckout,
        EvolverFailed,
        FileError,
        GateError,
        GateRejected,
        GitCommandFailed,
        InvalidInput,
        LockBusy,
        MergeConflict,
        NotARepository,
        NotGated,
        PatchDoesNotApply,
        PolicyRefused,
        RefMoved,
        RefNotFound,
        SigningError,
        StaleLock,
        StorageError,
        UsageError,
    )
    from aevolve._evolve.loop import EvolveResult, evolve
    from aevolve._gate.report import GateReport
    from aevolve._gate.run import collect, gate
    from aevolve._git.repo import Repo
    from aevolve._promote.promote import PromoteResult, promote
    from aevolve._propose.run import ProposeResult, propose
    from aevolve._remote.sync import SyncResult, sync
    from aevolve._report.history import build_report as report
    from aevolve._report.model import Report as EvolutionReport
    from aevolve._review.diff import SemanticDiff
    from aevolve._review.diff import semantic_diff as diff
    from aevolve._review.history import LogEntry, log, rollback
    from aevolve._review.review import Review
    from aevolve._review.review import build_review as review
    from aevolve._state.init import InitResult
    from aevolve._state.init import init_repo as init
    from aevolve._state.model import State
    from aevolve._state.observations import ObserveResult, observe
    from aevolve._state.status import Status, status
    from aevolve._state.validate import Problem, validate
    from aevolve._state.validate import Report as ValidationReport
    from aevolve._trust.approvals import Approval, approve
    from aevolve._trust.verdicts import CommitVerdict
    from aevolve._trust.verdicts import verify_commit as verify


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'aevolve' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
