"""`aevolve evolve`: the autonomous loop (observe -> diagnose -> propose K -> gate -> select -> promote).

Layer 7: it drives the public building blocks of the layers below (propose,
gate, promote) and keeps its own history on `refs/aevolve/cycles`.
"""

from aevolve._evolve.loop import CycleResult, EvolveResult, evolve

__all__ = ["evolve", "EvolveResult", "CycleResult"]
