"""A hostile corpus: each broken file gives a clear error naming file and line, exit 1, no traceback."""

from __future__ import annotations

import json
import os

import pytest

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli, write

SKILL = "skills/refund-policy/SKILL.md"

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
