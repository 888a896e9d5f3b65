"""`aevolve cases propose`: failed observations with the right answer become eval cases (an exam change)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from aevolve._demo import run_demo
from aevolve._errors import InvalidInput, UsageError
from aevolve._evolve.cases import propose_cases
from aevolve._gate.cases import parse_case_file
from aevolve._gate.run import gate
from aevolve._git.repo import Repo
from aevolve._state.observations import observe

from conftest import git, isolated_git_env


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory) -> Path:
    with isolated_git_env(tmp_path_factory):
        root = tmp_path_factory.mktemp("cases") / "demo"
        run_demo(root, echo=lambda line: None)
    return root


@pytest.fixture
def demo(demo_template, tmp_path) -> Repo:
    root = tmp_path / "demo"
    shutil.copytree(demo_template, root, symlinks=True)
    return Repo.open(root)


def test_failed_observations_with_an_answer_become_valid_cases(demo):
    result = propose_cases(demo, input_key="question")
    assert [c["id"] for c in result.cases] == ["field-obs-1001", "field-obs-1002", "field-obs-1004",
                                               "field-obs-2001"]
    text = result.path.read_text()
    cases = parse_case_file(text, "evals/x.yaml")
    assert cases[0].input == {"question": "How long does standard shipping take to arrive?"}
    assert cases[0].asserts == [{"type": "icontains", "value": "Standard shipping takes 3-5 business days."}]
    assert "from-field" in cases[0].tags and result.path.parent == demo.workdir / "evals"


def test_from_turns_only_the_observations_named(demo):
    result = propose_cases(demo, observation_ids=["obs-1002"], output="evals/account.yaml")
    assert [c["id"] for c in result.cases] == ["field-obs-1002"]
    assert (demo.workdir / "evals/account.yaml").exists()


def test_an_observation_without_an_answer_or_guidance_teaches_no_case(demo):
    with pytest.raises(InvalidInput, match="obs-1003: it did not fail"):
        propose_cases(demo, observation_ids=["obs-1003"])


def test_guidance_without_an_answer_becomes_a_rubric(demo, tmp_path):
    source = tmp_path / "guided.jsonl"
    source.write_text(json.dumps({"id": "obs-5001", "task": "Tell me a joke", "output": "no",
                                  "feedback": {"success": False, "detail": "Be friendly and tell a short joke."},
                                  "ts": "2026-11-20T10:00:00Z"}) + "\n")
    observe(demo, [source])
    result = propose_cases(demo, observation_ids=["obs-5001"], output="evals/joke.yaml")
    assert result.cases[0]["assert"] == [{"type": "llm-rubric", "value": "Be friendly and tell a short joke."}]


def test_cases_main_already_has_are_not_proposed_again(demo):
    first = propose_cases(demo, input_key="question", output="evals/field.yaml")
    git(demo.workdir, "add", "evals/field.yaml")
    git(demo.workdir, "commit", "-qm", "exam: cases from the field")
    again = propose_cases(demo, input_key="question", output="evals/more.yaml")
    assert first.cases and again.cases == [] and not (demo.workdir / "evals/more.yaml").exists()
    assert any("already has case field-obs-1001" in s for s in again.skipped)


def test_an_existing_case_file_is_never_overwritten(demo):
    (demo.workdir / "evals/mine.yaml").write_text("[]\n")
    with pytest.raises(UsageError, match="exists"):
        propose_cases(demo, output="evals/mine.yaml")
    assert (demo.workdir / "evals/mine.yaml").read_text() == "[]\n"


def test_the_proposed_cases_are_an_exam_change_that_needs_approval(demo):
    propose_cases(demo, input_key="question", output="evals/field.yaml")
    root = demo.workdir
    git(root, "checkout", "-qb", "exam-from-field")
    git(root, "add", "evals/field.yaml")
    git(root, "commit", "-qm", "exam: cases from the field")
    report = gate(demo, "exam-from-field").to_dict()
    assert report["change"] == "maintainer" and report["decision"] == "reject"
    assert any("approval" in r for r in report["reasons"])


def test_the_command_writes_the_file_and_reports_json(demo, cli):
    proc = cli("cases", "propose", "--from", "obs-1001", "--input-key", "question", "--json", cwd=demo.workdir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["written"] and data["cases"] == ["field-obs-1001"]
    assert yaml.safe_load(Path(data["path"]).read_text())[0]["id"] == "field-obs-1001"
