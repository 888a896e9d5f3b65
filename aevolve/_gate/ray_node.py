"""One case run on a Ray node: the tree once per node, the runner as locally.

A Ray task gets the tree id and a *shipment*: object refs to the tree's file
list and to its blobs, wrapped in a list so Ray does not fetch them before they
are needed. The node keeps a verified copy per tree id under
`$AEVOLVE_RAY_DIR/<node>/trees/` (default: the system temp folder), built by the
first task that needs it (an exclusive lock per tree, so two workers on one node
never both fetch), verified and guarded by the same `MaterializedTree` the local
gate uses. The runner is started by the same `run_once`: same contract, same
timeout, same kills. A task cancelled by the gate (Ctrl-C) gets a
KeyboardInterrupt, and `run_once` kills its runner on the way out.

This module runs on the nodes: it must not import Ray's driver side or the repository.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_VAR = "AEVOLVE_RAY_DIR"

_open: dict[tuple[str, str], object] = {}  # (node folder, tree id) -> MaterializedTree, per worker process
_open_lock = threading.Lock()


class ShippedTree:
    """A tree's files as the gate shipped them (materialize.TreeSource)."""

    def __init__(self, shipment: list):
        self._shipment = shipment  # [ref to {path: (blob id, mode)}, ref to {blob id: bytes}]
        self._blobs: dict | None = None

    def files(self) -> dict[str, tuple[str, int]]:
        import ray

        return ray.get(self._shipment[0])

    def blob(self, oid: str) -> bytes:
        if self._blobs is None:
            import ray

            self._blobs = ray.get(self._shipment[1])
        return self._blobs[oid]


def installed_version() -> str:
    """The aevolve installed here (the gate and every node must run the same one)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aevolve")
    except PackageNotFoundError:
        return "unknown"


def node_folder(node_id: str) -> Path:
    """This node's folder: $AEVOLVE_RAY_DIR/<node>, else a private folder in the temp folder."""
    chosen = os.environ.get(DIR_VAR)
    if chosen:
        return Path(chosen) / node_id[:16]
    base = Path(tempfile.gettempdir()) / f"aevolve-ray-{os.getuid()}"
    _private(base)
    return base / node_id[:16]


def _private(base: Path) -> None:
    """`base` is a real folder of ours that no one else can write: the temp folder is
    shared, and another user could plant a symlink there to make us write elsewhere."""
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(f"{base} is not a folder only this user can write (a symlink, another user's, "
                              f"or group/world-writable): remove it, or set {DIR_VAR} on the node")


def run_case(tree_id: str, shipment: list, runner, case_id: str, case_input, repeat: int) -> dict:
    """The Ray task: {"run": RunResult as a dict, "node": node id, "built": this task built the copy,
    "version": this node's aevolve}."""
    import ray

    from aevolve._gate.runner import run_guarded

    node = ray.get_runtime_context().get_node_id()
    guard, built = _tree(node_folder(node), tree_id, shipment)
    run = run_guarded(guard, runner, case_id, case_input, repeat)
    return {"run": run.to_dict(), "node": node, "built": built, "version": installed_version()}


def _tree(folder: Path, tree_id: str, shipment: list):
    """This node's verified copy of the tree (built here if missing), and whether this call built it."""
    from aevolve._gate.materialize import MaterializedTree

    key = (str(folder), tree_id)
    with _open_lock:
        guard = _open.get(key)
        if guard is not None and guard.is_clean():  # type: ignore[attr-defined]
            return guard, False
        (folder / "trees").mkdir(parents=True, exist_ok=True)
        with _node_lock(folder / f"build-{tree_id}.lock"):  # other workers of this node wait
            existed = (folder / "trees" / tree_id).exists()
            guard = MaterializedTree.open_from(ShippedTree(shipment), tree_id, folder / "trees", folder / "tree-locks")
        _open[key] = guard
    return guard, not existed or bool(guard.repaired)


@contextmanager
def _node_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
