"""`aevolve review` shows the gate's evidence: flips, outputs side by side, tags, cost, links, folding."""

from __future__ import annotations

import json
import sys
import textwrap

from test_review import propose

from aevolve._git.notes import read_gate_report, write_gate_report
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit
from aevolve._review.review import review
from aevolve._state.observations import observe

from conftest import git, make_state_repo, run_cli
from gate_support import GateRepo, cases_yaml, config_yaml

GITHUB_LIMIT = 65_536


def gated(tmp_path, answers: dict, after: dict, **kwargs) -> tuple[GateRepo, str, str]:
    """A gated evolve/x branch: (the repo, the Markdown review, the branch)."""
    from aevolve._gate.run import gate

    g = GateRepo(tmp_path, answers, cases_yaml(*answers, **kwargs))
    commit = g.answers_branch("evolve/x", **after)
    gate(g.repo, commit)
    return g, review(g.repo, "evolve/x"), commit


def test_review_shows_baseline_and_candidate_outputs_side_by_side_with_the_failing_reason(tmp_path):
    _, md, _ = gated(tmp_path, {"refund": "right", "hello": "right"},
                     {"refund": "right, within 60 days", "hello": "right"})
    section = md.split("#### Outputs, side by side")[1]
    assert "**🔴 `refund` — regression**" in section
    assert ("<tr><td><pre>right</pre></td>"
            "<td><pre>right<ins>, within 60 days</ins></pre></td></tr>") in section
    assert "- ❌ candidate: equals: output 'right, within 60 days' does not equal 'right'" in section
    assert "`hello`" not in section  # pass -> pass shows no outputs


def test_review_tag_table_and_latency_and_cost_deltas(tmp_path):
    _, md, _ = gated(tmp_path, {"a": "COST:0.5", "b": "right", "c": "wrong"},
                     {"a": "COST:0.25", "b": "wrong", "c": "right"}, tags={"a": "billing", "b": "billing"})
    assert "| `billing` | 2 | 100.0% | 50.0% | -50.0% |" in md.split("#### Pass rate by tag")[1]
    costs = md.split("#### Latency and cost")[1]
    assert "| cost total | 0.5 | 0.25 | -0.25 (-50%) |" in costs
    assert "| latency median |" in costs and "| latency p95 |" in costs


def test_review_redacts_a_secret_the_agent_printed_from_an_env_var(tmp_path, monkeypatch):
    from aevolve._gate.run import gate

    secret = "q8Zr3vLm9TxW2yPa7KdN4e"
    monkeypatch.setenv("SUPPORT_API_KEY", secret)
    agent = tmp_path / "leaky.py"
    agent.write_text(textwrap.dedent('''
        import json, os, sys
        question = json.load(sys.stdin)
        memory = open(os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "mode.txt")).read().strip()
        print(f"debug: key={os.environ['SUPPORT_API_KEY']}" if memory == "leak" else "right")
    '''))
    root = make_state_repo(tmp_path / "state", {
        "manifest.yaml": "name: t\nversion: 0.1.0\ncontract_version: '1.0'\n",
        "aevolve.yaml": config_yaml([sys.executable, "-S", str(agent)]),
        "memory/mode.txt": "quiet\n", "evals/suite.yaml": cases_yaml("a")})
    repo = Repo.open(root)
    branch = propose(repo, edits=[Edit("write", "memory/mode.txt", content="leak\n")])
    gate(repo, branch)
    note = read_gate_report(repo, git(root, "rev-parse", branch))
    assert secret not in json.dumps(note)  # redacted before the note was written
    md = review(repo, branch)
    assert secret not in md
    assert "<ins>debug: key=[REDACTED]</ins>" in md


def outputs_case(n: int, size: int) -> dict:
    def side(passes: int, text: str) -> dict:
        return {"runs": 1, "passes": passes, "errors": 0, "failures": [] if passes else ["equals: wrong"],
                "outputs": [{"repeat": 0, "passed": bool(passes), "output": text, "asserts": []}]}

    return {"id": f"case-{n:03}", "verdict": "regression", "regressed": True,
            "baseline": side(1, f"old answer {n} " * (size // 14)),
            "candidate": side(0, f"new answer {n} " * (size // 14))}


def test_review_folds_many_flips_and_stays_within_githubs_comment_limit(state_repo):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    tip, main = git(state_repo, "rev-parse", branch), git(state_repo, "rev-parse", "main")
    cases = [outputs_case(n, 1500) for n in range(60)]
    write_gate_report(repo, {"version": 1, "candidate": tip, "baseline": main, "decision": "reject",
                             "reasons": ["60 regressions"], "cases": cases})
    md = review(repo, branch)
    assert len(md) <= GITHUB_LIMIT
    assert md.count("| 🔴 regression |") == 60  # the flip table is never dropped
    assert "<details><summary>🔴 `case-000` — regression</summary>" in md  # many flips: each folded
    folded = next(line for line in md.splitlines() if "Folded to fit GitHub's 65,536-character limit" in line)
    assert "flips' outputs, tag and cost tables not shown" in folded and "git notes --ref=aevolve show" in folded


def test_review_of_an_old_note_without_outputs_says_none_were_kept(state_repo):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    tip, main = git(state_repo, "rev-parse", branch), git(state_repo, "rev-parse", "main")
    write_gate_report(repo, {"version": 1, "candidate": tip, "baseline": main, "decision": "reject", "reasons": [],
                             "cases": [{"id": "r", "verdict": "regression", "regressed": True,
                                        "baseline": {"runs": 1, "passes": 1},
                                        "candidate": {"runs": 1, "passes": 0, "failures": ["contains: no"]}}]})
    md = review(repo, branch)
    assert "| 🔴 regression | `r` | ✅ 1/1 pass | ❌ 0/1 pass | contains: no |" in md
    assert "**🔴 `r` — regression**: no outputs in this report" in md


LONG = ("Shoes can be returned within 30 days of purchase with the receipt, " + "and more words follow. " * 12
        + "The store credit clause ends it.")


def memory_branch(repo: Repo) -> str:
    content = LONG.replace("30 days", "60 days")
    record = json.dumps({"id": "m-1", "content": content}) + "\n"
    return propose(repo, edits=[Edit("write", "memory/episodic.jsonl", content=record)], title="longer window")


def test_review_full_shows_whole_memory_records_with_changed_words_marked(tmp_path):
    from conftest import SAMPLE_STATE

    root = make_state_repo(tmp_path / "s", {**SAMPLE_STATE, "memory/episodic.jsonl":
                                            json.dumps({"id": "m-1", "content": LONG}) + "\n"})
    repo = Repo.open(root)
    branch = memory_branch(repo)
    short, full = review(repo, branch), review(repo, branch, full=True)
    assert "within <del>30</del> days" in full and "within <ins>60</ins> days" in full
    end = "The store credit clause ends it."
    assert end in full and end not in short  # values are cut at 160 characters without --full


def test_diff_text_marks_changed_words_with_the_terminals_colours(tmp_path):
    from aevolve._review.diff import semantic_diff

    from conftest import SAMPLE_STATE

    root = make_state_repo(tmp_path / "s", {**SAMPLE_STATE, "memory/episodic.jsonl":
                                            json.dumps({"id": "m-1", "content": LONG}) + "\n"})
    repo = Repo.open(root)
    branch = memory_branch(repo)
    text = semantic_diff(repo, "main", branch).render("text", full=True, paint=lambda t, kind: f"<{kind}>{t}")
    assert "<-!>30" in text and "<+!>60" in text
    plain = run_cli("diff", "main", branch, "--full", cwd=root).stdout  # not a terminal: no colour
    assert "\x1b" not in plain and "\\u001b" not in plain and "The store credit clause ends it." in plain


def test_review_links_commits_and_observations_when_origin_is_on_github(state_repo, tmp_path):
    repo = Repo.open(state_repo)
    (tmp_path / "obs.jsonl").write_text(json.dumps({"id": "obs-1", "task": {"question": "Return shoes?"},
                                                    "output": "60 days",
                                                    "feedback": {"success": False, "detail": "said 60 days"},
                                                    "ts": "2025-01-01T10:00:00Z"}) + "\n")
    observe(repo, [tmp_path / "obs.jsonl"])
    branch = propose(repo, evidence=["obs-1"])
    tip = git(state_repo, "rev-parse", branch)
    plain = review(repo, branch)
    assert f"@ `{tip[:12]}`" in plain and "- ❌ `obs-1` failed — **task:** question: Return shoes?" in plain
    git(state_repo, "remote", "add", "origin", "git@github.com:acme/agent.git")
    md = review(repo, branch)
    assert f"@ [`{tip[:12]}`](https://github.com/acme/agent/commit/{tip})" in md
    obs_tip = git(state_repo, "rev-parse", "refs/aevolve/observations")
    assert f"[`obs-1`](https://github.com/acme/agent/blob/{obs_tip}/batches/" in md
    assert "**feedback:** detail: said 60 days" in md
