"""Sharding: K/N slices give partial reports; --collect merges them into the same decision."""

from __future__ import annotations

import json

import pytest

from aevolve._errors import InvalidInput
from aevolve._gate.run import collect, gate
from aevolve._git.notes import read_gate_report

from conftest import run_cli
from gate_support import GateRepo, cases_yaml

IDS = [f"c{i}" for i in range(8)]


@pytest.fixture
def repo(tmp_path):
    g = GateRepo(tmp_path, {i: "right" for i in IDS[:6]}, cases_yaml(*IDS), jobs=4)
    g.answers_branch("evolve/x", **{i: "right" for i in IDS[1:8]})  # c0 regresses, c6 c7 improve
    return g


def test_shards_and_collect_equal_the_unsharded_decision(repo, tmp_path):
    files = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}.json"
        proc = run_cli("gate", "evolve/x", "--shard", f"{k}/3", "--output", out, "--json", cwd=repo.path)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["decision"] == "partial"
        files.append(out)
    candidate = json.loads(files[0].read_text())["candidate"]
    assert read_gate_report(repo.repo, candidate) is None  # shards write no note
    proc = run_cli("gate", "--collect", *files, "--json", cwd=repo.path)
    assert proc.returncode == 100, proc.stderr
    merged = json.loads(proc.stdout)
    whole = gate(repo.repo, "evolve/x", write_note=False)
    assert merged["decision"] == whole.decision == "reject"
    assert merged["regressions"] == whole.regressions == ["c0"]
    assert merged["improvements"] == sorted(whole.improvements) == ["c6", "c7"]
    assert [(c["id"], c["verdict"]) for c in merged["cases"]] == [(c["id"], c["verdict"]) for c in whole.cases]
    assert read_gate_report(repo.repo, candidate)["decision"] == "reject"  # collect wrote the note


def test_collect_refuses_a_missing_shard(repo):
    parts = [gate(repo.repo, "evolve/x", shard=(k, 3)).to_dict() for k in (1, 3)]
    with pytest.raises(InvalidInput, match=r"missing shard\(s\) 2/3"):
        collect(repo.repo, parts)


def test_collect_refuses_duplicate_and_foreign_shards(repo):
    one = gate(repo.repo, "evolve/x", shard=(1, 2)).to_dict()
    with pytest.raises(InvalidInput, match="given twice"):
        collect(repo.repo, [one, one])
    other = repo.answers_branch("evolve/y", c0="right")
    foreign = gate(repo.repo, other, shard=(2, 2)).to_dict()
    with pytest.raises(InvalidInput, match="differs from report 1 in 'candidate'"):
        collect(repo.repo, [one, foreign])


def test_collect_refuses_a_complete_report(repo):
    full = gate(repo.repo, "evolve/x", write_note=False).to_dict()
    with pytest.raises(InvalidInput, match="not a shard report"):
        collect(repo.repo, [full])


def test_collect_of_unreadable_file_exits_3(repo, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run_cli("gate", "--collect", bad, cwd=repo.path)
    assert proc.returncode == 3 and "bad.json:1: not a JSON gate report" in proc.stderr


# -- balanced by recorded durations ---------------------------------------------------------


def _cases(*ids: str, repeat: int = 1):
    from aevolve._gate.cases import Case

    return [Case(id=i, input={"q": i}, asserts=[], repeat=repeat, raw={"id": i}) for i in ids]


def test_the_plan_deals_the_longest_cases_first_to_the_least_loaded_shard():
    from aevolve._gate.shards import plan

    cases = _cases("slow", "mid", "a", "b", "c")
    ms = {c.hash: t for c, t in zip(cases, (900.0, 500.0, 200.0, 200.0, 100.0), strict=True)}
    split = plan(cases, 2, ms)
    assert split.assigned == {"slow": 1, "mid": 2, "a": 2, "b": 2, "c": 1}  # loads 1000 and 900


def test_the_plan_without_recorded_durations_balances_by_count_and_is_stable():
    from aevolve._gate.shards import plan

    cases = _cases(*IDS)
    split = plan(cases, 3, {})
    assert sorted(list(split.assigned.values()).count(k) for k in (1, 2, 3)) == [2, 3, 3]
    assert plan(list(reversed(cases)), 3, {}) == split  # the order cases are listed in does not matter


def test_cases_never_run_cost_the_mean_of_the_recorded_ones():
    from aevolve._gate.shards import plan

    cases = _cases("known", "new")
    assert plan(cases, 2, {cases[0].hash: 50.0}).assigned == plan(cases, 2, {cases[0].hash: 5000.0}).assigned


def _record(repo, tree: str, ms_by_id: dict[str, float]) -> None:
    """Runs notes on `tree` saying how long each case ran (as another clone's gate would)."""
    from aevolve._gate.shared_runs import RUNS_REF, dump
    from aevolve._gate.suite import Exam
    from aevolve._state.model import State

    exam = Exam.of(State.from_tree(repo.repo, "main"))
    runs = [{"case": c.hash, "runner": exam.runner.hash, "rep": 0, "exam": "sha256:other",
             "result": {"status": "ok", "output": "x", "latency_ms": ms_by_id.get(c.id, 10.0)}} for c in exam.cases]
    repo.repo.update_note(tree, lambda _old: dump([{"runs": runs}]), RUNS_REF)


def test_a_shard_runs_the_cases_the_recorded_durations_assign_it(repo):
    tree = str(repo.repo.resolve("main").tree.id)
    _record(repo, tree, {"c3": 5000.0})  # one case takes as long as all the others together, many times
    one = gate(repo.repo, "evolve/x", shard=(1, 2))
    two = gate(repo.repo, "evolve/x", shard=(2, 2))
    assert [c["id"] for c in one.cases] == ["c3"]
    assert sorted(c["id"] for c in two.cases) == sorted(set(IDS) - {"c3"})
    assert one.shard["plan"] == two.shard["plan"]


def test_collect_refuses_shards_planned_from_different_durations(repo):
    tree = str(repo.repo.resolve("main").tree.id)
    one = gate(repo.repo, "evolve/x", shard=(1, 2)).to_dict()
    _record(repo, tree, {"c3": 5000.0})
    two = gate(repo.repo, "evolve/x", shard=(2, 2)).to_dict()
    with pytest.raises(InvalidInput, match="split the cases differently"):
        collect(repo.repo, [one, two])


def test_collect_orders_cases_and_regressions_as_the_unsharded_gate(tmp_path):
    ids = ["zeta", "alpha", "mike", "bravo", "yankee", "charlie"]  # file order is not id order
    g = GateRepo(tmp_path, {i: "right" for i in ids}, cases_yaml(*ids), jobs=4)
    g.answers_branch("evolve/x", **{i: "right" for i in ("alpha", "mike", "charlie")})
    parts = [gate(g.repo, "evolve/x", shard=(k, 3)).to_dict() for k in (1, 2, 3)]
    merged = collect(g.repo, parts, write_note=False)
    whole = gate(g.repo, "evolve/x", write_note=False)
    assert [c["id"] for c in merged.cases] == [c["id"] for c in whole.cases] == ids
    assert merged.regressions == whole.regressions == ["zeta", "bravo", "yankee"]
    assert merged.reasons == whole.reasons
