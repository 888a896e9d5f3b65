"""The gate's case runs as Ray tasks (`gate.executor: ray`): Ray schedules, we do not.

Each uncached run is one task (`ray_node.run_case`) reserving `gate.ray.num_cpus`.
Each evaluated tree is put in Ray's object store once per gate (its file list
and its blobs) and copied to disk once per node, keyed by tree id; the runner
starts there under the same contract, timeout and kill rules as a local run.
Cache lookups, grading, the decision and the report stay in the gate process,
so a verdict is the same whichever executor made the runs.

A task that Ray cannot run (a lost node after Ray's own retries, a node without
aevolve installed) fails the gate closed: an infrastructure failure must never
count as the agent's error. Ctrl-C cancels every task; a cancelled task's runner
is killed on its node. The connection lasts one `gate` (`use`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from aevolve._errors import GateError

EXECUTORS = ("local", "ray")
INSTALL_HINT = "pip install 'aevolve[ray]'"
CANCEL_GRACE = 5.0  # seconds a cancelled task has to stop its runner before it is killed
CONNECT_TIMEOUT = 10.0  # seconds to reach a cluster's head before the gate gives up


@dataclass(frozen=True)
class Executor:
    """Where case runs happen: here (`local`) or on a Ray cluster."""

    kind: str = "local"
    address: str | None = None  # None: $RAY_ADDRESS, else a Ray started for this gate
    num_cpus: float = 1.0

    @classmethod
    def resolve(cls, cfg: dict) -> Executor:
        """The executor chosen by `use` (the command line), else the baseline's gate.executor."""
        gate = cfg.get("gate") or {}
        ray_cfg: dict = gate["ray"] if isinstance(gate.get("ray"), dict) else {}
        kind, address = _chosen.get()
        kind = kind or gate.get("executor") or "local"
        if kind not in EXECUTORS:
            raise GateError(f"gate.executor must be one of {', '.join(EXECUTORS)}, not {kind!r} "
                            "(aevolve.yaml on the baseline)")
        cpus = ray_cfg.get("num_cpus", 1)
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0:
            raise GateError(f"gate.ray.num_cpus must be a positive number, not {cpus!r} (aevolve.yaml on the baseline)")
        address = address or ray_cfg.get("address")
        if address is not None and not isinstance(address, str):
            raise GateError(f"gate.ray.address must be a string, not {address!r} (aevolve.yaml on the baseline)")
        return cls(kind, address, float(cpus))


@dataclass
class Placement:
    """Where the runs went: the nodes used, and which node built which tree's copy."""

    nodes: set[str] = field(default_factory=set)
    built: dict[str, list[str]] = field(default_factory=dict)  # tree id -> nodes that built its copy

    def describe(self) -> str:
        copies = sum(len(nodes) for nodes in self.built.values())
        return f"ran on {len(self.nodes)} Ray node(s); {copies} tree copies built on nodes"


_chosen: ContextVar[tuple[str | None, str | None]] = ContextVar("aevolve_executor", default=(None, None))
_open = {"depth": 0, "connected": False}  # nested `use`s, and whether one of them connected


@contextmanager
def use(kind: str | None = None, address: str | None = None) -> Iterator[None]:
    """Gates inside use executor `kind` at `address` (None: the baseline's setting,
    or an enclosing `use`'s). A Ray connection opened inside lasts until the
    outermost `use` ends: an `evolve` loop pays Ray's worker start-up once, not
    once per gate."""
    chosen = _chosen.get()
    token = _chosen.set((kind or chosen[0], address or chosen[1]))
    _open["depth"] += 1
    try:
        yield
    finally:
        _chosen.reset(token)
        _open["depth"] -= 1
        if not _open["depth"] and _open["connected"]:
            _open["connected"] = False
            import ray

            ray.shutdown()


def connect(executor: Executor):
    """The `ray` module, connected to the executor's cluster (one connection per `use`)."""
    try:
        import ray
    except ImportError:
        raise GateError(f"gate.executor is ray, but Ray is not installed here: {INSTALL_HINT}") from None
    if ray.is_initialized():
        return ray  # our session's connection, or the caller's own Ray driver
    address = executor.address or os.environ.get("RAY_ADDRESS")
    if address:
        _reachable(address)
    try:
        ray.init(address=executor.address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = executor.address or "$RAY_ADDRESS or a local Ray"
        raise GateError(f"cannot connect to Ray at {where}: {exc} (gate.ray.address, or --ray-address)") from None
    _open["connected"] = True
    return ray


class RemoteRuns:
    """Submit runs as Ray tasks, then wait for each one's result."""

    def __init__(self, repo, executor: Executor):
        self.ray = connect(executor)
        self.repo = repo
        self.executor = executor
        self.placement = Placement()
        self._shipments: dict[str, list] = {}
        self._refs: list = []
        from aevolve._gate.ray_node import run_case

        self._task = self.ray.remote(num_cpus=executor.num_cpus)(run_case)

    def submit(self, tree: str, runner, case_id: str, case_input, repeat: int):
        ref = self._task.remote(tree, self._ship(tree), runner, case_id, case_input, repeat)
        self._refs.append(ref)
        return ref

    def result(self, ref, tree: str):
        """The RunResult of the run `ref` on `tree` (blocks); GateError when Ray could not run it."""
        from aevolve._gate.runner import RunResult

        try:
            done = self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:
            raise KeyboardInterrupt from None
        except self.ray.exceptions.RayError as exc:
            raise GateError(f"a case run failed on Ray, so nothing can be judged: {_first_line(exc)} "
                            f"(every node needs this version of aevolve: {INSTALL_HINT})") from None
        _check_answer(done)
        self.placement.nodes.add(done["node"])
        if done["built"]:
            self.placement.built.setdefault(tree, []).append(done["node"])
        return RunResult.from_dict(done["run"])

    def cancel(self) -> None:
        """Cancel every task not finished: a running one gets a KeyboardInterrupt, and
        `run_once` kills its runner. One still running after CANCEL_GRACE (a worker that
        ignores SIGINT) is force-cancelled: its worker dies, and a runner may outlive it."""
        pending = self._cancel(self._refs, force=False)
        if pending:
            _, stuck = self.ray.wait(pending, num_returns=len(pending), timeout=CANCEL_GRACE)
            if stuck:
                self._cancel(stuck, force=True)
                print(f"aevolve: {len(stuck)} Ray task(s) ignored the interrupt and were killed; "
                      "their runners may still be running on their nodes", file=sys.stderr)

    def _cancel(self, refs: list, force: bool) -> list:
        """The refs cancelled (those already finished or gone need nothing)."""
        pending = []
        for ref in refs:
            try:
                self.ray.cancel(ref, force=force)
            except Exception:
                continue
            pending.append(ref)
        return pending

    def _ship(self, tree: str) -> list:
        """The tree in the object store, put once per gate (a list: Ray must not fetch it eagerly)."""
        if tree not in self._shipments:
            from aevolve._gate.materialize import expected_files

            files = expected_files(self.repo, tree)
            blobs = {oid: self.repo.blob(oid) for oid, _mode in set(files.values())}
            self._shipments[tree] = [self.ray.put(files), self.ray.put(blobs)]
        return self._shipments[tree]


def _check_answer(done) -> None:
    """A node's answer is a run of this aevolve's runner contract, or the gate cannot judge."""
    from aevolve._gate.ray_node import installed_version

    ours = installed_version()
    version = done.get("version") if isinstance(done, dict) else None
    if version != ours or not isinstance(done.get("run"), dict) or not isinstance(done.get("node"), str):
        raise GateError(f"a Ray node runs aevolve {version or 'of another version'}, this gate {ours}: "
                        f"install the same version on every node ({INSTALL_HINT})")


def _reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse an address nothing listens on: Ray itself would retry it forever."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise GateError(f"gate.ray.address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise GateError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
                        "(is its head running? gate.ray.address, or --ray-address)") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
