"""The gate on Ray (gate.executor: ray), against a real two-node Ray cluster on this machine.

The cluster is Ray's own `ray.cluster_utils.Cluster`: a head and a second node,
one CPU each, started once for the module. Node copies of trees go to a folder
of the test's (AEVOLVE_RAY_DIR, inherited by every Ray worker).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import alive, git
from gate_support import GateRepo, cases_yaml

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one cluster per test process, not one per xdist worker

TAMPER_AGENT = """
import os, sys
open(sys.argv[1], "a").write(os.environ["AEVOLVE_CASE_ID"] + "\\n")
if os.environ["AEVOLVE_CASE_ID"] == "t":
    target = os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "facts.jsonl")
    os.chmod(target, 0o644)
    open(target, "a").write("{}\\n")
print("right")
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    nodes = tmp_path_factory.mktemp("ray-nodes")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AEVOLVE_RAY_DIR", str(nodes))  # the raylets and their workers inherit it
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        small = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
        c = Cluster(initialize_head=True, head_node_args=small)
        c.add_node(**small)
        c.wait_for_nodes()
        try:
            yield c
        finally:
            if ray.is_initialized():
                ray.shutdown()
            c.shutdown()


def sample(tmp_path: Path, **config) -> GateRepo:
    g = GateRepo(tmp_path, {"a": "right", "b": "right", "c": "wrong", "d": "right"},
                 cases_yaml("a", "b", "c", "d"), **config)
    g.answers_branch("evolve/x", a="right", b="wrong", c="right", d="right")
    return g


def comparable(report) -> tuple:
    """A report's verdict without what differs between any two gates (timings, run counts)."""
    def side(data: dict) -> dict:
        outputs = [{k: v for k, v in out.items() if k != "latency_ms"} for out in data.get("outputs", [])]
        return {**{k: v for k, v in data.items() if k != "latency_ms"}, "outputs": outputs}

    cases = [{k: side(v) if k in ("baseline", "candidate") else v for k, v in case.items()} for case in report.cases]
    return report.decision, report.reasons, cases, [e["case"] for e in report.errors]


def test_a_ray_gate_gives_the_verdict_of_a_local_gate(tmp_path, cluster):
    from aevolve import gate

    g = sample(tmp_path)
    local = gate(g.repo, "evolve/x", use_cache=False, write_note=False)
    remote = gate(g.repo, "evolve/x", use_cache=False, write_note=False, executor="ray", ray_address=cluster.address)
    assert local.decision == "reject"
    assert comparable(remote) == comparable(local)
    assert remote.timings["runs_started"] == 8


def test_each_tree_is_copied_once_per_node_and_reused_by_the_next_gate(tmp_path, cluster, capsys):
    from aevolve import gate

    g = GateRepo(tmp_path, {c: "SLEEP:0.2" for c in "abcdef"}, cases_yaml(*"abcdef"))
    g.answers_branch("evolve/x", **{c: "SLEEP:0.2" for c in "abcde"}, f="right")
    gate(g.repo, "evolve/x", use_cache=False, progress=True, executor="ray", ray_address=cluster.address)
    first = capsys.readouterr().err
    assert "ran on 2 Ray node(s)" in first  # one CPU per node: 12 runs spread over both
    gate(g.repo, "evolve/x", use_cache=False, progress=True, executor="ray", ray_address=cluster.address)
    second = capsys.readouterr().err
    built = [int(err.split("; ")[1].split()[0]) for err in (first, second)]
    assert built[0] >= 2  # each of the 2 trees somewhere
    assert sum(built) <= 4  # 2 trees x 2 nodes, over both gates and 24 runs: no copy built twice


def test_a_runner_past_its_timeout_on_a_node_is_killed_with_its_child(tmp_path, cluster):
    from aevolve import gate

    g = GateRepo(tmp_path, {"a": "right", "h": "right"}, cases_yaml("a", "h"), timeout=1.2)
    g.answers_branch("evolve/hang", a="right", h="HANG")
    report = gate(g.repo, "evolve/hang", executor="ray", ray_address=cluster.address)
    [error] = report.errors
    assert error["case"] == "h" and "timed out after 1.2s" in error["error"]
    assert report.decision == "reject"
    child = int(Path(str(g.log) + ".child").read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # the node reaps it; the gate does not wait for that
    assert not alive(child)


def test_a_run_writing_into_its_node_copy_is_tampered_and_the_copy_is_rebuilt(tmp_path, cluster):
    from aevolve import gate

    g = GateRepo(tmp_path, {"a": "right", "t": "right"}, cases_yaml("a", "t"))
    (tmp_path / "agent.py").write_text(TAMPER_AGENT)
    g.answers_branch("evolve/x", a="right", t="right", n="new")
    report = gate(g.repo, "evolve/x", executor="ray", ray_address=cluster.address)
    assert {e["kind"] for e in report.errors} == {"tampered"}
    assert {e["case"] for e in report.errors} == {"t"}
    assert report.decision == "error"


def test_the_baselines_gate_executor_setting_sends_runs_to_ray(tmp_path, cluster, capsys):
    from aevolve import gate

    g = sample(tmp_path)
    text = (g.path / "aevolve.yaml").read_text()
    text += f"  executor: ray\n  ray:\n    address: {json.dumps(cluster.address)}\n"
    (g.path / "aevolve.yaml").write_text(text)
    git(g.path, "commit", "-qam", "gate on Ray")
    g.answers_branch("evolve/y", a="right", b="right", c="right", d="right")
    gate(g.repo, "evolve/y", progress=True)
    assert "Ray node(s)" in capsys.readouterr().err


def test_ctrl_c_cancels_the_ray_tasks_and_kills_their_runners(tmp_path, cluster):
    g = GateRepo(tmp_path, {"a": "SLEEP:600", "b": "SLEEP:600"}, cases_yaml("a", "b"), timeout=900)
    g.answers_branch("evolve/x", a="SLEEP:600", b="SLEEP:601")
    proc = subprocess.Popen([sys.executable, "-m", "aevolve", "-C", str(g.path), "gate", "evolve/x",
                             "--executor", "ray", "--ray-address", cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while g.runs() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert g.runs() == 2  # one runner on each node
    runners = _agents(tmp_path)
    assert len(runners) == 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in runners) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in runners)


def test_an_address_nothing_listens_on_is_an_error_at_once(tmp_path):
    from aevolve import gate
    from aevolve._errors import GateError

    g = sample(tmp_path)
    with pytest.raises(GateError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1: .*--ray-address"):
        gate(g.repo, "evolve/x", executor="ray", ray_address="127.0.0.1:1")
    assert g.runs() == 0


def _agents(tmp_path: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", str(tmp_path / "agent.py")], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def test_gates_inside_one_use_share_one_ray_connection_closed_at_its_end(tmp_path, cluster):
    from aevolve import gate
    from aevolve._gate.ray_executor import use

    g = sample(tmp_path)
    with use("ray", cluster.address):  # as an `evolve` loop does
        first = gate(g.repo, "evolve/x", use_cache=False, write_note=False)
        assert ray.is_initialized()  # kept for the next gate: its workers are already started
        second = gate(g.repo, "evolve/x", use_cache=False, write_note=False)
    assert not ray.is_initialized()
    assert comparable(first) == comparable(second)
