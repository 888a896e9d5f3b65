"""What the package promises its tools: a cheap `--help`, type information, a ratchet that only shrinks."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pygit2", "jsonschema", "yaml", "openai")


def _ratchet():
    """.ci/ratchet.py, a script rather than a package module, loaded by path."""
    if "aevolve_ci_ratchet" not in sys.modules:
        spec = importlib.util.spec_from_file_location("aevolve_ci_ratchet", ROOT / ".ci" / "ratchet.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["aevolve_ci_ratchet"]


def test_help_imports_none_of_the_heavy_dependencies():
    script = (
        "import json, sys\n"
        "from aevolve.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "Usage:" in proc.stdout
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_the_package_ships_py_typed():
    # the hatch wheel target takes every file under aevolve/, so the installed package has it too
    assert importlib.resources.files("aevolve").joinpath("py.typed").is_file()


def test_ratchet_counts_mypy_errors_per_file():
    output = ("aevolve/a.py:3:5: error: Incompatible types  [assignment]\n"
              "aevolve/a.py:9: note: see above\n"
              "aevolve/a.py:12:1: error: Name \"x\" is not defined  [name-defined]\n"
              "aevolve/b/c.py:1: error: Missing return  [return]\n")
    assert _ratchet().count_errors(output) == {"aevolve/a.py": 2, "aevolve/b/c.py": 1}


def test_ratchet_fails_on_more_errors_than_recorded_or_errors_in_an_unlisted_file():
    ratchet = _ratchet()
    rows = ratchet.compare({"a.py": 2, "b.py": 1}, {"a.py": 3, "b.py": 1, "new.py": 1})
    assert [r.path for r in rows if r.worse] == ["a.py", "new.py"]


def test_ratchet_file_round_trips_and_drops_files_without_errors():
    ratchet = _ratchet()
    text = ratchet.render_ratchet({"b.py": 0, "a.py": 4, "c/d.py": 1})
    assert ratchet.read_ratchet(text) == {"a.py": 4, "c/d.py": 1}
