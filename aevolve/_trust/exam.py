"""The exam and the evolvable layers: what a transition may change, and by whom.

The *exam* is everything a gate verdict is read from: the case files, the
python checks under `evals/`, `aevolve.yaml` (runner argv and timeout, policy,
protected paths) and the evolvable layers of `manifest.yaml`. Its digest goes
into every gate report, so a verdict names the exact exam it was made under
and a verifier can recompute it from the baseline commit alone.

The functions here take plain data (path -> blob id, and a reader), so the gate
(pygit2), promotion and the server hook (the `git` command inside a push
quarantine) all compute the same answer with the same code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping

from aevolve import _config as config_mod

DIGEST_VERSION = 1
CONFIG_FILE = "aevolve.yaml"
MANIFEST_FILE = "manifest.yaml"

Reader = Callable[[str], "bytes | None"]


def _yaml(data: bytes | None, path: str):
    """Parsed YAML of a file, or None when absent or broken (validation reports that)."""
    from aevolve._state.model import FileError, decode, load_yaml

    if data is None:
        return None
    try:
        return load_yaml(decode(data, path), path)
    except (FileError, ValueError):
        return None


def read_config(read: Reader) -> dict:
    """The effective aevolve.yaml of a tree (defaults where absent or broken)."""
    raw = _yaml(read(CONFIG_FILE), CONFIG_FILE)
    return config_mod.resolve(raw if isinstance(raw, dict) else {})


def read_layers(read: Reader) -> list[str]:
    """The manifest's evolvable layers (aevolve's default four when unset)."""
    raw = _yaml(read(MANIFEST_FILE), MANIFEST_FILE)
    layers = raw.get("evolvable_layers") if isinstance(raw, dict) else None
    if isinstance(layers, list) and layers and all(isinstance(x, str) for x in layers):
        return list(layers)
    return list(config_mod.LAYERS)


def _cases_glob(cfg: dict) -> str:
    pattern = cfg["gate"].get("cases")
    return pattern if isinstance(pattern, str) and pattern else config_mod.DEFAULTS["gate"]["cases"]


def exam_files(files: Mapping[str, str], cfg: dict) -> dict[str, str]:
    """path -> blob id of every file the exam is read from."""
    from aevolve._state.model import glob_match

    pattern = _cases_glob(cfg)
    return {p: oid for p, oid in sorted(files.items())
            if p == CONFIG_FILE or p.startswith("evals/") or glob_match(p, pattern)}


def exam_digest(files: Mapping[str, str], read: Reader) -> str:
    """A hash of the exam of one tree: its files by blob id and its evolvable layers.

    Raw inputs only (blob ids, the manifest's list as written), never resolved
    defaults, so two aevolve versions with different defaults agree on it.
    """
    cfg = read_config(read)
    raw_manifest = _yaml(read(MANIFEST_FILE), MANIFEST_FILE)
    layers = raw_manifest.get("evolvable_layers") if isinstance(raw_manifest, dict) else None
    doc = {"version": DIGEST_VERSION, "files": exam_files(files, cfg), "evolvable_layers": layers}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def is_git_control(path: str) -> bool:
    """`.gitattributes`, `.gitmodules`, `.gitignore`... at any depth: they change how
    git itself reads the state (encodings, filters, submodules)."""
    return any(part.lower().startswith(".git") for part in path.split("/"))


def is_evolvable(path: str, layers: Iterable[str], cfg: dict) -> bool:
    """May an evolver change `path`? Only files inside an evolvable layer folder
    that are neither protected nor git control files."""
    head, sep, _ = path.partition("/")
    return bool(sep) and head in set(layers) and not config_mod.is_protected(path, cfg) \
        and not is_git_control(path)


def outside_layers(paths: Iterable[str], layers: Iterable[str], cfg: dict) -> list[str]:
    """The paths among `paths` that no evolver may change (sorted)."""
    layers = list(layers)
    return sorted(p for p in set(paths) if not is_evolvable(p, layers, cfg))



def required_approvals(cfg: dict) -> int:
    value = cfg["gate"].get("exam_approvals", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def holdout_files(state) -> set[str]:
    """The case files `gate.holdout` names (none when it is unset): the gate runs them,
    and no evolver may see them."""
    from aevolve._state.model import glob_match

    pattern = state.config()["gate"].get("holdout")
    if not isinstance(pattern, str) or not pattern:
        return set()
    return {p for p in state.case_files() if glob_match(p, pattern)}
