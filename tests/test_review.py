"""`aevolve review BRANCH`: the pull-request body, on real repositories with notes."""

from __future__ import annotations

import json

from aevolve._git.notes import write_gate_report
from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit, Proposal
from aevolve._propose.run import commit_proposal
from aevolve._review.review import build_review, review
from aevolve._state.observations import observe

from conftest import git


def propose(repo: Repo, evidence=(), edits=None, title="sharpen the system prompt") -> str:
    proposal = Proposal(
        title=title,
        diagnosis="Answers ran long; 3 of 4 failed tasks exceeded the length limit.",
        change="Rewrites prompts/system.md to ask for one sentence.",
        expected_effect="Fixes the length failures; no effect on refunds.",
        edits=edits or [
            Edit("write", "prompts/system.md", content="You are a support agent.\nAnswer in one sentence.\n"),
        ],
        evidence=list(evidence),
    )
    result = commit_proposal(repo, "main", proposal, "rules")
    return result.branch


def case(cid, verdict, base_passes, cand_passes, regressed=False, failures=()):
    return {"id": cid, "verdict": verdict, "regressed": regressed,
            "baseline": {"runs": 1, "passes": base_passes, "errors": 0, "pass_rate": float(base_passes)},
            "candidate": {"runs": 1, "passes": cand_passes, "errors": 0, "pass_rate": float(cand_passes),
                          "failures": list(failures)}}


def note(repo: Repo, commit: str, baseline: str, decision: str, cases: list[dict], reasons=("gate said so",)):
    write_gate_report(repo, {
        "version": 1, "candidate": commit, "baseline": baseline, "decision": decision, "reasons": list(reasons),
        "cases": cases, "regressions": [c["id"] for c in cases if c.get("regressed")],
        "improvements": [c["id"] for c in cases if c["verdict"] == "improvement"], "errors": [],
        "summary": {"baseline_pass_rate": 0.5, "candidate_pass_rate": 0.75, "gain": 0.25},
    })


def test_review_shows_subject_rationale_and_the_semantic_diff(state_repo):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    md = review(repo, branch)
    assert md.startswith("## evolve(prompts): sharpen the system prompt\n")
    for heading in ("### Diagnosis", "### Change", "### Expected effect", "### Semantic diff"):
        assert heading in md
    assert "3 of 4 failed tasks exceeded the length limit." in md
    assert "+Answer in one sentence." in md and "```diff" in md
    assert md.index("### Diagnosis") < md.index("### Semantic diff") < md.index("### Gate results")


def test_review_without_a_note_says_not_gated_yet(state_repo):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    assert f"**Not gated yet** — run `aevolve gate {branch}`." in review(repo, branch)


def test_review_flip_table_lists_regressions_then_fixes_then_still_failing(state_repo):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    tip, main = git(state_repo, "rev-parse", branch), git(state_repo, "rev-parse", "main")
    note(repo, tip, main, "reject", [
        case("speedy", "improvement", 0, 1),
        case("refund-window", "regression", 1, 0, regressed=True, failures=["expected to contain '30 days'"]),
        case("greeting", "pass", 1, 1), case("shipping", "fail", 0, 0)],
        reasons=["1 case(s) pass on the baseline but fail on the candidate: refund-window"])
    md = review(repo, branch)
    assert "❌ **rejected** — pass rate 50.0% → 75.0% (+25.0%) over 4 cases." in md
    assert (md.index("| 🔴 regression | `refund-window`") < md.index("| 🟢 fix | `speedy`")
            < md.index("| ⚪ still failing | `shipping`"))
    assert "| 🔴 regression | `refund-window` | ✅ 1/1 pass | ❌ 0/1 pass | expected to contain '30 days' |" in md
    assert "P→F 1 · F→P 1 · F→F 1 · P→P 1" in md
    assert "`greeting`" not in md.split("#### Flips")[1]  # pass -> pass is no flip
    assert "2 cases unchanged." in md
    assert "stale" not in md


def test_review_flags_a_note_gated_against_an_older_main(state_repo):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    old_main = git(state_repo, "rev-parse", "main")
    note(repo, git(state_repo, "rev-parse", branch), old_main, "accept", [case("greeting", "pass", 1, 1)])
    (state_repo / "prompts/extra.md").write_text("More.\n")
    git(state_repo, "add", "-A")
    git(state_repo, "commit", "-q", "-m", "main moves on")
    new_main = git(state_repo, "rev-parse", "main")
    md = review(repo, branch)
    assert f"**stale:** gated against `{old_main[:12]}`, main is now `{new_main[:12]}`" in md
    # the diff is taken from the merge base: main's later commit is not shown reversed
    assert "prompts/extra.md" not in md


def test_review_quotes_each_cited_observation_and_notes_missing_ones(state_repo, tmp_path):
    repo = Repo.open(state_repo)
    obs = [{"id": "obs-1", "task": "Can I return shoes after 40 days? " + "Please explain. " * 40,
            "output": "Yes, of course.", "feedback": {"success": False, "expected": "30 days, then store credit"},
            "ts": "2025-01-01T10:00:00Z"}]
    (tmp_path / "obs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in obs))
    observe(repo, [tmp_path / "obs.jsonl"])
    branch = propose(repo, evidence=["obs-1", "obs-404"])
    md = review(repo, branch)
    assert "### Evidence (2 observations)" in md
    line = next(line for line in md.splitlines() if "`obs-1`" in line)
    assert line.startswith("- ❌ `obs-1` failed — **task:** Can I return shoes after 40 days?")
    assert "  **feedback:** expected: 30 days, then store credit  \n  **output:** Yes, of course." in md
    assert len(line) < 600 and "…" in line  # shortened
    assert "`obs-404` — _not found in refs/aevolve/observations_" in md


def test_review_output_file_and_json(state_repo, cli, tmp_path):
    repo = Repo.open(state_repo)
    branch = propose(repo)
    body = tmp_path / "body.md"
    proc = cli("review", branch, "--output", body, cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and body.read_text() == review(repo, branch)
    data = json.loads(cli("review", branch, "--json", cwd=state_repo).stdout)
    assert data["branch"] == branch and data["rationale"]["evolver"] == "rules"
    assert data["gate"] == {"status": "absent"}
    assert data["diff"]["files"][0]["path"] == "prompts/system.md"


def test_review_of_a_plain_git_branch_shows_its_message(state_repo):
    git(state_repo, "checkout", "-q", "-b", "feature")
    (state_repo / "prompts/system.md").write_text("Hand edit.\n")
    git(state_repo, "commit", "-q", "-am", "hand edit\n\nA person tuned the prompt.")
    md = build_review(Repo.open(state_repo), "feature").markdown()
    assert "_Not an aevolve proposal" in md and "A person tuned the prompt." in md


def test_review_of_an_unknown_branch_is_a_clear_error(state_repo, cli):
    proc = cli("review", "evolve/nope", cwd=state_repo)
    assert proc.returncode == 1 and "unknown revision 'evolve/nope'" in proc.stderr


# -- secrets never leave the machine -----------------------------------------------------

RUN_KEY = "sk-run-key-of-this-machine-0123456789"


def leaky_note(repo: Repo, branch: str, state_repo) -> None:
    tip, main = git(state_repo, "rev-parse", branch), git(state_repo, "rev-parse", "main")
    note(repo, tip, main, "reject", [
        case("refund-window", "regression", 1, 0, regressed=True, failures=[f"runner stderr: auth {RUN_KEY} failed"])],
        reasons=[f"runner printed {RUN_KEY}"])


def test_cli_review_prints_a_gate_notes_secret_values_redacted(state_repo, monkeypatch):
    from click.testing import CliRunner

    from aevolve.cli import cli

    repo = Repo.open(state_repo)
    branch = propose(repo)
    leaky_note(repo, branch, state_repo)
    monkeypatch.setenv("OPENAI_API_KEY", RUN_KEY)  # after the note: review must not rely on the writer

    result = CliRunner().invoke(cli, ["-C", str(state_repo), "review", branch])

    assert result.exit_code == 0, result.output
    assert RUN_KEY not in result.output
    assert "- runner printed [REDACTED]" in result.output
    assert "runner stderr: auth [REDACTED] failed" in result.output


def test_review_json_is_redacted_too(state_repo, monkeypatch):
    from click.testing import CliRunner

    from aevolve.cli import cli

    repo = Repo.open(state_repo)
    branch = propose(repo)
    leaky_note(repo, branch, state_repo)
    monkeypatch.setenv("OPENAI_API_KEY", RUN_KEY)  # after the note: review must not rely on the writer

    result = CliRunner().invoke(cli, ["-C", str(state_repo), "review", branch, "--json"])

    assert result.exit_code == 0, result.output
    assert RUN_KEY not in result.output
    assert json.loads(result.output)["gate"]["reasons"] == ["runner printed [REDACTED]"]


def test_review_redacts_the_key_variable_aevolve_yaml_names(tmp_path, monkeypatch):
    from aevolve._config import TEMPLATE

    from conftest import SAMPLE_STATE, make_state_repo

    files = {**SAMPLE_STATE,
             "aevolve.yaml": TEMPLATE.replace("api_key_env: OPENAI_API_KEY", "api_key_env: LLM_CREDENTIAL")}
    root = make_state_repo(tmp_path / "state", files)
    repo = Repo.open(root)
    branch = propose(repo)
    leaky_note(repo, branch, root)
    monkeypatch.setenv("LLM_CREDENTIAL", RUN_KEY)

    md = review(repo, branch)

    assert RUN_KEY not in md and "runner printed [REDACTED]" in md
