"""The import rule: a module imports only from its own layer or lower ones.

Layers, low to high: `_errors`/`_config`, `_git`, `_state`, `_trust`, `_propose`,
`_gate`, `_promote`, then `_hooks` beside `_review` (neither imports the other),
`_demo`, `cli`. `aevolve/__init__.py` is the public facade and may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aevolve"

LAYERS = {
    "_errors": 0, "_config": 0, "_faults": 0, "_json": 0,
    "_git": 1,
    "_state": 2,
    "_trust": 3,
    "_propose": 4,
    "_gate": 5,
    "_promote": 6,
    "_hooks": 7, "_review": 7, "_remote": 7, "_report": 7, "_ecosystem": 7,
    "_evolve": 7,
    "_demo": 8,
    "cli": 9,
    "_main": 9,
    "__main__": 9,  # `python -m aevolve`: the command line's entry point
}
SIBLINGS_APART = {"_hooks", "_review"}  # same layer, yet independent of each other

# Edges that break the rule today, each to be removed when fixed: (importing file, imported module).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every `aevolve...` module this file imports, anywhere in it (functions, TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [_from_facade(a.name) for a in node.names] if base == "aevolve" else [base]
            found += [(node.lineno, name) for name in names]
    return [(line, name) for line, name in found if name == "aevolve" or name.startswith("aevolve.")]


def _from_facade(name: str) -> str:
    """`from aevolve import _gate` names a module; `from aevolve import gate` the facade's attribute."""
    is_module = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
    return f"aevolve.{name}" if is_module else "aevolve"


def _layer_of(module: str) -> str | None:
    """The layer a dotted module belongs to, or None for the facade (`aevolve`) itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _violations() -> list[str]:
    problems = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        own = _layer_of(_dotted(path))
        for line, module in _imports(path):
            target = _layer_of(module)
            if target is None or target == own or (rel, module) in KNOWN_VIOLATIONS:
                continue
            assert own in LAYERS and target in LAYERS, f"{rel}:{line}: {module} is in no layer: add it to LAYERS"
            if LAYERS[target] > LAYERS[own] or {own, target} == SIBLINGS_APART:
                problems.append(f"{rel}:{line}: {own} (layer {LAYERS[own]}) imports {module} "
                                f"({target}, layer {LAYERS[target]})")
    return problems


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    problems = _violations()
    assert not problems, "imports against the layer order:\n" + "\n".join(problems)


def test_the_facade_is_the_only_module_that_imports_aevolve_itself():
    offenders = [f"{p.relative_to(PACKAGE.parent).as_posix()}:{line}"
                 for p in _modules() for line, module in _imports(p) if module == "aevolve"]
    assert not offenders, "import private modules, not the facade: " + ", ".join(offenders)


def test_every_known_violation_still_exists():
    """A fixed edge must leave KNOWN_VIOLATIONS, so the list only shrinks."""
    actual = {(p.relative_to(PACKAGE.parent).as_posix(), m) for p in _modules() for _, m in _imports(p)}
    fixed = KNOWN_VIOLATIONS - actual
    assert not fixed, f"fixed, remove from KNOWN_VIOLATIONS: {fixed}"
