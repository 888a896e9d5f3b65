"""The gate fails closed and judges exactly one transition (issue 8).

What cannot be judged is an error and writes nothing; every verdict names its
baseline, tree, exam and kind of change; a runner cannot poison the copy of
main that later gates read; secrets never reach a note.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from aevolve._errors import AmbiguousRef
from aevolve._gate.run import gate
from aevolve._git.notes import read_gate_report
from aevolve._git.repo import NOTES_REF
from aevolve._promote.promote import NotGated, promote
from aevolve.cli import main

from conftest import admissible, git, isolated_git_env, run_cli, verdict_for
from gate_support import AGENT, GateRepo, agent_argv, cases_yaml, config_yaml, facts

# Extra behaviours of the test agent, chosen by its answer or by the environment:
# SLOWONCE:<s> sleeps only on its first run (a marker beside the runner log, outside
# the state dir); LEAK prints OPENAI_API_KEY on stdout and stderr (LEAK-ERROR then
# exits 3); with AEVOLVE_TEST_TAMPER_TREE set to a tree id, the run of case `a` on
# that tree appends a poisoned record to its state dir's memory/facts.jsonl.
TAMPER = textwrap.dedent('''
    if os.path.basename(os.environ["AEVOLVE_STATE_DIR"]) == os.environ.get("AEVOLVE_TEST_TAMPER_TREE") \\
            and os.environ["AEVOLVE_CASE_ID"] == "a":
        poisoned = os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "facts.jsonl")
        os.chmod(poisoned, 0o644)
        with open(poisoned, "a") as fh:
            fh.write(json.dumps({"id": "a", "content": "poisoned"}) + "\\n")
''')
EXTRA = textwrap.dedent('''
    if answer.startswith("SLOWONCE:"):
        marker = log + ".slow-once"
        if not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(float(answer.split(":")[1]))
        answer = "right"
    if answer in ("LEAK", "LEAK-ERROR"):
        key = os.environ.get("OPENAI_API_KEY", "")
        sys.stderr.write("debug: using key " + key + "\\n")
        print("my key is " + key)
        sys.exit(3 if answer == "LEAK-ERROR" else 0)
''')
assert AGENT.count("question = json.load(sys.stdin)\n") == 1 and AGENT.count("print(answer)\n") == 1
TRUST_AGENT = (AGENT.replace("question = json.load(sys.stdin)\n", "question = json.load(sys.stdin)\n" + TAMPER)
               .replace("print(answer)\n", EXTRA + "print(answer)\n"))

ANSWERS = {"a": "right", "b": "right", "c": "wrong"}
FAKE_KEY = "sk-fake-4f9a1c7e2b8d0a3f6e5c"  # no provider pattern matches it: only its value can redact it


@dataclass
class Cli:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def aevolve(capsys):
    """Run the command line in-process on a GateRepo: its exit code and output."""
    def run(g: GateRepo, *args: str) -> Cli:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["-C", str(g.path), *map(str, args)])
        out = capsys.readouterr()
        return Cli(exited.value.code, out.out, out.err)

    return run


def make(tmp_path: Path, answers: dict | None = None, cases: str | None = None, **config) -> GateRepo:
    g = GateRepo(tmp_path, dict(answers or ANSWERS), cases or cases_yaml("a", "b", "c"), **config)
    (tmp_path / "agent.py").write_text(TRUST_AGENT)  # outside the state dir: the runner argv names it
    return g


def runner_argv(g: GateRepo) -> list[str]:
    return agent_argv(g.tmp / "agent.py", g.log)


def main_of(g: GateRepo) -> str:
    return g.repo.ref_target("refs/heads/main")


def move_main(g: GateRepo, files: dict[str, str]) -> str:
    """A person's commit on main with `files` (the exam later gates read), main moved to it."""
    old = main_of(g)
    new = g.branch("setup", files, evolver=False)
    g.repo.update_ref("refs/heads/main", new, old)
    return new


def parent_of(g: GateRepo, commit: str) -> str:
    return str(g.repo.resolve(commit).parents[0].id)


# -- 1, 2, 3: what cannot be judged is an error, and nothing is written -------------------------

def test_a_runner_that_cannot_start_is_an_error_that_writes_nothing_and_promotes_nothing(tmp_path, aevolve):
    g = make(tmp_path)
    main_before = move_main(g, {"aevolve.yaml": config_yaml(["definitely-not-a-command-xyz"])})
    cand = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    result = aevolve(g, "gate", "evolve/fix-c")
    assert result.code == 1
    assert "definitely-not-a-command-xyz" in result.err and "cannot be started" in result.err
    assert read_gate_report(g.repo, cand) is None
    promoted = aevolve(g, "gate", "evolve/fix-c", "--promote")
    assert promoted.code == 1 and "definitely-not-a-command-xyz" in promoted.err
    assert main_of(g) == main_before and read_gate_report(g.repo, cand) is None


def test_an_llm_rubric_without_a_key_cannot_be_evaluated_and_writes_no_note(tmp_path, aevolve, monkeypatch):
    g = make(tmp_path)
    monkeypatch.delenv("AEVOLVE_TEST_NO_SUCH_KEY", raising=False)
    config = config_yaml(runner_argv(g)) + "evolver:\n  openai:\n    api_key_env: AEVOLVE_TEST_NO_SUCH_KEY\n"
    rubric = "- id: a\n  input: {q: a}\n  assert:\n    - {type: llm-rubric, value: The answer is right}\n"
    main_before = move_main(g, {"aevolve.yaml": config, "evals/suite.yaml": rubric})
    cand = g.answers_branch("evolve/x", a="right", b="right", c="right")
    result = aevolve(g, "gate", "evolve/x")
    assert result.code == 1
    assert "cannot be evaluated" in result.err and "AEVOLVE_TEST_NO_SUCH_KEY" in result.err
    assert read_gate_report(g.repo, cand) is None and main_of(g) == main_before


def test_a_python_check_whose_file_is_missing_cannot_be_evaluated_and_writes_no_note(tmp_path, aevolve):
    g = make(tmp_path)
    check = "- id: a\n  input: {q: a}\n  assert:\n    - {type: python, value: 'evals/missing.py:check'}\n"
    main_before = move_main(g, {"evals/suite.yaml": check})
    cand = g.answers_branch("evolve/x", a="right", b="right", c="right")
    result = aevolve(g, "gate", "evolve/x")
    assert result.code == 1
    assert "cannot be evaluated" in result.err and "evals/missing.py" in result.err
    assert read_gate_report(g.repo, cand) is None and main_of(g) == main_before


def test_cases_matching_nothing_are_an_error_not_an_acceptance(tmp_path, aevolve):
    g = make(tmp_path)
    main_before = move_main(g, {"aevolve.yaml": config_yaml(runner_argv(g)) + "  cases: 'evals/none/*.yaml'\n"})
    cand = g.answers_branch("evolve/x", a="right", b="right", c="right")
    result = aevolve(g, "gate", "evolve/x")
    assert result.code == 1 and "no case matches" in result.err
    assert read_gate_report(g.repo, cand) is None and main_of(g) == main_before
    assert g.runs() == 0


def test_allow_empty_lets_an_exam_without_cases_accept(tmp_path, aevolve):
    g = make(tmp_path)
    move_main(g, {"aevolve.yaml": config_yaml(runner_argv(g)) + "  cases: 'evals/none/*.yaml'\n"
                                  "  allow_empty: true\n"})
    cand = g.answers_branch("evolve/x", a="right", b="right", c="right")
    result = aevolve(g, "gate", "evolve/x", "--json")
    assert result.code == 0, result.err
    assert result.json()["decision"] == "accept" and result.json()["cases"] == []
    assert admissible(g.repo, cand)


# -- 4: runner errors ---------------------------------------------------------------------------

def test_a_candidate_whose_every_run_errors_is_an_error_not_a_verdict(tmp_path, aevolve):
    g = make(tmp_path, {"a": "right", "b": "right"}, cases_yaml("a", "b"))
    main_before = main_of(g)
    cand = g.answers_branch("evolve/crash", a="CRASH", b="CRASH")
    result = aevolve(g, "gate", "evolve/crash", "--json")
    assert result.code == 1
    data = result.json()
    assert data["decision"] == "error"
    assert "every run on the candidate errored" in data["reasons"][0]
    assert {(e["case"], e["side"], e["kind"]) for e in data["errors"]} == {("a", "candidate", "exit"),
                                                                          ("b", "candidate", "exit")}
    assert not admissible(g.repo, cand) and main_of(g) == main_before


def test_a_candidate_erroring_where_the_baseline_passed_is_a_regression(tmp_path, aevolve):
    g = make(tmp_path, {"a": "right", "b": "right"}, cases_yaml("a", "b"))
    main_before = main_of(g)
    cand = g.answers_branch("evolve/crash-a", a="CRASH", b="right")
    result = aevolve(g, "gate", "evolve/crash-a", "--json")
    assert result.code == 100
    data = result.json()
    assert data["decision"] == "reject" and data["regressions"] == ["a"]
    assert not admissible(g.repo, cand) and main_of(g) == main_before


def test_cases_erroring_on_both_sides_are_an_error_by_default(tmp_path, aevolve):
    g = make(tmp_path, {"a": "CRASH", "b": "CRASH", "c": "right"}, cases_yaml("a", "b", "c"))
    main_before = main_of(g)
    cand = g.answers_branch("evolve/x", a="CRASH", b="CRASH", c="right", d="new")
    result = aevolve(g, "gate", "evolve/x", "--json")
    assert result.code == 1
    data = result.json()
    assert data["decision"] == "error"
    assert "2 case(s) errored on the candidate without a passing baseline" in data["reasons"][0]
    assert "max_errors allows 0" in data["reasons"][0]
    assert not admissible(g.repo, cand) and main_of(g) == main_before


def test_max_errors_lets_cases_erroring_on_both_sides_be_judged(tmp_path, aevolve):
    g = make(tmp_path, {"a": "CRASH", "b": "CRASH", "c": "right"}, cases_yaml("a", "b", "c"),
             policy="max_errors: 2")
    main_before = main_of(g)
    cand = g.answers_branch("evolve/x", a="CRASH", b="CRASH", c="right", d="new")
    result = aevolve(g, "gate", "evolve/x", "--json")
    assert result.code == 0, result.out
    assert result.json()["decision"] == "accept" and result.json()["regressions"] == []
    assert admissible(g.repo, cand) and main_of(g) == main_before  # gating alone never moves main


# -- 5, 6: nothing new to say, nothing written --------------------------------------------------

def test_a_commit_already_in_main_is_never_gated_again(tmp_path, aevolve):
    g = make(tmp_path)
    older = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    promote(g.repo, "evolve/fix-c")
    tip = g.branch("evolve/style", {"prompts/style.md": "Be brief.\n"})
    promote(g.repo, "evolve/style")
    assert main_of(g) == tip and admissible(g.repo, older) and admissible(g.repo, tip)
    notes = {sha: g.repo.read_note(sha) for sha in (older, tip)}
    notes_ref = g.repo.ref_target(NOTES_REF)
    for name in ("main", "HEAD", older):
        result = aevolve(g, "gate", name)
        assert result.code == 1, name
        assert "already in main; nothing to gate" in result.err
    assert {sha: g.repo.read_note(sha) for sha in (older, tip)} == notes
    assert g.repo.ref_target(NOTES_REF) == notes_ref and main_of(g) == tip
    assert admissible(g.repo, older) and admissible(g.repo, tip)


def test_gate_promote_of_a_commit_already_in_main_has_nothing_to_do(tmp_path, aevolve):
    g = make(tmp_path)
    tip = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    promote(g.repo, "evolve/fix-c")
    notes_ref = g.repo.ref_target(NOTES_REF)
    result = aevolve(g, "gate", "evolve/fix-c", "--promote")  # as `promote` says: exit 0, nothing moves
    assert result.code == 0, result.err
    assert main_of(g) == tip and g.repo.ref_target(NOTES_REF) == notes_ref


def test_regating_an_unchanged_candidate_leaves_the_notes_ref_where_it_was(tmp_path):
    g = make(tmp_path)
    cand = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    first = gate(g.repo, cand)
    notes_ref = g.repo.ref_target(NOTES_REF)
    note = g.repo.read_note(cand)
    again = gate(g.repo, cand)
    assert first.decision == again.decision == "accept"
    assert again.timings["runs_cached"] == 6  # judged again (from the cache), to the same verdict
    assert g.repo.ref_target(NOTES_REF) == notes_ref and g.repo.read_note(cand) == note


# -- 7, 8: a verdict is about one transition -------------------------------------------------------

@pytest.mark.parametrize("evolver, edits, change", [
    pytest.param(True, {"memory/facts.jsonl": facts(a="right", b="right", c="right")}, "evolver", id="evolver"),
    pytest.param(False, {"memory/facts.jsonl": facts(a="right", b="right", c="right")}, "manual", id="manual"),
    pytest.param(False, {"evals/suite.yaml": cases_yaml("a", "b")}, "maintainer", id="maintainer-exam"),
])
def test_every_report_names_its_transition_exam_and_kind_of_change(tmp_path, evolver, edits, change):
    g = make(tmp_path)
    cand = g.branch("evolve/x", edits, evolver=evolver)
    gate(g.repo, cand)
    note = read_gate_report(g.repo, cand)
    expected = verdict_for(g.repo, cand)  # baseline = parent, its tree, the parent's exam digest
    assert note["baseline"] == expected["baseline"] == main_of(g)
    assert note["candidate_tree"] == expected["candidate_tree"] == str(g.repo.resolve(cand).tree.id)
    assert note["exam_digest"] == expected["exam_digest"]
    assert note["change"] == change


def test_a_two_commit_branch_gets_one_verdict_per_transition_and_then_promotes(tmp_path):
    g = make(tmp_path)
    main_before = main_of(g)
    first = g.answers_branch("evolve/two-1", a="right", b="right", c="right")
    second = g.branch("evolve/two", {"prompts/style.md": "Be brief.\n"}, base=first)
    report = gate(g.repo, "evolve/two")
    assert report.decision == "accept" and report.baseline == first
    notes = {sha: read_gate_report(g.repo, sha) for sha in (first, second)}
    assert notes[first]["baseline"] == main_before and notes[second]["baseline"] == first
    assert main_of(g) == main_before  # gating alone never moves main
    promote(g.repo, "evolve/two", regate=False)
    assert main_of(g) == second


def test_a_note_on_only_the_tip_of_a_two_commit_branch_does_not_promote(tmp_path):
    g = make(tmp_path)
    main_before = main_of(g)
    first = g.answers_branch("evolve/two-1", a="right", b="right", c="right")
    second = g.branch("evolve/two", {"prompts/style.md": "Be brief.\n"}, base=first)
    assert gate(g.repo, second, base=first).decision == "accept"  # judges first -> second only
    assert read_gate_report(g.repo, first) is None
    with pytest.raises(NotGated, match=first[:12]):
        promote(g.repo, "evolve/two", regate=False)
    assert main_of(g) == main_before


# -- 9: time-dependent cases ----------------------------------------------------------------------

LATENCY_CASES = ("- id: a\n  input: {q: a}\n  assert:\n    - {type: equals, value: right}\n"
                 "    - {type: latency, threshold: 1000}\n" + cases_yaml("b"))


def test_a_slow_latency_run_is_remeasured_and_not_a_regression_when_it_passes_again(tmp_path):
    g = make(tmp_path, {"a": "right", "b": "right"}, LATENCY_CASES)
    cand = g.answers_branch("evolve/x", a="SLOWONCE:1.1", b="right")  # just past the 1000 ms threshold
    report = gate(g.repo, cand)
    assert report.decision == "accept" and report.regressions == []
    case_a = next(c for c in report.cases if c["id"] == "a")
    assert "not confirmed by a second measurement" in case_a["remeasured"]
    assert report.timings["runs_started"] == 6  # 2 cases x 2 sides, then case a again on both sides
    assert admissible(g.repo, cand)


def test_latency_runs_are_never_served_from_the_cache(tmp_path):
    g = make(tmp_path, {"a": "right", "b": "right"}, LATENCY_CASES)
    cand = g.answers_branch("evolve/x", a="right", b="right", c="new")
    assert gate(g.repo, cand).timings["runs_started"] == 4
    again = gate(g.repo, cand)
    assert (again.timings["runs_started"], again.timings["runs_cached"]) == (2, 2)
    cached = {c["id"]: c["candidate"]["cached"] and c["baseline"]["cached"] for c in again.cases}
    assert cached == {"a": False, "b": True}


# -- 10: what an evolver may not touch ----------------------------------------------------------------

WIDER_MANIFEST = ("name: t\nversion: 0.1.0\ncontract_version: '1.0'\n"
                  "evolvable_layers: [prompts, skills, tools, memory, agent]\n")
OUTSIDE_THE_LAYERS = [
    pytest.param("agent/run_case.py", "print('right')\n", id="agent-code"),
    pytest.param("manifest.yaml", WIDER_MANIFEST, id="widened-layers"),
    pytest.param("prompts/.gitattributes", "*.md filter=evil\n", id="gitattributes"),
]


@pytest.mark.parametrize("path, text", OUTSIDE_THE_LAYERS)
def test_an_evolver_commit_outside_the_layers_is_rejected_before_any_run(tmp_path, aevolve, path, text):
    g = make(tmp_path)
    main_before = main_of(g)
    cand = g.branch("evolve/x", {path: text}, evolver=True)
    result = aevolve(g, "gate", "evolve/x", "--json")
    assert result.code == 100
    data = result.json()
    assert data["change"] == "evolver" and path in data["static"][0]
    assert g.runs() == 0 and data["timings"]["runs_started"] == 0
    assert not admissible(g.repo, cand) and main_of(g) == main_before


@pytest.mark.parametrize("path, text", OUTSIDE_THE_LAYERS)
def test_a_persons_commit_outside_the_layers_is_run_but_needs_approval(tmp_path, aevolve, path, text):
    g = make(tmp_path)
    main_before = main_of(g)
    cand = g.branch("evolve/x", {path: text}, evolver=False)
    result = aevolve(g, "gate", "evolve/x", "--json")
    assert result.code == 100
    data = result.json()
    assert data["change"] == "maintainer" and data["static"] == []
    assert any("aevolve approve" in r for r in data["reasons"])
    assert g.runs() > 0 and data["regressions"] == []
    assert not admissible(g.repo, cand) and main_of(g) == main_before


# -- 11: a runner cannot poison the copy of main ------------------------------------------------------

def test_a_run_writing_into_its_state_dir_is_tampered_and_main_is_rebuilt_for_the_next_gate(
        tmp_path, aevolve, monkeypatch):
    g = make(tmp_path)
    main_tree = str(g.repo.resolve("main").tree.id)
    monkeypatch.setenv("AEVOLVE_TEST_TAMPER_TREE", main_tree)
    g.answers_branch("evolve/one", a="right", b="right", c="right")
    report = gate(g.repo, "evolve/one")
    assert any((e["case"], e["side"], e["kind"]) == ("a", "baseline", "tampered") for e in report.errors)
    assert report.decision == "error" and "wrote into their read-only state dir" in report.reasons[0]
    monkeypatch.delenv("AEVOLVE_TEST_TAMPER_TREE")

    g.answers_branch("evolve/two", a="right", b="right", c="right", d="new")
    result = aevolve(g, "gate", "evolve/two", "--no-cache", "--json")
    assert result.code == 0, result.out
    data = result.json()
    assert data["errors"] == []
    assert all(c["baseline"]["passes"] == c["baseline"]["runs"] for c in data["cases"] if c["id"] != "c")
    copy = g.repo.aevolve_dir / "trees" / main_tree / "memory" / "facts.jsonl"
    assert copy.read_bytes() == g.repo.read(g.repo.tree(main_tree), "memory/facts.jsonl")


# -- 12: collecting shards ---------------------------------------------------------------------------

def make_shards(tmp_path: Path) -> tuple[GateRepo, str, list[Path]]:
    """A 4-case repo, a candidate and its two genuine shard reports (files)."""
    g = make(tmp_path, {i: "right" for i in "abcd"}, cases_yaml("a", "b", "c", "d"))
    cand = g.answers_branch("evolve/x", a="right", b="right", c="right", d="right", e="new")
    files = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.json"
        result = run_cli("-C", g.path, "gate", "evolve/x", "--shard", f"{k}/2", "--output", out)
        assert result.returncode == 0, result.stderr
        files.append(out)
    assert read_gate_report(g.repo, cand) is None  # shards write no note
    return g, cand, files


@pytest.fixture
def shards(tmp_path):
    return make_shards(tmp_path)


@pytest.fixture(scope="module")
def refused_shards(tmp_path_factory):
    """`shards` built once for the tests whose collect is refused: a refusal writes nothing."""
    with isolated_git_env(tmp_path_factory):
        return make_shards(tmp_path_factory.mktemp("shards"))


def forge(tmp_path: Path, source: Path, name: str, **changes) -> Path:
    data = {**json.loads(source.read_text()), **changes}
    out = tmp_path / name
    out.write_text(json.dumps(data))
    return out


def test_collect_refuses_a_forged_shard_report_claiming_no_cases(tmp_path, aevolve, refused_shards):
    g, cand, (one, two) = refused_shards
    forged = forge(tmp_path, one, "forged.json", cases=[])
    result = aevolve(g, "gate", "--collect", forged, two)
    assert result.code == 3 and "do not cover exactly the exam's cases" in result.err
    assert read_gate_report(g.repo, cand) is None


def test_collect_refuses_shards_made_under_different_exams(tmp_path, aevolve, refused_shards):
    g, cand, (one, two) = refused_shards
    other = forge(tmp_path, two, "other.json", exam_digest="sha256:" + "0" * 64)
    result = aevolve(g, "gate", "--collect", one, other)
    assert result.code == 3 and "exam_digest" in result.err
    assert read_gate_report(g.repo, cand) is None


def test_collect_refuses_shards_made_under_an_exam_the_baseline_does_not_hold(tmp_path, aevolve, refused_shards):
    g, cand, (one, two) = refused_shards
    digest = "sha256:" + "0" * 64
    result = aevolve(g, "gate", "--collect", forge(tmp_path, one, "o1.json", exam_digest=digest),
                     forge(tmp_path, two, "o2.json", exam_digest=digest))
    assert result.code == 3 and "gate the shards again" in result.err
    assert read_gate_report(g.repo, cand) is None


def test_collect_of_genuine_shards_notes_an_admissible_verdict(aevolve, shards):
    g, cand, files = shards
    main_before = main_of(g)
    result = aevolve(g, "gate", "--collect", *files, "--json")
    assert result.code == 0, result.err
    assert result.json()["decision"] == "accept" and len(result.json()["cases"]) == 4
    assert admissible(g.repo, cand) and main_of(g) == main_before


# -- 13: gate --promote on a branch behind main -------------------------------------------------------

def behind_main(g: GateRepo) -> tuple[str, str]:
    """evolve/fix-c made on main, then main moved on by a promoted change to another file."""
    fix = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    g.branch("evolve/style", {"prompts/style.md": "Be brief.\n"})
    return fix, promote(g.repo, "evolve/style").new


def test_gate_promote_rebases_a_branch_behind_main_gates_the_rebase_and_moves_both(tmp_path, aevolve):
    g = make(tmp_path)
    fix, moved = behind_main(g)
    result = aevolve(g, "gate", "evolve/fix-c", "--promote", "--json")
    assert result.code == 0, result.err
    new_main = main_of(g)
    assert new_main not in (fix, moved) and parent_of(g, new_main) == moved
    assert g.repo.ref_target("refs/heads/evolve/fix-c") == new_main
    assert result.json()["promoted"]["rebased"] is True and result.json()["baseline"] == moved
    tree = g.repo.tree(new_main)
    assert g.repo.read(tree, "prompts/style.md") == b"Be brief.\n"
    assert g.repo.read(tree, "memory/facts.jsonl") == facts(a="right", b="right", c="right").encode()
    assert admissible(g.repo, new_main)
    assert read_gate_report(g.repo, fix) is None  # the verdict is about the rebased commit only


def test_gate_promote_of_a_branch_behind_main_writes_the_output_file(tmp_path, aevolve):
    g = make(tmp_path)
    _fix, moved = behind_main(g)
    out = tmp_path / "report.json"
    assert aevolve(g, "gate", "evolve/fix-c", "--promote", "--output", out).code == 0
    written = json.loads(out.read_text())
    assert written["candidate"] == main_of(g) and written["baseline"] == moved
    assert written["decision"] == "accept"


# -- 14: `main` means the branch -------------------------------------------------------------------

def test_a_tag_named_main_does_not_change_what_the_gate_judges_against(tmp_path, aevolve):
    g = make(tmp_path)
    main_sha = main_of(g)
    elsewhere = g.branch("side", {"prompts/side.md": "side\n"})
    cand = g.answers_branch("evolve/fix-c", a="right", b="right", c="right")
    git(g.path, "tag", "main", elsewhere)
    result = aevolve(g, "gate", "evolve/fix-c", "--json")
    assert result.code == 0, result.err
    assert result.json()["baseline"] == main_sha == parent_of(g, cand)
    assert main_of(g) == main_sha and admissible(g.repo, cand)
    with pytest.raises(AmbiguousRef) as ambiguous:
        g.repo.resolve("main")
    assert ambiguous.value.exit_code == 2 and "refs/tags/main" in str(ambiguous.value)


# -- 15: secrets never reach a note ------------------------------------------------------------------

def test_a_key_the_runner_prints_is_redacted_from_the_note(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    g = make(tmp_path)
    cand = g.answers_branch("evolve/leak", a="LEAK", b="LEAK-ERROR", c="right")
    report = gate(g.repo, cand)
    assert report.decision == "reject" and sorted(report.regressions) == ["a", "b"]
    note = g.repo.read_note(cand).decode()
    assert FAKE_KEY not in note
    assert "my key is [REDACTED]" in note  # stdout, in the failure of case a
    assert "debug: using key [REDACTED]" in note  # stderr, in the runner error of case b


def test_a_key_the_runner_prints_is_redacted_from_what_gate_prints_and_writes(tmp_path, monkeypatch, aevolve):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    g = make(tmp_path)
    g.answers_branch("evolve/leak", a="LEAK", b="LEAK-ERROR", c="right")
    out = tmp_path / "report.json"
    result = aevolve(g, "gate", "evolve/leak", "--output", out)
    assert result.code == 100
    assert FAKE_KEY not in result.out and FAKE_KEY not in out.read_text()
    assert "[REDACTED]" in out.read_text()
