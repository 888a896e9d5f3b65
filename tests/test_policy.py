"""The policy: every rule, every violation named, nothing written on refusal."""

from __future__ import annotations

import os

import pytest

from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.policy import check, path_problems
from aevolve._state.model import State
from aevolve._trust.secrets import find_secrets

from conftest import SAMPLE_STATE, git, make_state_repo

GOOD_SKILL = "---\nname: greet\ndescription: Greet the user by name.\n---\n\n# Greet\nSay hello.\n"


def proposal(*edits):
    return Proposal(title="test change", diagnosis="d", change="c", expected_effect="e", edits=list(edits))


def state_of(root):
    return State.from_tree(Repo.open(root), "main")


def violations(root, *edits):
    state = state_of(root)
    return check(state, proposal(*edits), state.config())


def test_a_clean_edit_inside_an_evolvable_layer_passes(state_repo):
    assert violations(state_repo, Edit("write", "skills/greet/SKILL.md", content=GOOD_SKILL),
                      Edit("append-jsonl", "memory/episodic.jsonl", records=[{"id": "m-2", "content": "x"}])) == []


@pytest.mark.parametrize("path", ["evals/basic.yaml", "evals/new.yaml", "aevolve.yaml", ".gitattributes",
                                  ".github/workflows/ci.yml"])
def test_protected_paths_are_refused(state_repo, path):
    found = violations(state_repo, Edit("write", path, content="x: 1\n"))
    assert any("protected path" in v for v in found), found


def test_top_level_files_belong_to_no_layer(state_repo):
    found = violations(state_repo, Edit("write", "manifest.yaml", content="name: x\n"))
    assert found == ["manifest.yaml: top-level files are not in any evolvable layer"]


def test_layers_missing_from_the_manifest_are_not_evolvable(tmp_path):
    files = dict(SAMPLE_STATE, **{"manifest.yaml": "name: a\nversion: 1.0.0\nevolvable_layers: [skills]\n"})
    root = make_state_repo(tmp_path / "s", files)
    found = violations(root, Edit("write", "prompts/system.md", content="Be terse.\n"))
    assert len(found) == 1 and "layer 'prompts' is not evolvable" in found[0]


@pytest.mark.parametrize("path, rule", [
    ("/etc/passwd", "absolute"),
    ("C:/x/y", "absolute"),
    ("../outside.md", "'..'"),
    ("skills/../../outside.md", "'..'"),
    ("skills\\x\\SKILL.md", "backslash"),
    ("skills/a\x00b/SKILL.md", "control"),
    ("skills/a\nb.md", "control"),
    ("skills/.git/config", "'.git'"),
    (".git/hooks/pre-commit", "'.git'"),
    ("memory/.GIT/x.jsonl", "'.git'"),
    ("skills//x.md", "empty or '.'"),
    ("skills/./x.md", "empty or '.'"),
])
def test_hostile_paths_are_refused(path, rule):
    found = path_problems(path)
    assert any(rule in v for v in found), (path, found)


def test_hostile_path_in_a_proposal_is_a_violation(state_repo):
    found = violations(state_repo, Edit("write", "../escape.md", content="x"))
    assert found and "'..' may not appear" in found[0]


def test_writing_through_or_onto_a_symlink_is_refused(tmp_path):
    root = make_state_repo(tmp_path / "s")
    os.symlink("../evals", root / "skills" / "sneaky")
    git(root, "add", "skills/sneaky")
    git(root, "commit", "-qm", "add link")
    through = violations(root, Edit("write", "skills/sneaky/basic.yaml", content="- id: x\n"))
    onto = violations(root, Edit("write", "skills/sneaky", content="x"))
    assert "skills/sneaky is a symbolic link" in through[0]
    assert "skills/sneaky is a symbolic link" in onto[0]


def test_per_file_and_per_proposal_size_limits(tmp_path):
    files = dict(SAMPLE_STATE, **{"aevolve.yaml": "protection:\n  max_file_bytes: 100\n  max_proposal_bytes: 150\n"})
    root = make_state_repo(tmp_path / "s", files)
    found = violations(root, Edit("write", "prompts/a.md", content="a" * 120),
                       Edit("write", "prompts/b.md", content="b" * 60))
    assert any("prompts/a.md: 120 bytes is over the per-file limit of 100" in v for v in found)
    assert any("adds 180 bytes, over the limit of 150" in v for v in found)
    assert not any("prompts/b.md" in v for v in found)


def test_the_result_must_validate(state_repo):
    found = violations(state_repo,
                       Edit("write", "skills/bad/SKILL.md", content="no front matter\n"),
                       Edit("write", "skills/other/SKILL.md", content=GOOD_SKILL))
    assert any("skills/bad/SKILL.md:1: no YAML front matter" in v for v in found)
    assert any("name 'greet' must equal its folder name 'other'" in v for v in found)


def test_deleting_a_skill_file_but_leaving_its_folder_breaks_the_layout(tmp_path):
    files = dict(SAMPLE_STATE, **{"skills/refund-policy/notes.md": "extra\n"})
    root = make_state_repo(tmp_path / "s", files)
    found = violations(root, Edit("delete", "skills/refund-policy/SKILL.md"))
    assert any("has no SKILL.md" in v for v in found)


def test_deleting_a_missing_file_and_appending_to_a_non_jsonl_file_are_refused(state_repo):
    found = violations(state_repo, Edit("delete", "prompts/nope.md"),
                       Edit("append-jsonl", "prompts/system.md", records=[{"a": 1}]))
    assert "no such file at the base" in found[0]
    assert "append-jsonl only applies to .jsonl files" in found[1]


def test_every_violation_is_reported_at_once(state_repo):
    found = violations(state_repo, Edit("write", "evals/x.yaml", content="x"),
                       Edit("write", "/abs.md", content="x"),
                       Edit("write", "prompts/key.md", content="key = AKIAIOSFODNN7EXAMPLE\n"))
    assert len(found) == 3


def test_a_secret_in_added_content_is_refused_without_echoing_it(state_repo):
    key = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
    found = violations(state_repo, Edit("append-jsonl", "memory/episodic.jsonl", records=[{"content": key}]))
    assert len(found) == 1 and "OpenAI API key" in found[0] and key not in found[0]


SECRETS = {
    "OpenAI API key": "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6h",
    "Anthropic API key": "key: sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-AA",
    "AWS access key id": "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "AWS secret access key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GitHub token": "token ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "Slack token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "Slack webhook": "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/AbCdEfGhIjKlMnOpQrStUvWx",
    "Google API key": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "private key": "-----BEGIN RSA PRIVATE KEY-----",
    "JSON Web Token": ("Authorization: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
                       ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    "password assignment": 'password = "x7#Kq9!zR2mP4vL8wT"',
    "token assignment": "token: Zq8Xv2Lm9Rt4Kp7Wn3Bc",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_secret_pattern_is_found(kind):
    assert kind in [hit.kind for hit in find_secrets("line one\n" + SECRETS[kind])]
    assert all(hit.line == 2 for hit in find_secrets("line one\n" + SECRETS[kind]))


@pytest.mark.parametrize("text", [
    "Use scikit-learn: pip install sk-learn-extras",
    "sk-this-is-not-a-real-key-at-all",
    "-----BEGIN PUBLIC KEY-----",
    'password = "<your password here>"',
    "password: changeme",
    "token = ${GITHUB_TOKEN}",
    "The AKIA prefix marks AWS access keys.",
    "ghp_short",
    "api_key = REPLACE_WITH_YOUR_KEY_HERE",
])
def test_near_misses_are_not_secrets(text):
    assert find_secrets(text) == []


# -- append and replace: edits that do not need the whole file ---------------------------------


def _applied(root, *edits) -> dict:
    from aevolve._propose.policy import evaluate

    state = state_of(root)
    result = evaluate(state, proposal(*edits), state.config())
    assert result.violations == []
    return result.changes


def test_append_adds_text_at_the_end_of_a_file_keeping_what_was_there(state_repo):
    before = state_of(state_repo).text("prompts/system.md")
    changes = _applied(state_repo, Edit("append", "prompts/system.md", content="## Refunds\nQuote the window.\n"))
    after = changes["prompts/system.md"].decode()
    assert after.startswith(before) and after.endswith("## Refunds\nQuote the window.\n")


def test_append_to_a_missing_file_creates_it(state_repo):
    changes = _applied(state_repo, Edit("append", "prompts/extra.md", content="More.\n"))
    assert changes["prompts/extra.md"] == b"More.\n"


def test_replace_changes_the_one_span_it_names(state_repo):
    before = state_of(state_repo).text("prompts/system.md")
    span = before.splitlines()[0]
    changes = _applied(state_repo, Edit("replace", "prompts/system.md", old=span, content="NEW FIRST LINE"))
    assert changes["prompts/system.md"].decode() == before.replace(span, "NEW FIRST LINE", 1)


def test_replace_is_refused_when_the_span_is_not_found(state_repo):
    found = violations(state_repo, Edit("replace", "prompts/system.md", old="no such text", content="x"))
    assert len(found) == 1 and "found 0 times" in found[0] and "exactly once" in found[0]


def test_replace_is_refused_when_the_span_is_found_twice(state_repo):
    found = violations(state_repo, Edit("append", "prompts/system.md", content="twice twice\n"),
                       Edit("replace", "prompts/system.md", old="twice", content="once"))
    assert len(found) == 1 and "found 2 times" in found[0]


def test_replace_in_a_missing_file_is_refused(state_repo):
    found = violations(state_repo, Edit("replace", "prompts/nope.md", old="a", content="b"))
    assert found and "no such file" in found[0]


def test_append_and_replace_go_through_every_rule_like_a_write(state_repo):
    found = violations(state_repo, Edit("append", "evals/basic.yaml", content="x\n"),
                       Edit("replace", "aevolve.yaml", old="gate", content="g"))
    assert sum("protected path" in v for v in found) == 2


def test_an_appended_secret_is_refused(state_repo):
    key = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"
    found = violations(state_repo, Edit("append", "prompts/system.md", content=f"key: {key}\n"))
    assert any("looks like a secret" in v for v in found)


def test_the_proposal_schema_requires_old_for_a_replace():
    from aevolve._state import schemas

    base = {"title": "x change", "diagnosis": "d", "change": "c", "expected_effect": "e"}
    bad = {**base, "edits": [{"op": "replace", "path": "prompts/a.md", "content": "b"}]}
    good = {**base, "edits": [{"op": "replace", "path": "prompts/a.md", "old": "a", "content": "b"},
                              {"op": "append", "path": "prompts/a.md", "content": "c"}]}
    assert schemas.errors("proposal", bad) and not schemas.errors("proposal", good)
