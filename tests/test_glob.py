"""`glob_match` follows git's wildmatch (as in `.gitignore`), the rules `gate.cases` is written in."""

from __future__ import annotations

import pytest

from aevolve._state.model import State, glob_match

from conftest import write


def test_each_double_star_may_match_zero_folders():
    assert glob_match("a/X/b/c", "a/**/b/**/c")
    assert glob_match("a/b/c", "a/**/b/**/c")
    assert glob_match("a/X/Y/b/Z/c", "a/**/b/**/c")


def test_the_default_cases_pattern_matches_top_level_and_nested_case_files():
    assert glob_match("evals/a.yaml", "evals/**/*.yaml")
    assert glob_match("evals/x/y/a.yaml", "evals/**/*.yaml")
    assert not glob_match("other/a.yaml", "evals/**/*.yaml")


def test_a_leading_double_star_matches_at_any_depth_including_the_top():
    assert glob_match("cases.yaml", "**/cases.yaml")
    assert glob_match("evals/deep/cases.yaml", "**/cases.yaml")


def test_a_trailing_double_star_matches_everything_inside_but_not_the_folder_itself():
    assert glob_match("evals/a.yaml", "evals/**")
    assert glob_match("evals/x/y/z.json", "evals/**")
    assert not glob_match("evals", "evals/**")


@pytest.mark.parametrize("path", ["evals/x/a.yaml", "evals/x/y/a.yaml"])
def test_a_single_star_does_not_cross_a_folder(path):
    assert not glob_match(path, "evals/*.yaml")


def test_a_question_mark_does_not_match_a_slash():
    assert glob_match("evals/a1.yaml", "evals/a?.yaml")
    assert not glob_match("evals/a/.yaml", "evals/a?.yaml")


def test_a_pattern_with_a_slash_is_anchored_at_the_root():
    assert glob_match("evals/a.yaml", "evals/*.yaml")
    assert not glob_match("sub/evals/a.yaml", "evals/*.yaml")


@pytest.mark.parametrize("path", ["a.yaml", "evals/a.yaml", "evals/x/a.yaml"])
def test_a_bare_name_pattern_matches_the_name_at_any_depth(path):
    assert glob_match(path, "*.yaml")


def test_a_bare_name_pattern_compares_names_not_whole_paths():
    assert glob_match("evals/cases.yaml", "cases.yaml")
    assert not glob_match("evals/cases.yml", "cases.yaml")


def test_case_files_of_a_state_use_the_configured_pattern(tmp_path):
    write(tmp_path, {"aevolve.yaml": "gate:\n  cases: evals/**/*.yaml\n", "evals/a.yaml": "", "evals/x/b.yaml": "",
                     "evals/x/b.json": "", "skills/s/SKILL.md": ""})
    assert State.from_folder(tmp_path).case_files() == ["evals/a.yaml", "evals/x/b.yaml"]
