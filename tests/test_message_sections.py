"""One parser reads rationale sections, for `aevolve` and for the commit-msg hook alike."""

from __future__ import annotations

from aevolve._hooks.client import missing_sections
from aevolve._propose.rationale import parse, sections

MESSAGE = """evolve(memory): learn a lesson

Diagnosis:
obs-1 failed: the agent quoted 40 days.
  Aevolve-Base: not a trailer (indented)
Change:
Appends one lesson.
Expected effect:
Refund questions get 30 days.

Aevolve-Proposal: p-1
Aevolve-Evidence: obs-1
"""


def test_sections_split_at_each_header_and_stop_at_the_trailers():
    found = sections(MESSAGE)
    assert found["Diagnosis"] == "obs-1 failed: the agent quoted 40 days.\n  Aevolve-Base: not a trailer (indented)"
    assert found["Change"] == "Appends one lesson."
    assert found["Expected effect"] == "Refund questions get 30 days."


def test_an_inline_section_in_any_case_counts_for_the_hook_and_the_parser_alike():
    message = "fix: prompt\n\ndiagnosis: answers ran long\n"
    assert sections(message, ["Diagnosis"]) == {"Diagnosis": "answers ran long"}
    assert missing_sections(message, ["Diagnosis"]) == []


def test_an_unknown_header_ends_the_section_before_it():
    found = sections("s\n\nDiagnosis:\nreal text\nNotes:\nnot part of it\n", ["Diagnosis"])
    assert found == {"Diagnosis": "real text"}


def test_the_subject_is_never_a_section():
    assert sections("Diagnosis: in the subject\n\nbody\n", ["Diagnosis"]) == {}


def test_a_required_section_given_as_a_trailer_is_not_missing():
    assert missing_sections(MESSAGE, ["Diagnosis", "Evidence", "Risk"]) == ["Risk"]


def test_parse_reads_the_rationale_back():
    rationale = parse(MESSAGE)
    assert rationale is not None and rationale.layer == "memory" and rationale.evidence == ["obs-1"]
    assert rationale.change == "Appends one lesson."
