"""Evolvers: state + observations + history → edits + rationale.

Each evolver is a module of its own; `get(name)` imports only the one asked for
(the openai client alone takes half a second to import).
"""

from __future__ import annotations

import importlib

from aevolve._errors import UsageError
from aevolve._propose.evolvers.base import Edit, EvolveContext, Evolver, Proposal

_MODULES = {
    "rules": "aevolve._propose.evolvers.rules",
    "patch": "aevolve._propose.evolvers.patch",
    "command": "aevolve._propose.evolvers.command",
    "openai": "aevolve._propose.evolvers.openai_evolver",
}

NAMES = tuple(_MODULES)


def get(name: str, **options) -> Evolver:
    """An evolver instance by name; `options` go to its constructor."""
    if name not in _MODULES:
        raise UsageError(f"unknown evolver {name!r}; choose one of {', '.join(_MODULES)}")
    module = importlib.import_module(_MODULES[name])
    return module.EVOLVER(**options)


__all__ = ["Edit", "EvolveContext", "Evolver", "Proposal", "get", "NAMES"]
