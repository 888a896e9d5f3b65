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

What a run may leave behind is bounded: at most `gate.max_output_bytes` of
stdout (the head: it is the answer) and of stderr (the tail) is kept, the rest
is read and discarded as it arrives, and RunResult.truncated says which was cut.
Every process a run started is killed when it ends: its process group, and on
Linux the descendants that left it (the gate is a child subreaper, so orphans
come back to it; each run's environment carries AEVOLVE_RUN_TOKEN to tell whose
they are). A run is judged by the runner's own exit, not by its pipes closing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace

from aevolve._config import DEFAULTS
from aevolve._gate.cases import content_hash
from aevolve._json import loads

STDERR_TAIL = 2000  # characters of stderr a RunResult keeps (the report shows fewer)
STDERR_READ_TAIL = 16 * 1024  # bytes of stderr held while reading, enough for STDERR_TAIL characters
# bump when the contract changes: invalidates cached runs (2: output cap; 3: plain text
# trimmed at both ends, a runner's own latency_ms)
RUNNER_PROTOCOL = 3
READ_CHUNK = 64 * 1024
EXIT_GRACE = 0.5  # seconds the pipes may stay open after the runner exited, before the rest is killed
DRAIN_AFTER_KILL = 0.2  # seconds spent reading what is left in the pipes once everything was killed
WAKE = 0.5  # longest uninterrupted wait for a runner's output or exit
POLL = 0.02  # how often to look for the runner's exit where no pidfd tells us
SWEEP_LIMIT = 2.0  # seconds one sweep may spend killing and reaping descendants
TOKEN_VAR = "AEVOLVE_RUN_TOKEN"
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
    max_output_bytes: int = DEFAULTS["gate"]["max_output_bytes"]

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
        cap = cfg["gate"].get("max_output_bytes", DEFAULTS["gate"]["max_output_bytes"])
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise AevolveError(f"gate.max_output_bytes must be a positive number of bytes, not {cap!r} "
                               "(aevolve.yaml on the baseline)")
        return cls(tuple(argv), float(cfg["gate"].get("timeout") or 60), cap)

    @property
    def hash(self) -> str:
        # the cap is in the key: a run cut at one cap is not the run another cap would keep
        return content_hash({"argv": list(self.argv), "timeout": self.timeout,
                             "max_output_bytes": self.max_output_bytes, "protocol": RUNNER_PROTOCOL})


@dataclass
class RunResult:
    status: str  # "ok" or "error"
    output: str = ""
    cost: float | None = None
    steps: list | None = None
    latency_ms: float = 0.0
    latency_source: str = "measured"  # "runner": the runner printed its own latency_ms
    exit_code: int | None = None
    error: str = ""  # why the run is an error (timeout, exit status, cannot start)
    stderr: str = ""  # tail
    error_kind: str = ""  # one of ERROR_KINDS when status is "error"
    truncated: list[str] = field(default_factory=list)  # "stdout", "stderr": cut at max_output_bytes
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


_STORED_FIELDS = ("status", "output", "cost", "steps", "latency_ms", "latency_source", "exit_code", "error", "stderr",
                  "error_kind", "truncated")


@dataclass
class Printed:
    """What a runner printed on stdout, read."""
    output: str
    cost: float | None = None
    steps: list | None = None
    latency_ms: float | None = None  # the runner's own measurement, when it printed one


def read_stdout(text: str) -> Printed:
    """A runner's stdout: one JSON object with "output" (and "cost", "steps",
    "latency_ms"), else plain text trimmed at both ends, as promptfoo's exec: provider
    trims it (a trailing newline or a leading blank line is not the answer)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = loads(stripped)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "output" in data:
            output = data["output"]
            if not isinstance(output, str):
                output = json.dumps(output, ensure_ascii=False)
            return Printed(output, _number(data.get("cost")),
                           data.get("steps") if isinstance(data.get("steps"), list) else None,
                           _latency(data.get("latency_ms")))
    return Printed(stripped)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _latency(value) -> float | None:
    """A runner's own latency: a finite number of milliseconds >= 0, else ignored."""
    number = _number(value)
    return number if number is not None and 0 <= number < float("inf") else None


# -- running one case ------------------------------------------------------------------


def run_once(config: RunnerConfig, state_dir, case_id: str, case_input, repeat: int = 0) -> RunResult:
    """One run of the runner on one case; never raises for the runner's own failures."""
    import secrets

    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "AEVOLVE_STATE_DIR": str(state_dir),
        "AEVOLVE_CASE_ID": case_id,
        "AEVOLVE_REPEAT": str(repeat),
        "PYTHONDONTWRITEBYTECODE": "1",
        TOKEN_VAR: token,  # how the gate tells which run an orphaned process came from
    }
    stdin = json.dumps(case_input, ensure_ascii=False).encode()
    start = time.perf_counter()
    try:
        proc = _spawn(list(config.argv), state_dir, env, token)
    except OSError as exc:
        return RunResult("error", error=f"cannot start runner {config.argv[0]!r}: {exc.strerror or exc}",
                         error_kind=START)
    pipes = _Pipes(proc, stdin, config.max_output_bytes)
    try:
        exited = pipes.wait(time.monotonic() + config.timeout)
        latency = (time.perf_counter() - start) * 1000
        if not exited:
            _kill_group(proc)
        proc.wait()
    finally:
        if proc.returncode is None:  # interrupted: nothing of the run may outlive it
            _kill_group(proc)
            proc.wait()
        _finish(token, proc)
        pipes.drain(time.monotonic() + DRAIN_AFTER_KILL)
        pipes.close()
    return _result(proc, pipes, latency, exited, config)


def _result(proc: subprocess.Popen, pipes: _Pipes, latency: float, exited: bool, config: RunnerConfig) -> RunResult:
    truncated = pipes.truncated()
    stderr = pipes.err.text()[-STDERR_TAIL:]
    if not exited:
        return RunResult("error", latency_ms=latency, exit_code=proc.returncode,
                         error=f"timed out after {config.timeout:g}s (runner and its children killed)",
                         error_kind=TIMEOUT, stderr=stderr, output=pipes.out.text()[-STDERR_TAIL:],
                         truncated=truncated)
    code = proc.returncode
    if code != 0:
        why = f"runner exited with status {code}" if code > 0 else f"runner was killed by signal {-code}"
        return RunResult("error", latency_ms=latency, exit_code=code, error=why, stderr=stderr,
                         error_kind=EXIT, truncated=truncated)
    text = pipes.out.text()
    # a cut JSON document is no longer JSON: what was kept is judged as text
    printed = Printed(text) if "stdout" in truncated else read_stdout(text)
    own = printed.latency_ms
    return RunResult("ok", output=printed.output, cost=printed.cost, steps=printed.steps,
                     latency_ms=latency if own is None else own, latency_source="measured" if own is None else "runner",
                     exit_code=0, stderr=stderr, truncated=truncated)


class _Capture:
    """At most `keep` bytes of one stream, its head or its tail; the rest is counted and dropped."""

    def __init__(self, keep: int, head: bool):
        self.keep, self.head = keep, head
        self.chunks: deque[bytes] = deque()
        self.held = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.head:
            room = self.keep - self.held
            if room > 0:
                self.chunks.append(chunk[:room])
                self.held += min(room, len(chunk))
            return
        self.chunks.append(chunk)
        self.held += len(chunk)
        while self.held - len(self.chunks[0]) >= self.keep:
            self.held -= len(self.chunks.popleft())

    def text(self) -> str:
        import codecs

        data = b"".join(self.chunks)
        if self.head:  # a character cut in two at the cap is dropped, not replaced
            return codecs.getincrementaldecoder("utf-8")("replace").decode(data[:self.keep],
                                                                           final=self.total <= self.keep)
        return data[-self.keep:].decode("utf-8", errors="replace")


class _Pipes:
    """The runner's three pipes, pumped without threads: its input is written as it reads
    it, its output read as it comes, so neither side can block the other."""

    def __init__(self, proc: subprocess.Popen, data: bytes, cap: int):
        import selectors

        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc, self.cap = proc, cap
        self.out = _Capture(cap, head=True)  # the answer is at the start
        self.err = _Capture(min(cap, STDERR_READ_TAIL), head=False)  # the cause of a crash is at the end
        self.sel = selectors.DefaultSelector()
        self.open = 0
        for stream, capture in ((proc.stdout, self.out), (proc.stderr, self.err)):
            os.set_blocking(stream.fileno(), False)
            self.sel.register(stream.fileno(), selectors.EVENT_READ, capture)
            self.open += 1
        self.data, self.sent = memoryview(data), 0
        self.writing = True
        os.set_blocking(proc.stdin.fileno(), False)
        self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
        self.pidfd = _pidfd(proc.pid)
        if self.pidfd is not None:  # readable once the runner exits: no polling
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        self.exited_at: float | None = None

    def wait(self, deadline: float) -> bool:
        """Pump until the runner exited and its pipes closed, or EXIT_GRACE after its exit
        (a child may hold them): True. False when `deadline` came with the runner still running."""
        while True:
            now = time.monotonic()
            if self.exited_at is None and self.proc.poll() is not None:
                self.exited_at = now
            if self.exited_at is not None:
                if not self.open or now >= self.exited_at + EXIT_GRACE:
                    return True
                self._pump(self.exited_at + EXIT_GRACE - now)
            elif now >= deadline:
                return False
            elif not self.open and not self.writing and self.pidfd is None:
                try:  # nothing left to pump: only its exit is awaited
                    self.proc.wait(timeout=deadline - now)
                except subprocess.TimeoutExpired:
                    return False
            else:
                self._pump(deadline - now if self.pidfd is not None else min(deadline - now, POLL))

    def _pump(self, limit: float) -> None:
        # waking every WAKE seconds lets an exception set from outside the thread through
        # (Ray's cancel of a task); a signal would interrupt the select anyway
        for key, _ in self.sel.select(min(max(limit, 0), WAKE)):
            if key.data == "exit":
                self.sel.unregister(key.fd)  # it stays readable; poll() has the news
            elif key.data == "stdin":
                self._write(key.fd)
            else:
                self._read(key.fd, key.data)

    def _read(self, fd: int, capture: _Capture) -> None:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            capture.feed(chunk)
        else:
            self.sel.unregister(fd)
            self.open -= 1

    def _write(self, fd: int) -> None:
        try:
            self.sent += os.write(fd, self.data[self.sent:self.sent + READ_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # a runner that does not read its input is its own business
            self.sent = len(self.data)
        if self.sent >= len(self.data):
            self.sel.unregister(fd)
            self.writing = False
            _close(self.proc.stdin)

    def drain(self, until: float) -> None:
        """Read what is already in the pipes, without waiting for anyone to write more."""
        while self.open and time.monotonic() < until:
            ready = [k for k, _ in self.sel.select(0) if isinstance(k.data, _Capture)]
            if not ready:
                return
            for key in ready:
                self._read(key.fd, key.data)

    def truncated(self) -> list[str]:
        return [name for name, capture in (("stdout", self.out), ("stderr", self.err)) if capture.total > self.cap]

    def close(self) -> None:
        self.sel.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            _close(stream)


def _close(stream) -> None:
    try:
        stream.close()
    except OSError:  # stdin whose reader is gone
        pass


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)  # Linux 5.3+
    except (AttributeError, OSError):
        return None


# -- every process of a run dies with it ------------------------------------------------------
#
# A runner starts in its own session, so killing its process group kills what stayed in
# it. What left the group (setsid, a double fork) is found on Linux because the gate is a
# child subreaper: orphans are reparented to it instead of init. Each of its children that
# is not the gate's own is judged by the run token in its environment, else by its session.


@dataclass
class _Reaper:
    prepared: bool = False
    active: bool = False  # a subreaper with /proc: orphans can be found
    sid: int = 0  # the gate's own session: its own children (git, ssh-keygen) stay in it
    since: int = 0  # clock ticks since boot when the first runner started
    children_files: bool = False  # /proc/PID/task/TID/children exists (CONFIG_PROC_CHILDREN)


@dataclass(frozen=True)
class _Child:
    pid: int
    state: str
    sid: int
    start: int  # clock ticks since boot


_reaper = _Reaper()
_live: dict[str, subprocess.Popen | None] = {}  # run token -> its runner (None while starting)
_doomed: set[int] = set()  # killed children not yet reaped
_live_lock = threading.RLock()
PR_SET_CHILD_SUBREAPER = 36


def _spawn(argv: list[str], state_dir, env: dict, token: str) -> subprocess.Popen:
    _prepare()
    with _live_lock:  # a sweep never sees a runner between its fork and its registration
        _live[token] = None
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=str(state_dir), env=env, start_new_session=True,  # its own process group, killed as one
            )
        except BaseException:
            del _live[token]
            raise
        _live[token] = proc
    return proc


def _finish(token: str, proc: subprocess.Popen) -> None:
    """Kill what is left of a finished run: its process group, then its orphans."""
    _kill_group(proc)
    with _live_lock:
        _live.pop(token, None)
    _sweep({token}, {proc.pid})


def kill_all() -> None:
    """Kill every runner still running (the gate was interrupted): they sit in their
    own sessions, so a Ctrl-C on the terminal does not reach them."""
    with _live_lock:
        procs = {token: proc for token, proc in _live.items() if proc is not None}
    for proc in procs.values():
        _kill_group(proc)
    _sweep(set(procs), {proc.pid for proc in procs.values()})


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _prepare() -> None:
    """Become a child subreaper, once (Linux): orphans of runs come back to us."""
    import sys

    with _live_lock:
        if _reaper.prepared:
            return
        _reaper.prepared = True
        if not sys.platform.startswith("linux"):
            return
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                return
            with open("/proc/uptime") as fh:
                uptime = float(fh.read().split()[0])
        except (OSError, AttributeError, ValueError):
            return  # no prctl, no /proc: process groups only
        _reaper.active = True
        _reaper.children_files = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
        _reaper.sid = os.getsid(0)
        _reaper.since = int(uptime * os.sysconf("SC_CLK_TCK")) - 1


def _sweep(own_tokens: set[str], own_sids: set[int]) -> None:
    """Kill and reap every child of ours that came from the runs `own_tokens` (and, when
    no run is live, any child that hid where it came from); bounded by SWEEP_LIMIT."""
    if not _reaper.active:
        return
    deadline = time.monotonic() + SWEEP_LIMIT
    while True:
        with _live_lock:
            live_pids = {proc.pid for proc in _live.values() if proc is not None}
            live_tokens = set(_live) - own_tokens
            victims = [c for c in _children()
                       if _is_victim(c, own_tokens, own_sids, live_tokens, live_pids)]
            for child in victims:
                if child.state != "Z":
                    _signal(child.pid)
                _doomed.add(child.pid)
            _reap()
        if not victims or time.monotonic() > deadline:
            return
        time.sleep(0.002)  # SIGKILL is not instant; their own children come back to us meanwhile


def _is_victim(child: _Child, own_tokens: set[str], own_sids: set[int], live_tokens: set[str],
               live_pids: set[int]) -> bool:
    if child.pid in live_pids:
        return False  # a runner still running, or not yet waited for: its Popen reaps it
    if child.pid in _doomed:
        return True
    hidden, token = _token_of(child.pid)
    if token is not None:  # a token of no live run: an orphan of a run that already ended
        return token in own_tokens or token not in live_tokens
    if not hidden or child.sid == _reaper.sid:
        return False  # the gate's own children carry no token and stay in its session
    if child.sid in own_sids:
        return True  # cleared its environment but stayed in the run's session
    # cleared its environment and left the session: whose is it? Only safe once no run is live
    return not live_tokens and child.sid not in live_pids and child.start >= _reaper.since


def _children() -> list[_Child]:
    """Our children, from each thread's `children` list (cheap), else from all of /proc."""
    me = os.getpid()
    if not _reaper.children_files:
        return _stats(os.listdir("/proc"), me)
    pids: set[str] = set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{me}/task/{tid}/children") as fh:
                pids.update(fh.read().split())
        except OSError:
            continue  # a thread that just ended
    return _stats(pids, me)


def _stats(names, me: int) -> list[_Child]:
    out = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == me:
            out.append(_Child(int(name), fields[0].decode(), int(fields[3]), int(fields[19])))
    return out


def _token_of(pid: int) -> tuple[bool, str | None]:
    """(environment hidden: unreadable or empty, e.g. cleared or a zombie; the run token)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            data = fh.read()
    except OSError:
        return True, None
    prefix = TOKEN_VAR.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(prefix):
            return False, item[len(prefix):].decode(errors="replace")
    return not data, None


def _signal(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap() -> None:
    for pid in list(_doomed):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _doomed.discard(pid)


def run_guarded(guard, config: RunnerConfig, case_id: str, case_input, repeat: int = 0) -> RunResult:
    """One run in the folder of `guard` (a MaterializedTree); one that wrote there is `tampered`."""
    token = guard.begin()
    run = run_once(config, guard.root, case_id, case_input, repeat)
    changed = guard.end(token)
    return tampered(run, changed) if changed else run


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
