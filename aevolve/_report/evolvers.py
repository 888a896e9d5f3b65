"""Per-evolver figures (the Aevolve-Evolver trailer): proposals, acceptance, mean gain."""

from __future__ import annotations

from aevolve._report.model import EvolverFigures, Proposal, Version

MANUAL = "(by hand)"  # changes on main without an aevolve trailer


def evolver_figures(versions: list[Version], proposals: list[Proposal]) -> list[EvolverFigures]:
    """One row per evolver, most proposals first. The first shown version is where the
    history starts, not a proposal, and is left out."""
    rows: dict[str, EvolverFigures] = {}
    gains: dict[str, list[float]] = {}

    def row(name: str | None, aevolve: bool) -> EvolverFigures:
        key = name or ("?" if aevolve else MANUAL)
        return rows.setdefault(key, EvolverFigures(key))

    for v in versions:
        if v.start:
            continue
        r = row(v.evolver, v.aevolve)
        r.proposals += 1
        if v.promotion:
            r.promoted += 1
            if v.gain is not None:
                gains.setdefault(r.name, []).append(v.gain)
    for p in proposals:
        r = row(p.evolver, True)
        r.proposals += 1
        if p.rejected:
            r.rejected += 1
        else:
            r.pending += 1
    for r in rows.values():
        judged = r.promoted + r.rejected
        r.acceptance_rate = round(r.promoted / judged, 6) if judged else None
        g = gains.get(r.name)
        r.mean_gain = round(sum(g) / len(g), 6) if g else None
    return sorted(rows.values(), key=lambda r: (-r.proposals, r.name))
