"""`aevolve validate`: schemas, Agent Skills rules, sources (ref, index, folder), output, cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aevolve._git.repo import Repo
from aevolve._state.model import State
from aevolve._state.validate import validate_state

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli, write

SKILL = "skills/refund-policy/SKILL.md"


def skill_doc(front: str, body: str = "# Refund policy\nReturns within 30 days.\n") -> str:
    return f"---\n{front}---\n\n{body}"


def problems_of(tmp_path: Path, changes: dict) -> tuple[list, list]:
    """(errors, warnings) of SAMPLE_STATE with `changes` applied, read as a plain folder."""
    files = {**SAMPLE_STATE, **changes}
    root = tmp_path / "folder"
    write(root, {k: v for k, v in files.items() if v is not None})
    report = validate_state(State.from_folder(root))
    return report.errors, report.warnings


def test_the_sample_state_is_valid(tmp_path):
    errors, warnings = problems_of(tmp_path, {})
    assert errors == [] and warnings == []


def test_cli_exits_0_for_a_valid_state(state_repo):
    proc = run_cli("validate", cwd=state_repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout and "0 errors" in proc.stdout


def test_cli_exits_1_and_prints_path_line_message_pointer(state_repo):
    write(state_repo, {"manifest.yaml": "name: support-agent\nevolvable_layers: prompts\n"})
    proc = run_cli("validate", cwd=state_repo)
    assert proc.returncode == 1
    assert "manifest.yaml:2: expected array, got string (/evolvable_layers)" in proc.stdout.splitlines()


def test_cli_exits_2_on_usage_errors(state_repo):
    assert run_cli("validate", "--no-such-flag", cwd=state_repo).returncode == 2
    assert run_cli("validate", "--staged", "main", cwd=state_repo).returncode == 2
    proc = run_cli("validate", "no-such-ref-or-folder", cwd=state_repo)
    assert proc.returncode == 2
    assert "neither a folder nor a revision" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- warnings versus errors ----------------------------------------------------------------


def test_a_evolve_extra_skill_keys_are_warnings(tmp_path):
    errors, warnings = problems_of(tmp_path, {SKILL: skill_doc(
        "name: refund-policy\ndescription: Refunds.\nkeywords: [refund, return]\ntriggers: [refund]\n")})
    assert errors == []
    assert [(w.pointer, w.line) for w in warnings] == [("/keywords", 4), ("/triggers", 5)]
    assert all("unknown key" in w.message for w in warnings)


def test_warnings_are_labelled_and_do_not_fail_the_cli(state_repo):
    write(state_repo, {SKILL: skill_doc("name: refund-policy\ndescription: Refunds.\ncategory: billing\n")})
    proc = run_cli("validate", cwd=state_repo)
    assert proc.returncode == 0
    assert f"{SKILL}:4: warning: unknown key 'category' (kept; not part of the schema) (/category)" in proc.stdout


def test_unknown_manifest_and_config_keys_are_warnings(tmp_path):
    errors, warnings = problems_of(tmp_path, {
        "manifest.yaml": "name: a\nowner: me\n",
        "aevolve.yaml": "version: 1\ngate:\n  cases: 'evals/*.yaml'\n  colour: blue\n"})
    assert errors == []
    assert {(w.path, w.pointer) for w in warnings} == {("manifest.yaml", "/owner"), ("aevolve.yaml", "/gate/colour")}


def test_an_empty_skill_body_is_a_warning(tmp_path):
    errors, warnings = problems_of(tmp_path, {SKILL: "---\nname: refund-policy\ndescription: d\n---\n"})
    assert errors == [] and "no instructions" in warnings[0].message


# -- Agent Skills front matter rules --------------------------------------------------------


def renamed(name: str) -> dict:
    """The skill moved to a folder of the same `name`, so only the name rules apply."""
    return {SKILL: None, f"skills/{name}/SKILL.md": skill_doc(f"name: {name}\ndescription: Refunds.\n")}


@pytest.mark.parametrize("name", [
    "a" * 65, "Refund-policy", "-refund", "refund-", "refund--policy", "refund_policy", "réfund",
])
def test_skill_names_outside_the_spec_are_errors(tmp_path, name):
    errors, _ = problems_of(tmp_path, renamed(name))
    assert [(e.pointer, e.line) for e in errors] == [("/name", 2)], errors
    assert errors[0].path == f"skills/{name}/SKILL.md"


@pytest.mark.parametrize("name", ["a", "a" * 64, "refund-policy-2", "x9"])
def test_skill_names_inside_the_spec_are_valid(tmp_path, name):
    errors, _ = problems_of(tmp_path, renamed(name))
    assert errors == []


def test_skill_name_must_equal_its_folder(tmp_path):
    errors, _ = problems_of(tmp_path, {SKILL: skill_doc("name: refunds\ndescription: d\n")})
    assert len(errors) == 1
    assert "must equal its folder name 'refund-policy'" in errors[0].message
    assert (errors[0].line, errors[0].pointer) == (2, "/name")


@pytest.mark.parametrize("front, pointer, expected", [
    ("name: refund-policy\ndescription: " + "d" * 1025 + "\n", "/description",
     "too long: 1025 characters, at most 1024"),
    ("name: refund-policy\ndescription: ''\n", "/description", "too short"),
    ("name: refund-policy\n", "", "'description' is required"),
    ("name: refund-policy\ndescription: d\ncompatibility: " + "c" * 501 + "\n", "/compatibility", "at most 500"),
    ("name: refund-policy\ndescription: d\nmetadata:\n  version: 2\n", "/metadata/version",
     "expected string, got integer"),
    ("name: refund-policy\ndescription: d\nmetadata: [a]\n", "/metadata", "expected object, got array"),
    ("name: refund-policy\ndescription: d\nlicense: 3\n", "/license", "expected string"),
    ("name: 12\ndescription: d\n", "/name", "expected string, got integer"),
])
def test_skill_front_matter_violations_are_errors(tmp_path, front, pointer, expected):
    errors, _ = problems_of(tmp_path, {SKILL: skill_doc(front)})
    assert [e.pointer for e in errors] == [pointer], errors
    assert expected in errors[0].message


def test_optional_skill_fields_within_the_spec_are_valid(tmp_path):
    errors, warnings = problems_of(tmp_path, {SKILL: skill_doc(
        "name: refund-policy\ndescription: d\nlicense: MIT\ncompatibility: " + "c" * 500
        + "\nmetadata:\n  author: me\n  version: '2'\nallowed-tools: Bash(git:*) Read\n")})
    assert errors == [] and warnings == []


# -- tool registries --------------------------------------------------------------------------


@pytest.mark.parametrize("registry", [
    "tools: []\n",
    "tools:\n  - name: bash\n    description: Run bash.\n    file: bash.py\n",
    "tools:\n  - name: bash\n    description: Run bash.\n    parameters:\n      cmd:\n        type: string\n"
    "        description: The command.\n    required: [cmd]\n",
    "tools:\n  - name: search\n    module: agent.tools.search\n",
    "tools:\n  - name: search\n    module: agent.tools.search\n    enabled: false\n",
], ids=["empty", "file", "parameters", "module", "enabled"])
def test_every_tool_registry_dialect_is_valid(tmp_path, registry):
    errors, warnings = problems_of(tmp_path, {"tools/registry.yaml": registry})
    assert errors == [] and warnings == []


def test_a_tool_without_a_name_is_an_error_on_its_line(tmp_path):
    errors, _ = problems_of(tmp_path, {"tools/registry.yaml": "tools:\n  - name: a\n  - description: b\n"})
    assert [(e.line, e.pointer) for e in errors] == [(3, "/tools/1")]
    assert "'name' is required" in errors[0].message


# -- memory and cases --------------------------------------------------------------------------


def test_memory_lines_are_checked_each_on_its_line(tmp_path):
    errors, _ = problems_of(tmp_path, {"memory/episodic.jsonl": (
        '{"id": "m-1", "content": "a"}\n\n{"content": 5}\n{"id": "m-1", "content": "b"}\n')})
    assert [(e.line, e.pointer) for e in errors] == [(3, "/content"), (4, "/id")]
    assert "duplicate id 'm-1' (first on line 1)" in errors[1].message


def test_empty_and_blank_memory_files_are_valid(tmp_path):
    errors, _ = problems_of(tmp_path, {"memory/a.jsonl": "", "memory/b.jsonl": "\n\n  \n"})
    assert errors == []


def test_eval_cases_are_checked_against_their_schema(tmp_path):
    errors, _ = problems_of(tmp_path, {"evals/basic.yaml": "- id: a\n  input: x\n  assert: 5\n"})
    assert errors and errors[0].path == "evals/basic.yaml" and errors[0].pointer.startswith("/0")


def test_bad_config_values_are_errors_with_lines(tmp_path):
    errors, _ = problems_of(tmp_path, {"aevolve.yaml": "version: 1\ngate:\n  jobs: 0\n  runner: python run.py\n"})
    assert {(e.pointer, e.line) for e in errors} == {("/gate/jobs", 3), ("/gate/runner", 4)}


def test_a_config_section_of_the_wrong_shape_is_an_error_not_a_crash(tmp_path):
    errors, _ = problems_of(tmp_path, {"aevolve.yaml": "gate: 5\n"})
    assert [(e.path, e.pointer, e.line) for e in errors] == [("aevolve.yaml", "/gate", 1)]


def test_evals_can_never_be_an_evolvable_layer(tmp_path):
    errors, _ = problems_of(tmp_path, {"manifest.yaml": "name: a\nevolvable_layers: [skills, evals]\n"})
    assert [(e.path, e.pointer) for e in errors] == [("manifest.yaml", "/evolvable_layers")]


# -- sources: ref, index, folder ---------------------------------------------------------------


def break_manifest(root: Path) -> None:
    write(root, {"manifest.yaml": "version: 1\n"})  # no name


def test_validate_a_ref_without_checking_it_out(state_repo):
    break_manifest(state_repo)
    git(state_repo, "commit", "-qam", "broken manifest")
    git(state_repo, "checkout", "-q", "HEAD~1", "--", "manifest.yaml")  # the worktree is fine again
    assert run_cli("validate", cwd=state_repo).returncode == 0
    proc = run_cli("validate", "main", cwd=state_repo)
    assert proc.returncode == 1
    assert "manifest.yaml:1: 'name' is required" in proc.stdout
    assert run_cli("validate", "main~1", cwd=state_repo).returncode == 0


def test_validate_a_ref_of_a_bare_repository(tmp_path):
    src = make_state_repo(tmp_path / "src")
    git(tmp_path, "clone", "-q", "--bare", str(src), "bare.git")
    assert run_cli("validate", cwd=tmp_path / "bare.git").returncode == 0
    assert run_cli("validate", "main", cwd=tmp_path / "bare.git").returncode == 0


def test_validate_staged_reads_the_index_not_the_worktree(state_repo):
    break_manifest(state_repo)
    git(state_repo, "add", "manifest.yaml")
    write(state_repo, {"manifest.yaml": SAMPLE_STATE["manifest.yaml"]})  # worktree fixed, index broken
    assert run_cli("validate", cwd=state_repo).returncode == 0
    proc = run_cli("validate", "--staged", cwd=state_repo)
    assert proc.returncode == 1 and "manifest.yaml" in proc.stdout


def test_validate_a_path_outside_any_repository(tmp_path):
    write(tmp_path / "plain", SAMPLE_STATE)
    assert run_cli("validate", "plain", cwd=tmp_path).returncode == 0
    break_manifest(tmp_path / "plain")
    proc = run_cli("validate", tmp_path / "plain")
    assert proc.returncode == 1 and "manifest.yaml:1:" in proc.stdout


def test_validate_sees_untracked_and_deleted_worktree_files(state_repo):
    write(state_repo, {"skills/new-one/SKILL.md": skill_doc("name: wrong\ndescription: d\n")})
    (state_repo / "memory" / "episodic.jsonl").unlink()
    report = validate_state(State.from_folder(state_repo, Repo.open(state_repo)))
    assert [e.path for e in report.errors] == ["skills/new-one/SKILL.md"]
    assert "memory/episodic.jsonl" not in State.from_folder(state_repo, Repo.open(state_repo)).files


def test_json_report_shape(state_repo):
    write(state_repo, {SKILL: skill_doc("name: refund-policy\ndescription: ''\nkeywords: [a]\n")})
    proc = run_cli("validate", "--json", cwd=state_repo)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert set(doc) == {"origin", "valid", "errors", "warnings", "files_checked", "from_cache"}
    assert doc["valid"] is False
    assert doc["errors"] == [{"path": SKILL, "message": "too short: at least 1 character(s) expected",
                              "severity": "error", "line": 3, "pointer": "/description"}]
    assert [w["pointer"] for w in doc["warnings"]] == ["/keywords"]


def test_output_lines_follow_the_path_line_message_pointer_format(state_repo):
    write(state_repo, {SKILL: skill_doc("name: Refund\ndescription: d\n"),
                       "memory/episodic.jsonl": '{"id": 1}\n{broken\n'})
    lines = run_cli("validate", cwd=state_repo).stdout.splitlines()[:-1]
    assert len(lines) == 4
    for line in lines:
        assert re.fullmatch(r"[^:]+:\d+: (warning: )?.+?( \(/[^)]*\))?", line), line


# -- cache -----------------------------------------------------------------------------------


def test_second_run_reads_from_cache_and_a_changed_file_is_rechecked(state_repo):
    first = json.loads(run_cli("validate", "--json", cwd=state_repo).stdout)
    assert first["from_cache"] == 0 and first["files_checked"] > 0
    second = json.loads(run_cli("validate", "--json", cwd=state_repo).stdout)
    assert second["from_cache"] == second["files_checked"]

    write(state_repo, {SKILL: skill_doc("name: other\ndescription: d\n")})
    third = json.loads(run_cli("validate", "--json", cwd=state_repo).stdout)
    assert third["from_cache"] == third["files_checked"] - 1
    assert [e["path"] for e in third["errors"]] == [SKILL]

    write(state_repo, {SKILL: SAMPLE_STATE[SKILL]})
    fourth = json.loads(run_cli("validate", "--json", cwd=state_repo).stdout)
    assert fourth["valid"] is True


def test_cached_problems_are_reported_again(state_repo):
    write(state_repo, {"manifest.yaml": "version: 1\n"})
    first = run_cli("validate", cwd=state_repo)
    second = run_cli("validate", cwd=state_repo)
    assert first.returncode == second.returncode == 1
    assert first.stdout == second.stdout


def test_no_cache_rechecks_everything(state_repo):
    run_cli("validate", cwd=state_repo)
    doc = json.loads(run_cli("validate", "--json", "--no-cache", cwd=state_repo).stdout)
    assert doc["from_cache"] == 0


MEMORY = "memory/episodic.jsonl"
PREFIX = '{"id": "m-1", "content": "a"}\n{"id": "m-2", "content": \n{"id": "m-3", "content": "c"}\n'


def parsed_texts(monkeypatch) -> list[str]:
    """Every memory text the validator parses, recorded."""
    import aevolve._state.validate as validate_module

    seen: list[str] = []
    real = validate_module.iter_jsonl

    def recording(text):
        seen.append(text)
        return real(text)

    monkeypatch.setattr(validate_module, "iter_jsonl", recording)
    return seen


def memory_problems(state_repo) -> list[tuple[int | None, str]]:
    from aevolve._state.validate import validate

    report = validate(Repo.open(state_repo))
    return [(p.line, p.message.split(":")[0]) for p in report.problems if p.path == MEMORY]


def test_an_append_to_a_memory_file_parses_only_the_new_records_and_keeps_line_numbers(state_repo, monkeypatch):
    write(state_repo, {MEMORY: PREFIX})
    assert memory_problems(state_repo) == [(2, "broken JSON")]
    appended = '{"id": "m-4", "content": "d"}\n{"id": "m-4", "content": "e"}\nnot json\n'
    write(state_repo, {MEMORY: PREFIX + appended})
    texts = parsed_texts(monkeypatch)
    assert memory_problems(state_repo) == [(2, "broken JSON"), (5, "duplicate id 'm-4' (first on line 4)"),
                                           (6, "broken JSON")]
    assert texts == [appended]


def test_an_appended_record_repeating_an_earlier_id_is_still_a_duplicate(state_repo):
    write(state_repo, {MEMORY: PREFIX})
    memory_problems(state_repo)
    write(state_repo, {MEMORY: PREFIX + '{"id": "m-3", "content": "again"}\n'})
    assert memory_problems(state_repo) == [(2, "broken JSON"), (4, "duplicate id 'm-3' (first on line 3)")]


def test_many_appended_records_are_checked_for_duplicates_of_earlier_ids_too(state_repo, monkeypatch):
    write(state_repo, {MEMORY: PREFIX})
    memory_problems(state_repo)
    fresh = "".join(f'{{"id": "n-{i}", "content": "x"}}\n' for i in range(20))
    write(state_repo, {MEMORY: PREFIX + fresh})
    texts = parsed_texts(monkeypatch)
    assert memory_problems(state_repo) == [(2, "broken JSON")]
    assert texts == [fresh]  # 20 new ids, none seen before: only the appended records were parsed
    write(state_repo, {MEMORY: PREFIX + fresh + fresh.replace("n-", "k-").replace("k-19", "m-1")})
    assert memory_problems(state_repo) == [(2, "broken JSON"), (43, "duplicate id 'm-1' (first on line 1)")]


def test_a_memory_file_changed_before_its_end_is_checked_whole(state_repo, monkeypatch):
    write(state_repo, {MEMORY: PREFIX})
    memory_problems(state_repo)
    changed = PREFIX.replace('"content": \n', '"content": "b"}\n') + "not json\n"
    write(state_repo, {MEMORY: changed})
    texts = parsed_texts(monkeypatch)
    assert memory_problems(state_repo) == [(4, "broken JSON")]  # line 2 was fixed: the whole file was read
    assert texts == [changed]


# -- the fast path agrees with jsonschema -------------------------------------------------------

FRONT_MATTERS = [
    {"name": "a", "description": "d"},
    {"name": "a", "description": "d", "keywords": ["x"], "a/b~c": 1},
    {"name": "a-b", "description": "d" * 1024, "compatibility": "c" * 500, "metadata": {"k": "v"}},
    {"name": "a-", "description": "d"}, {"name": "a\n", "description": "d"}, {"name": "A", "description": "d"},
    {"name": "a" * 65, "description": "d"}, {"name": "a", "description": ""}, {"name": "a"},
    {"name": "a", "description": "d", "metadata": {"k": 1}}, {"name": "a", "description": "d", "metadata": {1: "v"}},
    {"name": "a", "description": "d", "license": None}, {"name": 5, "description": "d"},
    {"name": "a", "description": "d", "allowed-tools": ["Read"]}, {1: "x", "name": "a", "description": "d"},
]
MEMORY_LINES = [
    {}, {"id": "m"}, {"id": ""}, {"id": 3}, {"content": 5}, {"tags": ["a", 1]}, {"tags": "a"},
    {"id": "m", "content": "c", "tags": [], "source": {"x": 1}, "extra": True}, [1], "s", None,
]


def test_fast_schema_path_gives_exactly_what_jsonschema_gives():
    from aevolve._state import schemas

    for doc in FRONT_MATTERS:
        assert schemas.check_fast("skill-frontmatter", doc) == schemas.check("skill-frontmatter", doc), doc
    for doc in MEMORY_LINES:
        assert schemas.check_fast("memory-entry", doc) == schemas.check("memory-entry", doc), doc


PROPOSAL = {"title": "learn", "diagnosis": "d", "change": "c", "expected_effect": "e",
            "edits": [{"op": "write", "path": "prompts/a.md", "content": "x"}]}
PROPOSALS = [
    PROPOSAL, {**PROPOSAL, "layer": "memory", "evidence": ["o-1", "o-2"]}, {**PROPOSAL, "title": "ab\n"},
    {**PROPOSAL, "title": "a\nb"}, {**PROPOSAL, "title": "ab"}, {**PROPOSAL, "layer": "Mem"},
    {**PROPOSAL, "layer": None},
    {**PROPOSAL, "evidence": ["o", "o"]}, {**PROPOSAL, "evidence": [""]}, {**PROPOSAL, "extra": 1},
    {**PROPOSAL, "edits": []}, {**PROPOSAL, "edits": [{"op": "write", "path": "p"}]},
    {**PROPOSAL, "edits": [{"op": "delete", "path": "p"}, {"op": "append-jsonl", "path": "m.jsonl", "records": [{}]}]},
    {**PROPOSAL, "edits": [{"op": "append-jsonl", "path": "m.jsonl", "records": []}]},
    {**PROPOSAL, "edits": [{"op": "move", "path": "p"}]}, {**PROPOSAL, "edits": [{"op": "delete", "path": ""}]},
    {**PROPOSAL, "edits": [{"op": "delete", "path": "p", "x": 1}]},
    {k: v for k, v in PROPOSAL.items() if k != "change"},
    {**PROPOSAL, "diagnosis": "d" * 8001}, [PROPOSAL],
]


def test_fast_proposal_check_gives_exactly_what_jsonschema_gives():
    from aevolve._state import schemas

    for doc in PROPOSALS:
        assert schemas.check_fast("proposal", doc) == schemas.check("proposal", doc), doc


def test_a_problem_shows_a_path_with_control_characters_escaped():
    from aevolve._state.validate import Problem

    shown = str(Problem("prompts/red\x1b[31m\u202e.md", "unsafe path"))
    assert shown == '"prompts/red\\x1b[31m\\u202e.md": unsafe path'
    assert str(Problem("prompts/café.md", "m", line=3)) == "prompts/café.md:3: m"
