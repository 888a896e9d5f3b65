"""Observations: validated, de-duplicated, stored on refs/aevolve/observations only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aevolve._errors import InvalidInput
from aevolve._git.repo import OBSERVATIONS_REF, Repo
from aevolve._state.observations import load_observations, observe

from conftest import git, run_cli


def obs(i, success=False, ts="2025-01-01T10:00:00Z", **extra):
    record = {"id": f"obs-{i}", "task": f"task {i}", "output": "answer",
              "feedback": {"success": success, "expected": f"right {i}"}, "ts": ts}
    record.update(extra)
    return record


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def checkout_snapshot(root):
    return (git(root, "status", "--porcelain"), (root / ".git" / "index").read_bytes(),
            git(root, "symbolic-ref", "HEAD"), git(root, "rev-parse", "main"))


def test_observe_stores_a_batch_on_the_observations_ref_only(state_repo, tmp_path):
    before = checkout_snapshot(state_repo)
    result = observe(state_repo, [jsonl(tmp_path / "o.jsonl", [obs(1), obs(2)])])
    assert (result.added, result.duplicates, result.ids) == (2, 0, ["obs-1", "obs-2"])
    files = git(state_repo, "ls-tree", "-r", "--name-only", OBSERVATIONS_REF).splitlines()
    assert len(files) == 1 and files[0].startswith("batches/") and files[0].endswith(".jsonl")
    assert checkout_snapshot(state_repo) == before


def test_observing_the_same_file_twice_adds_nothing(state_repo, tmp_path):
    source = jsonl(tmp_path / "o.jsonl", [obs(1), obs(2)])
    observe(state_repo, [source])
    tip = git(state_repo, "rev-parse", OBSERVATIONS_REF)
    again = observe(state_repo, [source])
    assert (again.added, again.duplicates, again.commit) == (0, 2, None)
    assert git(state_repo, "rev-parse", OBSERVATIONS_REF) == tip


def test_same_id_with_different_content_is_a_conflict_and_keeps_the_stored_one(state_repo, tmp_path):
    observe(state_repo, [jsonl(tmp_path / "a.jsonl", [obs(1)])])
    changed = obs(1, output="another answer")
    result = observe(state_repo, [jsonl(tmp_path / "b.jsonl", [changed, obs(2)])])
    assert result.conflicts == ["obs-1"] and result.ids == ["obs-2"]
    stored = {o["id"]: o for o in load_observations(state_repo)}
    assert stored["obs-1"]["output"] == "answer"


def test_a_broken_line_is_reported_with_file_and_line_and_nothing_is_ingested(state_repo, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(obs(1)) + "\n{not json\n")
    proc = run_cli("observe", bad, cwd=state_repo)
    assert proc.returncode == 3
    assert f"{bad}:2: broken JSON" in proc.stderr
    assert git(state_repo, "for-each-ref", OBSERVATIONS_REF) == ""


def test_a_schema_violation_names_line_and_json_pointer(state_repo, tmp_path):
    broken = obs(2)
    broken["feedback"]["success"] = "no"
    source = jsonl(tmp_path / "o.jsonl", [obs(1), broken])
    with pytest.raises(InvalidInput) as info:
        observe(state_repo, [source])
    assert f"{source}:2: /feedback/success: expected boolean" in str(info.value)
    assert Repo.open(state_repo).ref_target(OBSERVATIONS_REF) is None


def test_one_bad_file_among_several_ingests_nothing(state_repo, tmp_path):
    good = jsonl(tmp_path / "good.jsonl", [obs(1)])
    bad = jsonl(tmp_path / "bad.jsonl", [{"id": "x"}])
    proc = run_cli("observe", good, bad, cwd=state_repo)
    assert proc.returncode == 3 and "bad.jsonl:1" in proc.stderr and "is required" in proc.stderr
    assert load_observations(state_repo) == []


def test_observe_reads_stdin_and_lists_with_filters(state_repo):
    records = [obs(1, ts="2025-01-03T00:00:00Z"), obs(2, success=True, ts="2025-01-01T00:00:00Z"),
               obs(3, ts="2025-01-02T00:00:00Z")]
    proc = run_cli("observe", "-", "--json", cwd=state_repo, input="".join(json.dumps(r) + "\n" for r in records))
    assert proc.returncode == 0 and json.loads(proc.stdout)["added"] == 3
    listed = run_cli("observations", "--json", cwd=state_repo)
    assert [o["id"] for o in json.loads(listed.stdout)] == ["obs-2", "obs-3", "obs-1"]  # oldest first
    failed = run_cli("observations", "--failed", "--since", "2025-01-02", "--json", cwd=state_repo)
    assert [o["id"] for o in json.loads(failed.stdout)] == ["obs-3", "obs-1"]
    text = run_cli("observations", "--failed", cwd=state_repo)
    assert "obs-1" in text.stdout and "FAIL" in text.stdout and "obs-2" not in text.stdout


def test_an_invalid_since_date_is_a_usage_error(state_repo):
    proc = run_cli("observations", "--since", "last tuesday", cwd=state_repo)
    assert proc.returncode == 2 and "not a date" in proc.stderr


def test_concurrent_observe_processes_lose_nothing(state_repo, tmp_path):
    sources = [jsonl(tmp_path / f"o{k}.jsonl", [obs(f"{k}-{i}") for i in range(5)]) for k in range(4)]
    code = "import sys; import aevolve; aevolve.observe(sys.argv[1], [sys.argv[2]])"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(state_repo), str(s)]) for s in sources]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert len(load_observations(state_repo)) == 20
    assert subprocess.run(["git", "fsck", "--strict"], cwd=state_repo, capture_output=True).returncode == 0


# -- bounds: observe.max_bytes and observe.max_records of main's aevolve.yaml ------------


def set_limits(root, **limits):
    """Commit `observe.KEY: VALUE` for each limit into main's aevolve.yaml."""
    config = root / "aevolve.yaml"
    text = config.read_text()
    for key, value in limits.items():
        text = text.replace(f"  {key}: ", f"  {key}: {value}  # was ", 1)
    config.write_text(text)
    git(root, "commit", "-qam", "observe limits")


def test_more_records_than_max_records_is_refused_and_nothing_is_ingested(state_repo, tmp_path):
    set_limits(state_repo, max_records=3)
    source = jsonl(tmp_path / "o.jsonl", [obs(i) for i in range(5)])
    proc = run_cli("observe", source, cwd=state_repo)
    assert proc.returncode == 3
    assert f"{source}:4: more than 3 observations in one run (observe.max_records in aevolve.yaml)" in proc.stderr
    assert git(state_repo, "for-each-ref", OBSERVATIONS_REF) == ""


def test_max_records_counts_every_file_of_one_run(state_repo, tmp_path):
    set_limits(state_repo, max_records=3)
    first = jsonl(tmp_path / "a.jsonl", [obs(1), obs(2)])
    second = jsonl(tmp_path / "b.jsonl", [obs(3), obs(4)])
    proc = run_cli("observe", first, second, cwd=state_repo)
    assert proc.returncode == 3 and f"{second}:2: more than 3 observations" in proc.stderr
    assert load_observations(state_repo) == []


def test_input_larger_than_max_bytes_is_refused_and_nothing_is_ingested(state_repo, tmp_path):
    set_limits(state_repo, max_bytes=300)
    source = jsonl(tmp_path / "o.jsonl", [obs(i) for i in range(3)])  # ~150 bytes a line
    proc = run_cli("observe", source, cwd=state_repo)
    assert proc.returncode == 3
    assert f"{source}: the input is larger than 300 bytes (observe.max_bytes in aevolve.yaml)" in proc.stderr
    assert load_observations(state_repo) == []


def test_a_line_without_end_on_stdin_stops_at_max_bytes(state_repo):
    set_limits(state_repo, max_bytes=1000)
    proc = run_cli("observe", "-", cwd=state_repo, input="x" * 100_000)
    assert proc.returncode == 3 and "<stdin>: the input is larger than 1,000 bytes" in proc.stderr


def test_input_exactly_at_the_limits_is_accepted(state_repo, tmp_path):
    source = jsonl(tmp_path / "o.jsonl", [obs(1), obs(2)])
    set_limits(state_repo, max_bytes=source.stat().st_size, max_records=2)
    assert observe(state_repo, [source]).added == 2


def test_the_limits_are_mains_not_the_checkouts(state_repo, tmp_path):
    set_limits(state_repo, max_records=1)
    config = state_repo / "aevolve.yaml"
    config.write_text(config.read_text().replace("max_records: 1 ", "max_records: 1000 "))  # not committed
    proc = run_cli("observe", jsonl(tmp_path / "o.jsonl", [obs(1), obs(2)]), cwd=state_repo)
    assert proc.returncode == 3 and "more than 1 observations" in proc.stderr
