"""A hostile corpus: each broken file gives a clear error naming file and line, exit 1, no traceback.

Also the decisions about what is not JSON or not YAML: NaN and Infinity are
refused (RFC 8259), a UTF-8 BOM starting a file is accepted and ignored, YAML
whose aliases expand past 100,000 nodes (a "billion laughs") is refused with
the line of the alias, and JSON or YAML nested deeper than 200 levels is a
located error.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli, write

SKILL = "skills/refund-policy/SKILL.md"


def laughs(levels: int = 9) -> str:
    """A billion laughs: 9 ** levels strings once expanded, a few hundred bytes as written."""
    out = ['lol0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    out += [f"lol{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(out) + "\n"


def bomb_line(text: str) -> int:
    """The line whose first alias takes the expansion past 100,000 nodes (lol5, 141,148 nodes)."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith("lol5:"))


MANIFEST = "name: a\nversion: 1\ncontract_version: '1.0'\nagent: {type: r, entrypoint: x}\n"
BOMBS = {  # path -> the file with a billion laughs in it
    "manifest.yaml": MANIFEST + laughs(),
    "aevolve.yaml": "version: 1\n" + laughs(),
    "tools/registry.yaml": "tools: []\n" + laughs(),
    "evals/basic.yaml": "cases: []\n" + laughs(),
    SKILL: "---\nname: refund-policy\ndescription: d\n" + laughs() + "---\nbody\n",
}
DEEP_JSON = '{"id": "deep", "content": ' + "[" * 100_000 + "]" * 100_000 + "}"

# name -> (files to write over the sample state, expected "path:line" or "path", words in the message)
CORPUS = {
    "malformed-yaml": (
        {"manifest.yaml": "name: a\nversion: 1\nagent:\n  type: [unclosed\n  entrypoint: x\n"},
        "manifest.yaml:5", "malformed YAML"),
    "malformed-config": (
        {"aevolve.yaml": "version: 1\ngate:\n  cases: 'evals/*.yaml\n"},
        "aevolve.yaml:3", "malformed YAML"),
    "tab-indented-yaml": (
        {"tools/registry.yaml": "tools:\n\t- name: a\n"},
        "tools/registry.yaml:2", "malformed YAML"),
    "broken-jsonl-line": (
        {"memory/episodic.jsonl": '{"id": "m-1", "content": "a"}\n{"id": "m-2", "content": "b"}\n{"id": "m-3", \n'},
        "memory/episodic.jsonl:3", "broken JSON"),
    "jsonl-line-not-an-object": (
        {"memory/episodic.jsonl": '{"id": "m-1"}\n[1, 2]\n'},
        "memory/episodic.jsonl:2", "expected object, got array"),
    "skill-without-front-matter": (
        {SKILL: "# Refund policy\nNo front matter here.\n"},
        f"{SKILL}:1", "no YAML front matter"),
    "unterminated-front-matter": (
        {SKILL: "---\nname: refund-policy\ndescription: d\n\n# body\n"},
        f"{SKILL}:1", "not closed"),
    "malformed-front-matter": (
        {SKILL: "---\nname: refund-policy\ndescription: [d\n---\nbody\n"},
        f"{SKILL}:3", "malformed YAML"),
    "front-matter-a-list": (
        {SKILL: "---\n- name\n---\nbody\n"},
        f"{SKILL}:2", "mapping"),
    "binary-prompt": (
        {"prompts/system.md": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"},
        "prompts/system.md", "binary file"),
    "binary-skill": (
        {SKILL: b"\0\1\2\3binary"},
        SKILL, "binary file"),
    "non-utf8-prompt": (
        {"prompts/system.md": b"line one\nline two\ncaf" + b"\xe9 latin-1\n"},
        "prompts/system.md:3", "not valid UTF-8"),
    "non-utf8-memory": (
        {"memory/episodic.jsonl": b'{"id": "a"}\n{"id": "b", "content": "\xff"}\n'},
        "memory/episodic.jsonl:2", "not valid UTF-8"),
    "empty-manifest": (
        {"manifest.yaml": ""},
        "manifest.yaml:1", "empty file"),
    "manifest-is-a-list": (
        {"manifest.yaml": "- name: a\n- version: 1\n"},
        "manifest.yaml:1", "expected object, got array"),
    "manifest-is-a-string": (
        {"manifest.yaml": "just words\n"},
        "manifest.yaml:1", "expected object, got string"),
    "registry-tools-not-a-list": (
        {"tools/registry.yaml": "tools:\n  name: bash\n"},
        "tools/registry.yaml:1", "expected array, got object"),
    "config-is-a-list": (
        {"aevolve.yaml": "- gate\n"},
        "aevolve.yaml:1", "expected object, got array"),
    "config-cases-not-a-string": (
        {"aevolve.yaml": "gate:\n  cases: 5\n"},
        "aevolve.yaml:2", "expected string, got integer"),
    "eval-file-malformed": (
        {"evals/basic.yaml": "- id: a\n  input: {x: 1\n"},
        "evals/basic.yaml:2", "malformed YAML"),
    "skill-folder-without-skill-md": (
        {"skills/orphan/notes.md": "no SKILL.md here\n"},
        "skills/orphan/", "has no SKILL.md"),
    **{f"billion-laughs-in-{path}": ({path: text}, f"{path}:{bomb_line(text)}", "YAML alias expansion exceeds 100,000")
       for path, text in BOMBS.items()},
    "yaml-alias-inside-itself": (
        {"manifest.yaml": MANIFEST + "loop: &loop\n  - a\n  - *loop\n"},
        "manifest.yaml:7", "refers to a node that contains it"),
    "yaml-nested-too-deep": (
        {"tools/registry.yaml": "tools: []\nx: " + "[" * 300 + "]" * 300 + "\n"},
        "tools/registry.yaml:2", "YAML nested deeper than 200 levels"),
    "block-yaml-nested-too-deep": (
        {"evals/basic.yaml": "".join("  " * i + "a:\n" for i in range(250))},
        "evals/basic.yaml:201", "YAML nested deeper than 200 levels"),
    "json-nested-100k-deep-in-memory": (
        {"memory/episodic.jsonl": '{"id": "m-1"}\n' + DEEP_JSON + "\n"},
        "memory/episodic.jsonl:2", "nested deeper than 200 levels"),
    "nan-in-memory": (
        {"memory/episodic.jsonl": '{"id": "m-1", "content": "a"}\n{"id": "m-2", "content": "b", "score": NaN}\n'},
        "memory/episodic.jsonl:2", "NaN is not JSON"),
    "infinity-in-memory": (
        {"memory/episodic.jsonl": '{"id": "m-1", "content": "a", "w": [1, -Infinity]}\n'},
        "memory/episodic.jsonl:1", "-Infinity is not JSON"),
}


def corrupt(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_file_in_the_worktree(state_repo, case):
    files, where, words = CORPUS[case]
    corrupt(state_repo, files)
    proc = run_cli("validate", cwd=state_repo)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    matching = [line for line in proc.stdout.splitlines() if line.startswith((where + ":", where + " "))]
    assert any(words in line for line in matching), proc.stdout


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_file_committed_and_read_from_a_ref(state_repo, case):
    files, where, words = CORPUS[case]
    corrupt(state_repo, files)
    git(state_repo, "add", "-A")
    git(state_repo, "commit", "-qm", f"hostile: {case}")
    proc = run_cli("validate", "main", "--json", cwd=state_repo)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    errors = json.loads(proc.stdout)["errors"]
    path, _, line = where.partition(":")
    assert any(e["path"] == path and e["line"] == (int(line) if line else None) and words in e["message"]
               for e in errors), errors


def test_symlink_where_a_state_file_belongs(state_repo):
    (state_repo / "tools" / "registry.yaml").unlink()
    os.symlink("/etc/passwd", state_repo / "tools" / "registry.yaml")
    for args in (["validate"], ["validate", "--json"]):
        proc = run_cli(*args, cwd=state_repo)
        assert "Traceback" not in proc.stderr
        assert proc.returncode == 1
    assert "tools/registry.yaml: symbolic link where a state file belongs" in run_cli("validate", cwd=state_repo).stdout
    git(state_repo, "add", "-A")
    git(state_repo, "commit", "-qm", "symlink")
    assert run_cli("validate", "main", cwd=state_repo).returncode == 1


def test_symlinked_skill_folder_is_reported_not_followed(state_repo, tmp_path):
    outside = tmp_path / "outside"
    write(outside, {"SKILL.md": SAMPLE_STATE[SKILL]})
    os.symlink(outside, state_repo / "skills" / "linked")
    proc = run_cli("validate", "--no-cache", state_repo, cwd=tmp_path)  # PATH read as a folder
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1
    assert "skills/linked" in proc.stdout


def test_hostile_corpus_all_at_once_reports_every_file(tmp_path):
    root = make_state_repo(tmp_path / "all")
    for case in ("malformed-yaml", "broken-jsonl-line", "binary-prompt", "registry-tools-not-a-list",
                 "unterminated-front-matter", "skill-folder-without-skill-md", "malformed-config"):
        corrupt(root, CORPUS[case][0])
    proc = run_cli("validate", "--json", cwd=root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    paths = {e["path"] for e in json.loads(proc.stdout)["errors"]}
    assert paths == {"manifest.yaml", "memory/episodic.jsonl", "prompts/system.md", "tools/registry.yaml",
                     SKILL, "skills/orphan/", "aevolve.yaml"}


def test_status_survives_a_hostile_state(state_repo):
    corrupt(state_repo, {**CORPUS["malformed-config"][0], **CORPUS["empty-manifest"][0]})
    proc = run_cli("status", cwd=state_repo)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "invalid" in proc.stdout


def test_status_survives_hostile_yaml_and_json(state_repo):
    corrupt(state_repo, {"manifest.yaml": BOMBS["manifest.yaml"],
                         "memory/episodic.jsonl": DEEP_JSON + "\n"})
    proc = run_cli("status", cwd=state_repo)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "invalid (2 errors)" in proc.stdout


BOM = "\ufeff"


@pytest.mark.parametrize("path", ["manifest.yaml", "aevolve.yaml", "tools/registry.yaml", "evals/basic.yaml",
                                  SKILL, "memory/episodic.jsonl", "prompts/system.md"])
def test_a_bom_starting_a_state_file_is_accepted_and_ignored(state_repo, path):
    original = (state_repo / path).read_text()
    (state_repo / path).write_text(BOM + original)
    proc = run_cli("validate", cwd=state_repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yaml_anchors_within_the_bound_still_load(state_repo):
    corrupt(state_repo, {"evals/basic.yaml": (
        "- &case\n  id: a\n  input: {q: 1}\n  assert: &checks\n    - {type: contains, value: x}\n"
        "- id: b\n  input: {q: 2}\n  assert: *checks\n"
    )})
    proc = run_cli("validate", cwd=state_repo)
    assert proc.returncode == 0, proc.stdout
