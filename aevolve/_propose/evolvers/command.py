"""The `command` evolver: an external program proposes, aevolve checks and commits.

Contract (see docs/propose.md): the program is started with an argv list
(aevolve.yaml `evolver.command`, or --command) and these variables:

    AEVOLVE_STATE_DIR     read-only copy of the base state (never the user's checkout)
    AEVOLVE_OBSERVATIONS  JSONL file of the selected observations
    AEVOLVE_HISTORY       JSON file: gate reports of earlier rejected proposals
    AEVOLVE_OUTPUT        where to write the proposal JSON (schema `proposal`)
    AEVOLVE_BASE, AEVOLVE_SEED, AEVOLVE_FOCUS, AEVOLVE_TEMPERATURE

It may print the proposal JSON on stdout instead. No output (or `null`) means
nothing to propose. A non-zero exit, a timeout (the whole process group is
killed), or output that is not a valid proposal is EvolverFailed, with the
tail of the program's stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

from aevolve._errors import EvolverFailed, UsageError
from aevolve._git.repo import LINK
from aevolve._json import loads
from aevolve._propose.evolvers.base import EvolveContext, Proposal
from aevolve._state import schemas

_INTERPRETERS = {"python", "python3", "node", "bash", "sh", "ruby", "perl", "uv", "npx"}


def _tail(data: bytes, lines: int = 20, chars: int = 2000) -> str:
    text = data.decode("utf-8", "replace").rstrip()
    text = "\n".join(text.splitlines()[-lines:])[-chars:]
    return text or "(no stderr)"


def parse_argv(value) -> list[str]:
    """An argv list, or a JSON string holding one (never a shell string)."""
    if isinstance(value, str):
        try:
            value = loads(value)
        except json.JSONDecodeError:
            raise UsageError(
                f"--command must be a JSON argv list such as '[\"python\", \"evolve.py\"]', got {value!r}"
            ) from None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        raise UsageError("the evolver command must be a non-empty list of strings (an argv, never a shell string)")
    return value


def materialize(state, folder: Path) -> None:
    """Write the state's files under `folder`, read-only (symlinks are not state, and
    held-out cases are for the gate alone)."""
    from aevolve._trust.exam import holdout_files

    hidden = holdout_files(state)
    for path, entry in state.files.items():
        if entry.mode == LINK or path in hidden:
            continue
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(state.read(path))
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
    for dirpath, dirnames, _ in os.walk(folder, topdown=False):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o555)
    os.chmod(folder, 0o555)


def _make_writable(folder: Path) -> None:
    for dirpath, _dirnames, _ in os.walk(folder):
        os.chmod(dirpath, stat.S_IRWXU)


class CommandEvolver:
    def __init__(self, command=None, timeout: float | None = None):
        self.command = parse_argv(command) if command is not None else None
        self.timeout = timeout
        self.reason: str | None = None
        self.name = self._name(self.command) if self.command else "command"

    @staticmethod
    def _name(argv: list[str]) -> str:
        head = os.path.basename(argv[0])
        if (head in _INTERPRETERS or head.startswith("python")) and len(argv) > 1:
            head = os.path.basename(argv[1])
        return f"command/{head}"

    def propose(self, ctx: EvolveContext) -> Proposal | None:
        ecfg = ctx.config.get("evolver", {})
        argv = self.command or (parse_argv(ecfg["command"]) if ecfg.get("command") else None)
        if argv is None:
            raise UsageError(
                "no evolver command: set `evolver.command` in aevolve.yaml or pass --command '[\"prog\", ...]'"
            )
        self.name = self._name(argv)
        timeout = float(self.timeout if self.timeout is not None else ecfg.get("timeout") or 600)
        tmp = Path(tempfile.mkdtemp(prefix="aevolve-evolver-"))
        try:
            state_dir = tmp / "state"
            state_dir.mkdir()
            materialize(ctx.state, state_dir)
            obs_file, hist_file, out_file = tmp / "observations.jsonl", tmp / "history.json", tmp / "proposal.json"
            obs_file.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in ctx.observations))
            hist_file.write_text(json.dumps(ctx.history, ensure_ascii=False, indent=1, default=str))
            env = {
                **os.environ,
                "AEVOLVE_STATE_DIR": str(state_dir), "AEVOLVE_OBSERVATIONS": str(obs_file),
                "AEVOLVE_HISTORY": str(hist_file), "AEVOLVE_OUTPUT": str(out_file),
                "AEVOLVE_BASE": ctx.base, "AEVOLVE_SEED": str(ctx.seed), "AEVOLVE_FOCUS": ctx.focus or "",
                "AEVOLVE_TEMPERATURE": "" if ctx.temperature is None else str(ctx.temperature),
            }
            stdout, stderr = self._run(argv, env, timeout, ctx.repo.workdir or tmp)
            raw = out_file.read_bytes() if out_file.exists() else stdout
            return self._parse(raw, stderr)
        finally:
            _make_writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)

    def _run(self, argv, env, timeout, cwd) -> tuple[bytes, bytes]:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, cwd=str(cwd), start_new_session=True)
        except OSError as exc:
            raise EvolverFailed(f"{self.name}: cannot start {argv[0]!r}: {exc.strerror or exc}") from None
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: its children too
            except ProcessLookupError:
                pass
            stdout, stderr = proc.communicate()
            raise EvolverFailed(f"{self.name}: timed out after {timeout:g}s and was killed\n{_tail(stderr)}") from None
        if proc.returncode != 0:
            raise EvolverFailed(f"{self.name}: exited with status {proc.returncode}\n{_tail(stderr)}")
        return stdout, stderr

    def _parse(self, raw: bytes, stderr: bytes) -> Proposal | None:
        if not raw.strip():
            self.reason = f"{self.name} wrote no proposal"
            return None
        try:
            document = loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EvolverFailed(f"{self.name}: its output is not JSON ({exc})\n{_tail(stderr)}") from None
        if document is None:
            self.reason = f"{self.name} answered null: nothing to propose"
            return None
        issues = schemas.errors("proposal", document)
        if issues:
            listed = schemas.listing(issues)
            raise EvolverFailed(f"{self.name}: its output breaks schema 'proposal':\n{listed}\n{_tail(stderr)}")
        return Proposal.from_dict(document)


EVOLVER = CommandEvolver
