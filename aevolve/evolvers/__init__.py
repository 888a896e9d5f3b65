"""Evolvers: state + observations + history → edits + rationale.

Each evolver is a module of its own; `get(name)` imports only the one asked for
(the openai client alone takes half a second to import).
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import Edit, EvolveContext, Evolver, Proposal

_MODULES = {
    "rules": "aevolve.evolvers.rules",
    "patch": "aevolve.evolvers.patch",
    "command": "aevolve.evolvers.command",
    "openai": "aevolve.evolvers.openai_evolver",
}

NAMES = tuple(_MODULES)


def get(name: str, **options) -> Evolver:
    """An evolver instance by name; `options` go to its constructor."""
    if name not in _MODULES:
        raise UsageError(f"unknown evolver {name!r}; choose one of {', '.join(_MODULES)}")
    module = importlib.import_module(_MODULES[name])
    return module.EVOLVER(**options)


__all__ = ["Edit", "EvolveContext", "Evolver", "Proposal", "get", "NAMES"]
