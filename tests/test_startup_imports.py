"""What a command imports at start-up, read from a real process's `-X importtime`.

Heavy dependencies (jsonschema, PyYAML, pygit2, openai, pathspec) are loaded only
where a command needs them; these tests pin the module sets, never timings. The
second half checks that the validate cache which makes that possible (what the
whole state implies: its case files, layout and name problems) follows changes.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import make_state_repo, run_cli, write

HEAVY = ("jsonschema", "yaml", "pygit2", "openai", "pathspec")


# `python -X importtime -m aevolve ARGS`, printing sys.modules at exit as well: importtime
# does not report a module loaded by importlib.import_module (the CLI's lazy command table)
_PROBE = ("import atexit, json, runpy, sys\n"
          "atexit.register(lambda: print('MODULES', json.dumps(sorted(sys.modules)), file=sys.__stderr__))\n"
          "runpy.run_module('aevolve', run_name='__main__', alter_sys=True)\n")


def imported(*args, cwd=None) -> set[str]:
    """The modules `python -m aevolve ARGS` imports, as a real process."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", _PROBE, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    names = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:") and "|" in line}
    at_exit = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("MODULES ")]
    assert at_exit and "aevolve.cli" in names, proc.stderr[-2000:]  # both reports were read
    return names | set(at_exit[-1])


def loaded(names: set[str], *tops: str) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in tops)


def warm_repo(tmp_path):
    repo = make_state_repo(tmp_path / "state")
    assert run_cli("validate", cwd=repo).returncode == 0  # fills the cache
    return repo


def test_top_level_help_imports_no_heavy_dependency(tmp_path):
    assert loaded(imported("--help", cwd=tmp_path), *HEAVY) == []


def test_propose_help_imports_no_heavy_dependency(tmp_path):
    assert loaded(imported("propose", "--help", cwd=tmp_path), *HEAVY) == []


def test_propose_with_the_rules_evolver_imports_neither_jsonschema_nor_openai(tmp_path):
    repo = make_state_repo(tmp_path / "state")
    source = tmp_path / "obs.jsonl"
    source.write_text(json.dumps({"id": "obs-1", "task": "q", "output": "wrong", "ts": "2025-01-01T00:00:00Z",
                                  "feedback": {"success": False, "expected": "30 days"}}) + "\n")
    assert run_cli("observe", source, cwd=repo).returncode == 0
    names = imported("propose", "--evolver", "rules", cwd=repo)
    assert "aevolve._propose.evolvers.rules" in names  # it did propose
    assert loaded(names, "jsonschema", "openai") == []


def test_warm_validate_imports_neither_jsonschema_pygit2_openai_nor_pathspec(tmp_path):
    repo = warm_repo(tmp_path)
    assert loaded(imported("validate", cwd=repo), "jsonschema", "pygit2", "openai", "pathspec") == []


def test_warm_validate_after_a_prompt_changed_imports_neither_jsonschema_nor_pathspec(tmp_path):
    repo = warm_repo(tmp_path)
    write(repo, {"prompts/system.md": "You are a helpful support agent.\nAnswer in one line.\n"})
    assert loaded(imported("validate", cwd=repo), "jsonschema", "pygit2", "openai", "pathspec") == []


def test_warm_validate_does_not_import_pyyaml(tmp_path):
    repo = warm_repo(tmp_path)
    assert loaded(imported("validate", cwd=repo), "yaml") == []


def test_validate_after_a_plain_skill_changed_imports_neither_pyyaml_nor_jsonschema(tmp_path):
    repo = warm_repo(tmp_path)
    skill = repo / "skills/refund-policy/SKILL.md"
    write(repo, {"skills/refund-policy/SKILL.md": skill.read_text() + "Ask for the receipt first.\n"})
    assert loaded(imported("validate", cwd=repo), "yaml", "jsonschema") == []


# -- the cached facts of the whole state follow what they depend on ---------------------


def test_a_new_case_file_is_checked_as_a_case_file_after_a_warm_run(tmp_path):
    repo = warm_repo(tmp_path)
    write(repo, {"evals/more.yaml": "- id: 7\n  input: {}\n"})  # an id must be a string
    result = run_cli("validate", cwd=repo)
    assert result.returncode == 1 and "evals/more.yaml" in result.stdout


def test_a_changed_cases_glob_in_aevolve_yaml_changes_which_files_are_case_files(tmp_path):
    repo = warm_repo(tmp_path)
    write(repo, {"checks/bad.yaml": "- id: 7\n  input: {}\n"})
    assert run_cli("validate", cwd=repo).returncode == 0  # not a case file yet
    write(repo, {"aevolve.yaml": "version: 1\ngate:\n  cases: 'checks/**/*.yaml'\n"})
    result = run_cli("validate", cwd=repo)
    assert result.returncode == 1 and "checks/bad.yaml" in result.stdout


def test_a_skill_folder_without_skill_md_is_reported_after_a_warm_run(tmp_path):
    repo = warm_repo(tmp_path)
    write(repo, {"skills/empty/notes.md": "nothing here\n"})
    result = run_cli("validate", cwd=repo)
    assert result.returncode == 1 and "skill folder 'empty' has no SKILL.md" in result.stdout


def test_making_evals_evolvable_in_the_manifest_is_reported_after_a_warm_run(tmp_path):
    repo = warm_repo(tmp_path)
    manifest = (repo / "manifest.yaml").read_text().replace("memory]", "memory, evals]")
    write(repo, {"manifest.yaml": manifest})
    result = run_cli("validate", cwd=repo)
    assert result.returncode == 1 and "can never be evolvable" in result.stdout


def test_a_warm_run_reports_the_same_problems_as_a_cold_one(tmp_path):
    repo = warm_repo(tmp_path)
    write(repo, {"skills/empty/notes.md": "x\n", "evals/more.yaml": "- id: 7\n  input: {}\n"})
    first = json.loads(run_cli("validate", "--json", cwd=repo).stdout)
    warm = json.loads(run_cli("validate", "--json", cwd=repo).stdout)
    cold = json.loads(run_cli("validate", "--json", "--no-cache", cwd=repo).stdout)
    assert warm["from_cache"] == warm["files_checked"] > 0
    for doc in (first, warm, cold):
        del doc["from_cache"]  # the only field that differs, by design
    assert warm == cold == first and not warm["valid"]


# -- skill front matter read without PyYAML gives exactly PyYAML's answer ----------------

_TOKENS = ["name", "x", "Yes", "no", "ON", "null", "NULL", "a b", "a  b", "a, b", "a [b]", "a {b}", "a'b", 'a"b',
           "a *b", "a &b", "a !b", "a - b", "a ? b", "a|b", "a>b", "a%b", "a@b", "a`b", "a\\b", "1.0", "0x1f",
           "~", "a: b", "a #c", "a#c", "[a, b]", "[a,b]", "[ ]", "[]", "[a, yes]", "[a, 1]", "[a, ]", "'q'",
           '"q"', "{a: b}", "&x a", "*x", "!!str a", "- a", ".inf", "2024-01-01", "y", "n", "~x", "e1", "Infinity"]


def _samples():
    import random

    rng = random.Random(12)
    keys = ["name", "description", "allowed-tools", "k_1", "on", "y", "Null", "version"]
    for _ in range(3000):
        lines = [f"{rng.choice(keys)}:{rng.choice([' ', '  '])}{rng.choice(_TOKENS)}{rng.choice(['', ' '])}"
                 for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.2:
            lines.insert(rng.randint(0, len(lines)), rng.choice(["", "  ", "  more", "# c", "\tx: y"]))
        yield "\n".join(lines) + rng.choice(["\n", ""])


def test_front_matter_read_without_pyyaml_equals_pyyaml_with_the_same_lines():
    from aevolve._state.model import FileError, parse_skill, yaml_line
    from aevolve._state.validate import _read_skill, quick_front_matter

    checked = 0
    for meta_text in _samples():
        if quick_front_matter(meta_text) is None:
            continue
        checked += 1
        text = f"---\n{meta_text}{'' if meta_text.endswith(chr(10)) else chr(10)}---\nbody\n"
        try:
            expected = parse_skill(text, "skills/a/SKILL.md")
        except FileError as exc:
            raise AssertionError(f"{meta_text!r}: PyYAML refuses it ({exc}), the quick reader did not") from None
        doc, line_of = _read_skill(text, "skills/a/SKILL.md")
        assert (doc.meta, list(doc.meta), doc.body) == (expected.meta, list(expected.meta), expected.body), meta_text
        for pointer in ["", "/zz-absent", *(f"/{key}" for key in doc.meta), *(f"/{key}/0" for key in doc.meta)]:
            assert line_of(pointer) == yaml_line(expected.meta_text, pointer, 1), (meta_text, pointer)
    assert checked > 300  # the quick reader answered often enough to be compared


def test_front_matter_that_pyyaml_reads_otherwise_goes_to_pyyaml():
    from aevolve._state.validate import quick_front_matter

    for text in ["on: x\n", "name: yes\n", "name: 1.0\n", "name: a: b\n", "name: a #c\n", "name: [a, yes]\n",
                 "name: 'q'\n", "name: a\n  b\n", "name: a\nname: b\n", "name: caf\u00e9\n", "name: a\tb\n"]:
        assert quick_front_matter(text) is None, text
