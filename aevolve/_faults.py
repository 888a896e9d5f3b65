"""Named pause points, so the fault-injection tests can kill a process at a known stage.

Set AEVOLVE_TEST_PAUSE_AT to a stage name: the process prints
`aevolve-test-pause STAGE` on stderr and sleeps (AEVOLVE_TEST_PAUSE_SECONDS,
default 60) there. Unset, `pause` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time

# Every stage, in the order a command meets them (docs/design.md, "Faults").
STAGES = (
    "observe-objects",  # observe: blobs and commit written, observations ref not yet moved
    "policy",  # propose/rollback: proposal checked, nothing written
    "objects",  # propose/rollback: objects written, branch not yet created
    "ref",  # propose/rollback: branch created, command not yet finished
    "gate-note",  # gate: verdict made, note not yet written
    "evolve-cycle",  # evolve: candidates gated and the choice recorded, winner not yet promoted
    "promote-prepare",  # promote: refs locked by the transaction, not yet committed
    "promote-checkout",  # promote: refs moved, checkouts not yet updated
)


def pause(stage: str) -> None:
    """Stop at `stage` when a test asked for it (see module doc)."""
    if os.environ.get("AEVOLVE_TEST_PAUSE_AT") == stage:
        print(f"aevolve-test-pause {stage}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("AEVOLVE_TEST_PAUSE_SECONDS", "60")))
