"""Start the agent runner for one case run, under a timeout that kills its whole group.

The contract (docs/gate.md): argv from the baseline's `gate.runner`, never a
shell string; cwd and AEVOLVE_STATE_DIR = the read-only materialized tree of the
evaluated commit; AEVOLVE_CASE_ID and AEVOLVE_REPEAT set; the case input as JSON
on stdin; stdout is plain text or JSON {"output", "cost"?, "steps"?}. A non-zero
exit or a timeout is an *error*, never an assertion failure; `error_kind` says
which, so the gate can tell a dead runner ("start") from a crashing agent.
PYTHONDONTWRITEBYTECODE is set: the state dir is read-only, and a Python agent
importing its own modules from it must not write `__pycache__` there (as root it
could, and the gate would rightly see that as tampering).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field, replace

from aevolve._gate.cases import content_hash

STDERR_TAIL = 2000
RUNNER_PROTOCOL = 1  # bump when the contract changes: invalidates cached runs
TAMPERED_PATHS_SHOWN = 5

# why a run is an error (RunResult.error_kind)
START = "start"  # the runner could not be started at all: not found, not executable, bad cwd
EXIT = "exit"  # it exited with a non-zero status (or was killed by a signal)
TIMEOUT = "timeout"  # it ran past the timeout and was killed with its children
TAMPERED = "tampered"  # it wrote into its read-only state dir (set by the gate)
ERROR_KINDS = (START, EXIT, TIMEOUT, TAMPERED)


@dataclass(frozen=True)
class RunnerConfig:
    argv: tuple[str, ...]
    timeout: float

    @classmethod
    def from_config(cls, cfg: dict) -> RunnerConfig:
        from aevolve._errors import AevolveError

        argv = cfg["gate"].get("runner")
        if not argv:
            raise AevolveError(
                "no runner configured: set gate.runner in aevolve.yaml on the baseline, "
                'e.g. runner: ["python", "agent/run_case.py"]'
            )
        if isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
            raise AevolveError("gate.runner must be a list of strings (an argv), never a shell string")
        return cls(tuple(argv), float(cfg["gate"].get("timeout") or 60))

    @property
    def hash(self) -> str:
        return content_hash({"argv": list(self.argv), "timeout": self.timeout, "protocol": RUNNER_PROTOCOL})


@dataclass
class RunResult:
    status: str  # "ok" or "error"
    output: str = ""
    cost: float | None = None
    steps: list | None = None
    latency_ms: float = 0.0
    exit_code: int | None = None
    error: str = ""  # why the run is an error (timeout, exit status, cannot start)
    stderr: str = ""  # tail
    error_kind: str = ""  # one of ERROR_KINDS when status is "error"
    cached: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("cached")
        return out

    @classmethod
    def from_dict(cls, data: dict, cached: bool = False) -> RunResult:
        # fields missing from older cached dicts (error_kind) keep their defaults
        known = {k: data[k] for k in _STORED_FIELDS if data.get(k) is not None}
        return cls(**known, cached=cached)


_STORED_FIELDS = ("status", "output", "cost", "steps", "latency_ms", "exit_code", "error", "stderr", "error_kind")


def parse_stdout(text: str) -> tuple[str, float | None, list | None]:
    """(output, cost, steps) from a runner's stdout: JSON with "output", else the text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "output" in data:
            output = data["output"]
            if not isinstance(output, str):
                output = json.dumps(output, ensure_ascii=False)
            cost = data.get("cost")
            cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
            steps = data.get("steps") if isinstance(data.get("steps"), list) else None
            return output, cost, steps
    return text.rstrip("\n"), None, None


_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def kill_all() -> None:
    """Kill every runner still running (the gate was interrupted): they sit in their
    own sessions, so a Ctrl-C on the terminal does not reach them."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_once(config: RunnerConfig, state_dir, case_id: str, case_input, repeat: int = 0) -> RunResult:
    """One run of the runner on one case; never raises for the runner's own failures."""
    env = {
        **os.environ,
        "AEVOLVE_STATE_DIR": str(state_dir),
        "AEVOLVE_CASE_ID": case_id,
        "AEVOLVE_REPEAT": str(repeat),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    stdin = json.dumps(case_input, ensure_ascii=False).encode()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            list(config.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=str(state_dir), env=env, start_new_session=True,  # its own process group, killed as one
        )
    except OSError as exc:
        return RunResult("error", error=f"cannot start runner {config.argv[0]!r}: {exc.strerror or exc}",
                         error_kind=START)
    with _live_lock:
        _live.add(proc)
    try:
        out, err = proc.communicate(stdin, timeout=config.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a child escaped the group and holds the pipes
            out, err = b"", b""
        latency = (time.perf_counter() - start) * 1000
        return RunResult("error", latency_ms=latency, exit_code=proc.returncode,
                         error=f"timed out after {config.timeout:g}s (runner and its children killed)",
                         error_kind=TIMEOUT,
                         stderr=_tail(err), output=out.decode(errors="replace")[-STDERR_TAIL:])
    finally:
        if proc.returncode is None:
            _kill_group(proc)
            proc.wait()
        with _live_lock:
            _live.discard(proc)
    latency = (time.perf_counter() - start) * 1000
    _kill_group(proc)  # background children left behind must not outlive the run
    if proc.returncode != 0:
        return RunResult("error", latency_ms=latency, exit_code=proc.returncode,
                         error=f"runner exited with status {proc.returncode}", stderr=_tail(err),
                         error_kind=EXIT)
    output, cost, steps = parse_stdout(out.decode("utf-8", errors="replace"))
    return RunResult("ok", output=output, cost=cost, steps=steps, latency_ms=latency,
                     exit_code=0, stderr=_tail(err))


def tampered(run: RunResult, paths: list[str]) -> RunResult:
    """`run` turned into an error: it wrote into its state dir (`paths`, from
    MaterializedTree.end), or another run did while it was reading it."""
    from aevolve._gate.materialize import CONCURRENT_CHANGE

    own = [p for p in paths if p != CONCURRENT_CHANGE]
    parts = []
    if own:
        shown = ", ".join(own[:TAMPERED_PATHS_SHOWN])
        more = f" (and {len(own) - TAMPERED_PATHS_SHOWN} more)" if len(own) > TAMPERED_PATHS_SHOWN else ""
        parts.append(f"runner wrote into its read-only state dir: {shown}{more}")
    if CONCURRENT_CHANGE in paths:
        parts.append("the state dir was modified by a concurrent run while this run used it")
    if not parts:
        parts.append("runner wrote into its read-only state dir")
    return replace(run, status="error", error_kind=TAMPERED, error="; ".join(parts), cached=False)


def _tail(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")[-STDERR_TAIL:]
