"""`aevolve report`: the data model from main's history and the gate notes, its HTML and JSON."""

from __future__ import annotations

import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aevolve._git.notes import dump_report
from aevolve._git.repo import Repo
from aevolve._propose.rationale import Rationale
from aevolve._report.history import build_report
from aevolve._report.page import MAX_GRID_COLUMNS, render

from conftest import git, isolated_git_env, make_state_repo, run_cli, verdict_for

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_report.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo repository (one promotion, one rejected proposal), built once."""
    with isolated_git_env(tmp_path_factory):
        root = tmp_path_factory.mktemp("report-demo") / "demo"
        proc = run_cli("demo", root, "--json")
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def long_history(tmp_path_factory) -> tuple[Path, dict]:
    """200 promotions on main and 66 rejected proposals, written in process."""
    with isolated_git_env(tmp_path_factory):
        root = tmp_path_factory.mktemp("report-long") / "state"
        built = bench_module().build_history(root, 200)
    return root, built


class Page(HTMLParser):
    """What the tests read from a page: tags, ids, links, attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}

    def links(self) -> list[str]:
        return [a["href"] for t, a in self.tags if t == "a" and "href" in a]

    def of_class(self, tag: str, css: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and css in (a.get("class") or "").split()]


def evolve_on_main(repo: Repo, title: str, path: str, data: bytes, evolver: str = "rules") -> str:
    """An evolver commit on top of main (main moves; the checkout is not the point here)."""
    parent = repo.ref_target("refs/heads/main")
    message = Rationale(title=title, layer="skills", diagnosis="diagnosis text", change="change text",
                        expected_effect="effect text", proposal_id="p-test", evolver=evolver, base=parent).message()
    sha = str(repo.commit(repo.build_tree(repo.tree(parent), {path: data}), [parent], message))
    repo.update_ref("refs/heads/main", sha, parent)
    return sha


def case(case_id: str, before: bool, after: bool, tags: list[str] | None = None) -> dict:
    return {"id": case_id, "tags": tags or [], "threshold": 1.0,
            "baseline": {"runs": 1, "passes": int(before)}, "candidate": {"runs": 1, "passes": int(after)}}


# -- the demo repository ------------------------------------------------------------------


def test_report_of_the_demo_has_its_promotion_with_flips_and_its_rejection_with_the_reason(demo):
    report = build_report(Repo.open(demo))

    start, promoted = report.versions
    assert start.start and not start.promotion and start.measured == "next commit's baseline"
    assert promoted.promotion and promoted.evolver == "rules"
    assert promoted.fixed == ["password-reset", "shipping-time"] and promoted.broke == []
    assert promoted.rationale["diagnosis"] and promoted.title.startswith("learn")
    assert [f["path"] for f in promoted.files] == ["memory/lessons.jsonl"]
    (rejected,) = report.proposals
    assert rejected.status == "rejected" and rejected.baseline == promoted.commit
    assert rejected.broke == ["refund-window"] and "refund-window" in rejected.reasons[0]
    assert report.summary()["pass_rate"] == 1.0 and report.summary()["rejections"] == 1


def test_report_of_the_demo_has_a_pass_state_per_case_and_version_and_per_tag_rates(demo):
    report = build_report(Repo.open(demo))

    start, promoted = report.versions
    assert start.cases["shipping-time"] is False and promoted.cases["shipping-time"] is True
    assert set(report.case_ids) == set(promoted.cases) and len(report.case_ids) == 6
    assert report.tags and start.tag_rates["shipping"] == 0.0 and promoted.tag_rates["shipping"] == 1.0


def test_report_of_the_demo_counts_per_evolver_proposals_acceptance_and_gain(demo):
    (rules,) = build_report(Repo.open(demo)).evolvers

    assert (rules.name, rules.proposals, rules.promoted, rules.rejected) == ("rules", 2, 1, 1)
    assert rules.acceptance_rate == 0.5 and rules.mean_gain == pytest.approx(1 / 3, abs=1e-5)


def test_html_of_the_demo_has_a_point_per_version_and_a_cross_per_rejection(demo):
    report = build_report(Repo.open(demo))
    page = Page(render(report))

    points = page.of_class("circle", "point")
    assert [p["data-commit"] for p in points] == [v.short for v in report.versions]
    assert len(page.of_class("circle", "promotion")) == 1
    assert [p["data-commit"] for p in page.of_class("path", "rejected")] == [report.proposals[0].short]


def test_every_link_of_the_demo_page_is_an_anchor_of_the_page(demo):
    page = Page(render(build_report(Repo.open(demo))))

    links = page.links()
    assert links and all(link.startswith("#") for link in links)
    assert {link[1:] for link in links} <= page.ids()
    for v in build_report(Repo.open(demo)).versions:  # each version: its rationale, flips and files
        assert {f"c-{v.commit}-rationale", f"c-{v.commit}-flips", f"c-{v.commit}-files"} <= page.ids()


def test_the_page_has_no_script_no_event_handler_and_nothing_to_load(demo):
    text = render(build_report(Repo.open(demo)))
    page = Page(text)

    assert not [t for t, _ in page.tags if t in ("script", "img", "link", "iframe", "object", "embed")]
    assert not [k for _, a in page.tags for k in a if k.startswith("on")]
    assert not re.search(r"(?i)(https?|ftp|wss?):", text)


def test_report_command_writes_the_page_to_a_file(demo, tmp_path):
    out = tmp_path / "report.html"
    proc = run_cli("report", "-o", out, cwd=demo)

    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert f"wrote {out}: 2 version(s), 1 promotion(s), 1 rejected proposal(s)" in proc.stderr


# -- json -------------------------------------------------------------------------------------


def test_json_has_the_documented_shape(demo):
    proc = run_cli("report", "--format", "json", cwd=demo)

    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"format", "version", "generated", "main", "base", "since", "all", "summary", "notes",
                         "versions", "proposals", "cases", "tags", "evolvers", "commit_url"}
    assert (data["format"], data["version"]) == ("aevolve-report", 1)
    assert set(data["summary"]) == {"versions", "promotions", "ungated", "rejections", "pending", "cases",
                                    "pass_rate", "pass_rate_at", "first_pass_rate"}
    assert set(data["versions"][0]) == {
        "commit", "short", "parent", "date", "subject", "aevolve", "evolver", "proposal_id", "title", "layer",
        "rationale", "evidence", "decision", "measured", "pass_rate", "baseline_pass_rate", "gain", "reasons",
        "tag_rates", "fixed", "broke", "cases", "latency", "cost", "files", "files_more", "start", "promotion"}
    assert set(data["proposals"][0]) == {
        "commit", "short", "status", "baseline", "date", "subject", "title", "evolver", "branch", "reasons",
        "pass_rate", "baseline_pass_rate", "gain", "fixed", "broke"}
    assert set(data["evolvers"][0]) == {"name", "proposals", "promoted", "rejected", "pending", "acceptance_rate",
                                        "mean_gain"}


def test_json_and_html_tell_the_same_counts(demo):
    data = json.loads(run_cli("report", "--format", "json", cwd=demo).stdout)
    page = Page(run_cli("report", cwd=demo).stdout)

    assert len(page.of_class("circle", "point")) == data["summary"]["versions"]
    assert len(page.of_class("path", "rejected")) == data["summary"]["rejections"]


# -- a long generated history --------------------------------------------------------------


def test_long_history_has_every_promotion_and_rejection(long_history):
    root, built = long_history
    report = build_report(Repo.open(root))

    assert [v.commit for v in report.versions] == built["main"]
    summary = report.summary()
    assert (summary["promotions"], summary["rejections"]) == (200, built["rejected"]) == (200, 66)
    assert all(p.baseline in set(built["main"]) and p.broke for p in report.proposals)
    assert {e.name: (e.promoted, e.rejected) for e in report.evolvers} == {
        "rules": (66, 22), "openai": (67, 22), "patch": (67, 22)}


def test_long_history_page_links_every_point_and_bounds_the_grid(long_history):
    root, _ = long_history
    report = build_report(Repo.open(root))
    page = Page(render(report))

    assert len(page.of_class("circle", "point")) == 201
    assert {link[1:] for link in page.links()} <= page.ids()
    columns = page.of_class("th", "col")
    assert 2 <= len(columns) <= MAX_GRID_COLUMNS
    assert len(page.of_class("td", "cell")) == len(columns) * len(report.case_ids) == len(columns) * 20


def test_long_history_records_latency_and_cost_per_version(long_history):
    root, _ = long_history
    report = build_report(Repo.open(root))

    last = report.versions[-1]
    assert last.latency is not None and last.latency["cases"] == 20 and last.latency["median_ms"] > 0
    assert last.cost is not None and last.cost["total"] > 0
    assert not any("latency" in n or "cost" in n for n in report.notes)


def test_since_starts_the_history_at_the_given_commit(long_history):
    root, built = long_history
    since = built["main"][150]
    data = json.loads(run_cli("report", "--since", since, "--format", "json", cwd=root).stdout)

    assert [v["commit"] for v in data["versions"]] == built["main"][150:]
    assert data["since"] == since and data["versions"][0]["start"] and not data["versions"][0]["promotion"]
    assert data["summary"]["promotions"] == 50
    assert {p["baseline"] for p in data["proposals"]} <= set(built["main"][150:])
    assert any("outside the shown history" in n for n in data["notes"])


def test_since_a_commit_off_main_is_a_usage_error(long_history):
    root, _ = long_history
    off_main = git(root, "for-each-ref", "--format=%(objectname)", "--count=1", "refs/heads/evolve/")
    proc = run_cli("report", "--since", off_main, "--format", "json", cwd=root)

    assert proc.returncode == 2
    assert "is not on main's first-parent history" in proc.stderr


# -- --all ---------------------------------------------------------------------------------


def test_all_adds_branches_never_gated_and_accepted_proposals_not_promoted(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    main = repo.ref_target("refs/heads/main")
    pending = str(repo.commit(repo.build_tree(repo.tree(main), {"prompts/system.md": b"new\n"}), [main], "hand\n"))
    repo.create_ref("refs/heads/evolve/never-gated", pending)
    waiting = str(repo.commit(repo.build_tree(repo.tree(main), {"prompts/system.md": b"other\n"}), [main], "x\n"))
    repo.write_note(waiting, dump_report(verdict_for(repo, waiting, "accept")))

    assert build_report(repo).proposals == []
    shown = {p.commit: p.status for p in build_report(repo, all=True).proposals}
    assert shown == {pending: "ungated", waiting: "accepted"}


# -- hostile words and notes -----------------------------------------------------------------


HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_model_written_words_are_escaped(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    sha = evolve_on_main(repo, "learn " + HOSTILE, "skills/x/SKILL.md", b"x\n")
    report = verdict_for(repo, sha, "accept", reasons=[HOSTILE],
                         cases=[case(HOSTILE, False, True, tags=[HOSTILE]), case("plain", True, True)])
    repo.write_note(sha, dump_report(report))
    text = render(build_report(repo))
    page = Page(text)

    assert "<script" not in text and "<img" not in text
    assert not [k for _, a in page.tags for k in a if k.startswith("on")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert {link[1:] for link in page.links()} <= page.ids()


def test_malformed_notes_are_read_as_absent_fields_not_errors(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    sha = evolve_on_main(repo, "learn", "skills/x/SKILL.md", b"x\n")
    report = verdict_for(repo, sha, "accept", summary="not a dict", reasons="nor a list",
                         cases=[{"id": 3}, "text", {"id": "a", "candidate": {"runs": "x", "passes": None}},
                                {"id": "b", "threshold": "high", "candidate": {"runs": 2, "passes": 9,
                                                                               "latency_ms": float("nan")}}])
    repo.write_note(sha, dump_report(report))
    data = json.loads(run_cli("report", "--format", "json", cwd=repo.workdir).stdout)

    version = data["versions"][-1]
    assert version["cases"] == {"a": None, "b": True} and version["pass_rate"] == 1.0
    assert version["reasons"] == [] and version["latency"] is None


def test_a_rejected_note_with_a_baseline_that_is_not_a_commit_id_is_left_out(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    main = repo.ref_target("refs/heads/main")
    odd = str(repo.commit(repo.build_tree(repo.tree(main), {"prompts/system.md": b"odd\n"}), [main], "odd\n"))
    repo.write_note(odd, dump_report(verdict_for(repo, odd, "reject", baseline=[main])))

    report = build_report(repo)
    assert report.proposals == [] and any("outside the shown history" in n for n in report.notes)


def test_a_note_that_names_another_candidate_is_ignored_and_said(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    first = evolve_on_main(repo, "one", "skills/x/SKILL.md", b"1\n")
    second = evolve_on_main(repo, "two", "skills/x/SKILL.md", b"2\n")
    repo.write_note(second, dump_report(verdict_for(repo, first, "accept")))  # first's verdict, copied

    report = build_report(repo)
    assert report.versions[-1].decision is None
    assert any("1 note(s)" in n for n in report.notes)


def test_per_tag_rates_are_skipped_with_a_note_when_no_case_has_tags(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    sha = evolve_on_main(repo, "learn", "skills/x/SKILL.md", b"x\n")
    repo.write_note(sha, dump_report(verdict_for(repo, sha, "accept", cases=[case("a", False, True)])))
    report = build_report(repo)

    assert report.tags == [] and report.versions[-1].tag_rates == {}
    assert any("no case carries tags" in n for n in report.notes)
    assert "No case carries tags" in render(report)


def test_commits_link_to_github_when_origin_is_there(tmp_path):
    root = make_state_repo(tmp_path / "state")
    git(root, "remote", "add", "origin", "git@github.com:acme/agent.git")
    repo = Repo.open(root)
    report = build_report(repo)

    assert report.commit_url == "https://github.com/acme/agent/commit/"
    page = Page(render(report))
    remote = [a for a in page.of_class("a", "remote")]
    assert remote and all(a["rel"] == "noopener noreferrer" for a in remote)
    assert remote[0]["href"] == "https://github.com/acme/agent/commit/" + report.main


def test_a_repository_with_only_its_first_commit_reports_one_version(tmp_path):
    root = make_state_repo(tmp_path / "state")
    proc = run_cli("report", "--format", "json", cwd=root)

    data = json.loads(proc.stdout)
    assert data["summary"]["versions"] == 1 and data["summary"]["pass_rate"] is None
    assert Page(run_cli("report", cwd=root).stdout).of_class("path", "ungated")
