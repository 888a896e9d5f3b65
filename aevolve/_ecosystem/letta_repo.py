"""`aevolve import letta` and `aevolve export letta`: an Agent File in and out of a repository.

The import writes the files of `letta.to_files` into a new folder, protects the tool
sources, and makes the folder a state repository through `aevolve init`'s own code.
The message history stays in the kept document (an export writes it back) and each
user turn in it is also ingested as an observation (see `letta_history`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aevolve._ecosystem import letta
from aevolve._ecosystem.letta_history import observations_of
from aevolve._errors import UsageError


@dataclass
class LettaImport:
    path: Path
    commit: str | None
    files: list[str] = field(default_factory=list)
    observations: int = 0  # observations ingested from the message history
    observations_skipped: int = 0  # already stored with the same content

    def to_dict(self) -> dict:
        return {"path": str(self.path), "commit": self.commit, "files": self.files,
                "observations": self.observations, "observations_skipped": self.observations_skipped}


def config_text() -> str:
    """aevolve.yaml as `aevolve init` writes it, with the tool sources protected."""
    from aevolve._config import TEMPLATE

    line = "  protected: []  "
    assert line in TEMPLATE, "the aevolve.yaml template changed: update letta_repo.config_text"
    return TEMPLATE.replace(line, f'  protected: ["{letta.TOOL_SOURCES}"]', 1)


def default_folder(doc: dict) -> Path:
    name = doc["agents"][0].get("name")
    return Path(letta.safe_name(name if isinstance(name, str) else "", set(), "", "") or "agent")


def import_letta(agent_file: str | Path, folder: str | Path | None = None) -> LettaImport:
    """Make `folder` (default: a new folder named after the agent) a state repository
    holding the agent of `agent_file`."""
    from aevolve._state.init import init_repo

    doc = letta.read_agent_file(agent_file)
    root = Path(folder) if folder is not None else default_folder(doc)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root}: exists and is not an empty folder; the import makes a new state repository: "
                         "give a new or empty folder")
    mapped = letta.to_files(doc)
    files = {"aevolve.yaml": config_text(), **mapped.files}
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="")
    result = init_repo(root)
    out = LettaImport(path=result.path, commit=result.commit, files=sorted(files))
    records = observations_of(mapped.messages, doc)
    if records:
        out.observations, out.observations_skipped = _ingest(result.path, records)
    return out


def _ingest(root: Path, records: list[dict]) -> tuple[int, int]:
    """Observations go through `aevolve observe`'s own code (schema, limits, dedup)."""
    from aevolve._git.repo import Repo
    from aevolve._state.observations import observe_records

    done = observe_records(Repo.open(root), records)
    return done.added, done.duplicates


def export_letta(repo, rev: str = "main") -> str:
    """The Agent File (JSON text) of the state at `rev`."""
    from aevolve._state.model import State

    return letta.dumps(letta.from_state(State.from_tree(repo, rev)))
