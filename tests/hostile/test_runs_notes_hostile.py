"""Hostile runs notes (refs/notes/aevolve-runs come from any clone): never a crash, never a forged run."""

from __future__ import annotations

import json

from test_signing import make_key

from aevolve._gate.run import gate
from aevolve._gate.shared_runs import RUNS_REF, dump, lookup, parse

from conftest import git
from gate_support import GateRepo, cases_yaml


def _repo(tmp_path):
    g = GateRepo(tmp_path, {"a": "right"}, cases_yaml("a"))
    g.answers_branch("evolve/x", a="right", extra="x")
    return g


def _forge(g, tree: str, data: bytes) -> None:
    g.repo.update_note(tree, lambda _old: data, RUNS_REF)


def _key_of(g, report) -> tuple:
    from aevolve._gate.suite import Exam
    from aevolve._state.model import State

    exam = Exam.of(State.from_tree(g.repo, report.baseline))
    return (report.baseline_tree, exam.cases[0].hash, exam.runner.hash, 0), exam.digest


def test_garbage_and_oversized_runs_notes_are_ignored(tmp_path):
    g = _repo(tmp_path)
    tree = str(g.repo.resolve("main").tree.id)
    for data in (b"\xff\xfe not json", b"[1, 2]", b'{"batches": "no"}', b"[" * 10000, b'{"batches": [NaN]}'):
        _forge(g, tree, data)
        assert parse(g.repo.note_at(g.repo.ref_target(RUNS_REF), tree)) == []
    report = gate(g.repo, "evolve/x", write_note=False)
    assert report.decision == "accept" and report.timings["runs_started"] == 2


def test_a_forged_result_with_wrong_types_is_not_reused(tmp_path):
    g = _repo(tmp_path)
    report = gate(g.repo, "evolve/x", write_note=False, use_cache=False)
    (key, digest) = _key_of(g, report)
    bad = {"status": "ok", "output": ["right"], "latency_ms": "fast"}
    run = {"case": key[1], "runner": key[2], "rep": 0, "exam": digest, "result": bad}
    _forge(g, key[0], dump([{"runs": [run]}]))
    assert lookup(g.repo, {key: digest}) == {}


def test_a_signed_batch_changed_after_signing_is_not_reused(tmp_path):
    g = _repo(tmp_path)
    keys = tmp_path / "keys"
    make_key(keys, "ci")
    allowed = tmp_path / "allowed"
    allowed.write_text(f"ci@example.com {(keys / 'ci.pub').read_text()}")
    git(g.path, "config", "aevolve.signingKey", str(keys / "ci"))
    git(g.path, "config", "user.email", "ci@example.com")
    git(g.path, "config", "aevolve.allowedSigners", str(allowed))
    report = gate(g.repo, "evolve/x", use_cache=False)
    key, digest = _key_of(g, report)
    assert key in lookup(g.repo, {key: digest})  # signed by a listed key: reused
    note = json.loads(g.repo.note_at(g.repo.ref_target(RUNS_REF), key[0]))
    note["batches"][0]["runs"][0]["result"]["output"] = "forged"
    _forge(g, key[0], dump(note["batches"]))
    assert lookup(g.repo, {key: digest}) == {}
