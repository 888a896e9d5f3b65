"""Words written by models and agents reach commits plain and terminals cleaned."""

from __future__ import annotations

import io
import json

import pytest

from aevolve.cli.terminal import SafeStream, clean, own_escape

from conftest import git, run_cli, write

HOSTILE = "fix\x1b]0;pwned\x07 refunds\x1b[2J\x9b31m\rEVIL\u202etxt"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
RATIONALE = ["--diagnosis", "d", "--change", "c", "--expected-effect", "e", "--evidence", "obs-1"]


def assert_clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)
    assert "\r" not in text.replace("\r\n", ""), repr(text)


def test_clean_shows_each_unsafe_character_as_a_unicode_escape():
    assert clean("a\x1b[31mb\x07c\x9bd\u202ee\rf") == "a\\u001b[31mb\\u0007c\\u009bd\\u202ee\\u000df"


def test_clean_keeps_tabs_newlines_crlf_line_ends_and_ordinary_unicode():
    assert clean("a\tb\r\nc\n👩‍👩‍👧 café") == "a\tb\nc\n👩‍👩‍👧 café"


def test_own_colours_pass_and_forged_ones_do_not():
    out = io.StringIO()
    SafeStream(out).write(own_escape("\x1b[32m") + "ok\x1b[31m" + own_escape("\x1b[0m"))
    assert out.getvalue() == "\x1b[32mok\\u001b[31m\x1b[0m"


def test_cleaned_json_means_the_same():
    text = json.dumps({"title": HOSTILE}, ensure_ascii=False)
    assert json.loads(clean(text))["title"] == HOSTILE


def test_a_proposal_title_reaches_the_commit_as_plain_text(state_repo, tmp_path):
    edits = tmp_path / "edits.yaml"
    edits.write_text("- op: write\n  path: prompts/system.md\n  content: \"Be brief.\\n\"\n")
    proc = run_cli("propose", "--evolver", "patch", "--edits", edits, "--title", HOSTILE, *RATIONALE,
                   cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc.stdout + proc.stderr)
    branch = git(state_repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/evolve/")
    message = git(state_repo, "log", "-1", "--format=%B", branch)
    assert message.startswith("evolve(prompts): fix refundsEVILtxt\n")
    assert_clean(message + branch)


@pytest.fixture
def hostile_branch(state_repo):
    """A hand-made commit whose message and file content carry escape sequences."""
    git(state_repo, "checkout", "-qb", "evolve/by-hand")
    write(state_repo, {"prompts/system.md": f"Be brief. {HOSTILE}\n"})
    git(state_repo, "commit", "-qam", HOSTILE)
    git(state_repo, "checkout", "-q", "main")
    return "evolve/by-hand"


@pytest.mark.parametrize("command", [["log", "--all"], ["review"], ["status"], ["diff", "main"]])
def test_commands_never_print_raw_control_characters(state_repo, hostile_branch, command):
    args = [*command, hostile_branch] if command[0] in ("review", "diff") else command
    proc = run_cli(*args, cwd=state_repo)
    assert proc.returncode in (0, 1), proc.stderr
    assert_clean(proc.stdout + proc.stderr)


def test_json_output_keeps_the_words_exactly(state_repo, hostile_branch):
    proc = run_cli("log", "--all", "--json", cwd=state_repo)
    assert_clean(proc.stdout)
    subjects = [entry["subject"] for entry in json.loads(proc.stdout)]
    assert HOSTILE.split("\r")[0] in subjects  # git ends the subject at the carriage return
