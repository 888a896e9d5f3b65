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
    assert [(c["id"], c["verdict"]) for c in merged["cases"]] == sorted((c["id"], c["verdict"]) for c in whole.cases)
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
