"""`aevolve cases import promptfoo`: promptfoo tests as gate cases, and JavaScript regexes in Python."""

from __future__ import annotations

import re

import pytest
import yaml

from aevolve._ecosystem.jsregex import Untranslatable, translate

from conftest import make_state_repo, run_cli, write


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    """The command, whether or not cli/__init__.py lists it yet."""
    from aevolve import cli

    monkeypatch.setitem(cli.COMMANDS, "cases", "aevolve.cli.cases_cmds:cases_cmd")


@pytest.fixture
def repo(tmp_path):
    return make_state_repo(tmp_path / "st")


def convert(repo, config: str, *extra, files: dict | None = None):
    write(repo.parent, {"pf/promptfooconfig.yaml": config, **(files or {})})
    return run_cli("-C", repo, "cases", "import", "promptfoo", repo.parent / "pf/promptfooconfig.yaml", *extra)


def cases(repo, name: str = "evals/promptfoo.yaml") -> list[dict]:
    return yaml.safe_load((repo / name).read_text())


# -- regexes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("js", "text", "matches"), [
    (r"(?<year>\d{4})-\d\d", "in 2024-05", True),
    (r"^ok$", "ok\n", False),  # JavaScript's $ is the end; Python's also matches before a final newline
    (r"\d", "\u0663", False),  # an Arabic-Indic digit is \d to Python, not to JavaScript
    (r"\w+", "\u00e9", False),
    (r"a.b", "a\rb", False),  # JavaScript's . stops at \r too
    (r"\s", "\ufeff", True),
    (r"\Aab\Z", "AabZ", True),  # identity escapes: the letters themselves
    (r"a{,2}", "a{,2}", True),  # a literal brace in JavaScript, a quantifier in Python
    (r"[\w-z]", "-", True),
    (r"[^]", "\n", True),
])
def test_javascript_regexes_translate_to_the_same_verdict(js, text, matches):
    assert (re.search(translate(js), text) is not None) is matches


@pytest.mark.parametrize("js", [r"(?i)abc", r"a*+", r"(a)\1", r"(?<n>a)\k<n>", "\U0001F600+", r"[\S]"])
def test_regexes_without_a_faithful_translation_are_refused(js):
    with pytest.raises(Untranslatable):
        translate(js)


def test_named_groups_become_python_named_groups():
    assert re.search(translate(r"(?<word>\w+)!"), "hi!").group("word") == "hi"


# -- the converter ----------------------------------------------------------------------------


CONFIG = """\
prompts: ["Answer: {{question}}"]
defaultTest:
  vars: {tone: polite}
  assert:
    - type: not-icontains
      value: as an AI
  metadata: {suite: faq}
tests:
  - description: capital
    vars: {question: "Capital of France?", city: Paris}
    assert:
      - type: contains
        value: "{{city}}"
        metric: accuracy
      - type: regex
        value: '^Paris\\b'
  - vars: {question: "2+2"}
    assert:
      - {type: equals, value: 4}
"""


def test_tests_become_cases_with_default_test_merged(repo):
    result = convert(repo, CONFIG)
    assert result.returncode == 0, result.stderr
    first, second = cases(repo)
    assert first["input"] == {"tone": "polite", "question": "Capital of France?", "city": "Paris"}
    assert first["description"] == "capital"
    assert [a["type"] for a in first["assert"]] == ["not-icontains", "contains", "regex"]
    assert first["assert"][1]["value"] == "Paris"  # {{city}} filled in from the test's vars
    assert first["tags"] == ["accuracy"]
    assert first["metadata"]["suite"] == "faq"
    assert second["assert"][1] == {"type": "equals", "value": "4"}  # promptfoo compares String(4)


def test_the_written_case_file_passes_validate(repo):
    assert convert(repo, CONFIG).returncode == 0
    result = run_cli("validate", repo)
    assert result.returncode == 0, result.stdout


def test_csv_tests_read_expected_columns(repo):
    config = "tests: file://cases.csv\n"
    csv = 'question,__expected1,__expected2,__description\nhi,"icontains-any:hello,hey",regex:^h,greeting\n2+2,4,,sum\n'
    result = convert(repo, config, files={"pf/cases.csv": csv})
    assert result.returncode == 0, result.stderr
    first, second = cases(repo)
    assert first["input"] == {"question": "hi"} and first["description"] == "greeting"
    assert first["assert"][0] == {"type": "icontains-any", "value": ["hello", "hey"]}
    assert first["assert"][1]["type"] == "regex"
    assert second["assert"] == [{"type": "equals", "value": "4"}]


def test_list_vars_expand_into_one_case_per_combination(repo):
    config = "tests:\n  - vars: {q: [a, b], r: [x, y]}\n    assert: [{type: contains, value: a}]\n"
    assert convert(repo, config).returncode == 0
    assert [c["input"] for c in cases(repo)] == [{"q": "a", "r": "x"}, {"q": "a", "r": "y"},
                                                 {"q": "b", "r": "x"}, {"q": "b", "r": "y"}]


def test_a_javascript_assertion_is_refused_with_its_place_and_nothing_is_written(repo):
    config = CONFIG + "  - vars: {q: x}\n    assert:\n      - {type: javascript, value: output.length < 9}\n"
    result = convert(repo, config)
    assert result.returncode == 3
    assert "promptfooconfig.yaml test 3: assertion 2 (javascript)" in result.stderr
    assert not (repo / "evals/promptfoo.yaml").exists()


def test_partial_writes_the_tests_that_convert(repo):
    config = CONFIG + "  - vars: {q: x}\n    assert:\n      - {type: javascript, value: output.length < 9}\n"
    result = convert(repo, config, "--partial")
    assert result.returncode == 0
    assert len(cases(repo)) == 2
    assert "not converted: promptfooconfig.yaml test 3" in result.stderr


def test_an_untranslatable_regex_is_refused_with_the_test(repo):
    config = "tests:\n  - vars: {q: x}\n    assert:\n      - {type: regex, value: '(?i)yes'}\n"
    result = convert(repo, config)
    assert result.returncode == 3 and "test 1: assertion 1 (regex)" in result.stderr


def test_a_test_threshold_is_refused(repo):
    config = "tests:\n  - threshold: 0.5\n    assert: [{type: contains, value: a}, {type: contains, value: b}]\n"
    result = convert(repo, config)
    assert result.returncode == 3 and "weighted score" in result.stderr


def test_assertion_thresholds_and_weights_carry_over(repo):
    config = "tests:\n  - assert:\n      - {type: llm-rubric, value: is polite, threshold: 0.8, weight: 2}\n"
    assert convert(repo, config).returncode == 0
    assert cases(repo)[0]["assert"] == [{"type": "llm-rubric", "value": "is polite", "threshold": 0.8, "weight": 2}]


def test_python_checks_must_be_files_under_evals(repo):
    config = "tests:\n  - assert:\n      - {type: python, value: 'file://../st/evals/checks.py:short'}\n"
    assert convert(repo, config).returncode == 0
    assert cases(repo)[0]["assert"] == [{"type": "python", "value": "evals/checks.py:short"}]
    inline = "tests:\n  - assert:\n      - {type: python, value: 'len(output) < 9'}\n"
    result = convert(repo, inline, "-o", "evals/two.yaml")
    assert result.returncode == 3 and "inline python" in result.stderr


def test_the_output_must_be_a_new_file_under_evals(repo):
    outside = convert(repo, CONFIG, "-o", "prompts/cases.yaml")
    assert outside.returncode == 2 and "must go under" in outside.stderr
    assert convert(repo, CONFIG).returncode == 0
    again = convert(repo, CONFIG)
    assert again.returncode == 2 and "does not overwrite" in again.stderr
