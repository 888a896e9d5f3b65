"""aevolve: version control and governance for self-evolving LLM agents.

The Python API mirrors the command line; names are imported on first use so
`import aevolve` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "Repo": "aevolve.repo:Repo",
    "State": "aevolve.state:State",
    "init": "aevolve.init:init_repo",
    "validate": "aevolve.validate:validate",
    "status": "aevolve.status:status",
    "observe": "aevolve.observations:observe",
    "propose": "aevolve.propose:propose",
    "gate": "aevolve.gate:gate",
    "promote": "aevolve.gate.promote:promote",
    "diff": "aevolve.diff:semantic_diff",
    "review": "aevolve.review:review",
}


def __getattr__(name: str):
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'aevolve' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = sorted(_API)
