"""Working as a team over a remote: a bare origin with the server hook and clones of it
promote and publish with `promote --push`, see every verdict in plain `git log`, prune,
and name proposals by their id."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_hooks_server import copy_remote, remote_template

from aevolve._git.notes import LOG_REF, parse_report
from aevolve._git.repo import MAIN, NOTES_REF, Repo
from aevolve._remote import publish as publish_mod
from aevolve._remote.publish import publish_promotion

from conftest import SAMPLE_STATE, admissible, git, make_state_repo, run_cli, write

AGENT = """\
import json, os, sys
json.load(sys.stdin)
memory = open(os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "episodic.jsonl")).read()
print(" ".join(json.loads(l).get("content", "") for l in memory.splitlines() if l.strip()))
"""
STATE = {**SAMPLE_STATE, "agent/run.py": AGENT,
         "aevolve.yaml": f"gate:\n  runner: [{json.dumps(sys.executable)}, -S, agent/run.py]\n  jobs: 1\n"}
CLONES = ("alice", "bob", "carol")


def _build(root):
    source = make_state_repo(root / "state", STATE)
    bare = root / "origin.git"
    git(root, "clone", "-q", "--bare", str(source), str(bare))
    assert run_cli("hooks", "install", "--server", bare).returncode == 0
    for name in CLONES:
        git(root, "clone", "-q", str(bare), str(root / name))
        assert run_cli("init", root / name).returncode == 0  # a clone: configures only


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    return remote_template(tmp_path_factory, _build)


@pytest.fixture
def team(_template, tmp_path):
    """(origin, alice, bob, carol): a bare origin with the server hook and three clones."""
    return copy_remote(_template, tmp_path, bare="origin.git", clones=CLONES)


def remember(clone, branch: str, record_id: str, content: str, proposal: str | None = None) -> str:
    """An evolution branch (built from objects, as propose does) adding one memory record."""
    repo = Repo.open(clone)
    base = repo.ref_target(MAIN)
    memory = repo.read(repo.resolve(base).tree, "memory/episodic.jsonl").decode()
    data = (memory + json.dumps({"id": record_id, "content": content}) + "\n").encode()
    message = f"evolve(memory): {record_id}\n" + (f"\nAevolve-Proposal: {proposal}\n" if proposal else "")
    commit = str(repo.commit(repo.build_tree(repo.resolve(base).tree, {"memory/episodic.jsonl": data}),
                             [base], message))
    repo.create_ref(f"refs/heads/{branch}", commit)
    return commit


def memory_ids(repo_path, rev: str = "main") -> list[str]:
    text = git(repo_path, "show", f"{rev}:memory/episodic.jsonl")
    return [json.loads(line)["id"] for line in text.splitlines()]


def first_parents(repo_path, rev: str = "main") -> list[str]:
    return git(repo_path, "rev-list", "--first-parent", rev).split()


# -- promote --push ------------------------------------------------------------------


def test_promote_push_publishes_main_its_notes_the_display_notes_and_the_branch(team):
    origin, alice, _bob, _carol = team
    cand = remember(alice, "evolve/a", "r-a", "fact a")

    result = run_cli("promote", "evolve/a", "--push", cwd=alice)

    assert result.returncode == 0, result.stderr
    assert git(origin, "rev-parse", "main") == cand
    assert git(origin, "rev-parse", "evolve/a") == cand
    assert parse_report(git(origin, "notes", "--ref", "aevolve", "show", cand).encode())["decision"] == "accept"
    assert "gate: ACCEPT" in git(origin, "notes", "--ref", LOG_REF, "show", cand)
    assert git(alice, "rev-parse", "main") == cand  # the local main followed


def test_the_loser_of_a_push_race_syncs_rebases_regates_and_publishes(team, monkeypatch):
    origin, alice, bob, _carol = team
    remember(alice, "evolve/a", "r-a", "fact a")
    theirs = remember(bob, "evolve/b", "r-b", "fact b")
    real_push, calls = publish_mod.push, []

    def alice_pushes_first(repo, remote, specs, leases=None):
        calls.append(specs)
        if len(calls) == 1:  # bob has synced and gated; alice publishes before his push arrives
            assert publish_promotion(Repo.open(alice), "evolve/a").pushed
        return real_push(repo, remote, specs, leases)

    monkeypatch.setattr(publish_mod, "push", alice_pushes_first)
    published = publish_promotion(Repo.open(bob), "evolve/b")

    assert published.attempts == 2 and len(published.losses) == 1
    assert published.promotion.rebased and published.promotion.gated
    tip = git(origin, "rev-parse", "main")
    assert tip == published.promotion.new != theirs
    assert memory_ids(origin) == ["m-1", "r-a", "r-b"]  # same file, both records
    assert git(origin, "rev-parse", "evolve/b") == tip  # the rebased branch was published (forced, leased)
    assert all(admissible(Repo.open(bob), c) for c in first_parents(bob)[:2])


def test_gate_promote_push_publishes_like_promote_push(team):
    origin, _alice, bob, _carol = team
    cand = remember(bob, "evolve/g", "r-g", "fact g")
    result = run_cli("gate", "evolve/g", "--promote", "--push", "origin", cwd=bob)
    assert result.returncode == 0, result.stderr
    assert git(origin, "rev-parse", "main") == cand
    assert "published origin" in result.stdout


def test_promote_push_promotes_a_teammates_branch_known_only_as_remote_tracking(team):
    origin, alice, bob, _carol = team
    cand = remember(alice, "evolve/shared", "r-s", "fact s")
    assert subprocess.run(["git", "push", "-q", "origin", "evolve/shared"], cwd=alice).returncode == 0

    result = run_cli("promote", "evolve/shared", "--push", cwd=bob)

    assert result.returncode == 0, result.stderr
    assert git(origin, "rev-parse", "main") == cand


EIGHT = 8


@pytest.mark.timeout(300)  # ~50 s alone on 2 CPUs: 8 gates and 8 server-hook runs per round, 8 rounds at worst
def test_eight_clones_promote_and_push_at_once_and_every_promotion_lands_once(team, tmp_path):
    origin, alice, _bob, _carol = team
    clones = []
    for i in range(EIGHT):
        clone = tmp_path / f"c{i}"
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        assert run_cli("init", clone).returncode == 0
        remember(clone, f"evolve/c{i}", f"r-{i}", f"fact {i}")
        clones.append(clone)
    base = git(origin, "rev-parse", "main")
    procs = [subprocess.Popen([sys.executable, "-m", "aevolve", "promote", f"evolve/c{i}", "--push", "--json"],
                              cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, clone in enumerate(clones)]
    outs = [proc.communicate(timeout=110) for proc in procs]

    assert [p.returncode for p in procs] == [0] * EIGHT, [o[1][-800:] for o in outs]
    chain = git(origin, "rev-list", "--first-parent", f"{base}..main").split()
    assert len(chain) == EIGHT  # each promotion landed exactly once
    assert git(origin, "rev-list", "--merges", f"{base}..main") == ""  # main is linear
    assert sorted(memory_ids(origin)) == sorted(["m-1", *(f"r-{i}" for i in range(EIGHT))])
    for clone in [alice, *clones]:
        assert run_cli("sync", cwd=clone).returncode == 0
        repo = Repo.open(clone)
        assert repo.ref_target(MAIN) == chain[0]
        assert all(parse_report(repo.read_note(c)) is not None for c in chain)  # every note, everywhere
    server = Repo.open(origin)
    assert all(admissible(server, c) for c in chain)


# -- plain git shows it ----------------------------------------------------------------


def test_a_fresh_clone_sees_every_verdict_in_plain_git_log_after_sync(team, tmp_path):
    origin, alice, _bob, _carol = team
    cand = remember(alice, "evolve/a", "r-a", "fact a")
    assert run_cli("promote", "evolve/a", "--push", cwd=alice).returncode == 0
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(origin), str(fresh))

    assert run_cli("sync", cwd=fresh).returncode == 0
    log = git(fresh, "log", "-1", "main")

    assert cand[:7] in git(fresh, "log", "-1", "--format=%h", "main")
    assert "gate: ACCEPT" in log and "promoted to main by" in log
    assert len(git(fresh, "log", "-1", "--notes=aevolve", "--format=%N", "main").splitlines()) == 1  # compact


def test_the_verdict_records_who_gated_and_the_display_note_who_promoted(team):
    _origin, alice, _bob, _carol = team
    cand = remember(alice, "evolve/a", "r-a", "fact a")
    env = {"GIT_COMMITTER_NAME": "Alice Doe", "GIT_COMMITTER_EMAIL": "alice@example.com"}
    assert run_cli("promote", "evolve/a", cwd=alice, env=env).returncode == 0
    report = parse_report(Repo.open(alice).read_note(cand))
    assert report["gated_by"]["email"] == "alice@example.com" and report["gated_by"]["at"]
    line = git(alice, "notes", "--ref", LOG_REF, "show", cand)
    assert "promoted to main by Alice Doe <alice@example.com> at " in line


# -- promote --no-regate reads fetched verdicts ------------------------------------------


def test_promote_no_regate_sees_a_verdict_only_a_plain_fetch_brought(team):
    _origin, alice, bob, _carol = team
    cand = remember(alice, "evolve/a", "r-a", "fact a")
    assert run_cli("gate", "evolve/a", cwd=alice).returncode == 0
    assert subprocess.run(["git", "push", "-q", "origin", "evolve/a", NOTES_REF], cwd=alice).returncode == 0
    git(bob, "fetch", "-q", "origin")
    git(bob, "branch", "evolve/a", "origin/evolve/a")
    assert Repo.open(bob).read_note(cand) is None  # only in refs/notes/remotes/origin/aevolve

    result = run_cli("promote", "evolve/a", "--no-regate", cwd=bob)

    assert result.returncode == 0, result.stderr
    assert git(bob, "rev-parse", "main") == cand


# -- proposal ids ----------------------------------------------------------------------


def test_a_proposal_id_names_its_branch_in_gate_promote_review_and_diff(team):
    _origin, alice, _bob, _carol = team
    cand = remember(alice, "evolve/p", "r-p", "fact p", proposal="p-u0la3652")
    assert str(Repo.open(alice).resolve("p-u0la3652").id) == cand
    assert run_cli("diff", "p-u0la3652", cwd=alice).returncode == 0
    assert run_cli("review", "p-u0la3652", cwd=alice).returncode in (0, 1)
    assert run_cli("gate", "p-u0la3652", cwd=alice).returncode == 0
    assert run_cli("promote", "p-u0la3652", cwd=alice).returncode == 0
    assert git(alice, "rev-parse", "main") == cand


def test_a_proposal_id_on_two_different_tips_is_ambiguous(team):
    _origin, alice, _bob, _carol = team
    remember(alice, "evolve/one", "r-1", "one", proposal="p-aaaaaaaa")
    remember(alice, "evolve/two", "r-2", "two", proposal="p-aaaaaaaa")
    result = run_cli("promote", "p-aaaaaaaa", cwd=alice)
    assert result.returncode == 2 and "evolve/one" in result.stderr and "evolve/two" in result.stderr


def test_a_name_that_only_looks_like_a_proposal_id_is_unknown(team):
    _origin, alice, _bob, _carol = team
    result = run_cli("promote", "p-zzzzzzzz", cwd=alice)
    assert result.returncode != 0 and "unknown revision 'p-zzzzzzzz'" in result.stderr


# -- propose --push ----------------------------------------------------------------------


def test_propose_push_publishes_the_branch_and_the_observations(team, tmp_path):
    origin, alice, _bob, _carol = team
    obs = tmp_path / "obs.jsonl"
    obs.write_text(json.dumps({"id": "o-1", "ts": "2026-01-01T00:00:00Z", "task": "Can I return shoes?",
                               "output": "no", "feedback": {"success": False}}) + "\n")
    observed = run_cli("observe", str(obs), cwd=alice)
    assert observed.returncode == 0, observed.stderr
    write(tmp_path, {"edit.yaml": "- {op: write, path: prompts/extra.md, content: 'Say 30 days.'}\n"})
    result = run_cli("propose", "--evolver", "patch", "--edits", str(tmp_path / "edit.yaml"), "--title",
                     "add a hint", "--diagnosis", "d", "--change", "c", "--expected-effect", "e", "--evidence",
                     "o-1", "--layer", "prompts", "--push", "--json", cwd=alice)
    assert result.returncode == 0, result.stderr
    branch = json.loads(result.stdout)["branch"]
    assert git(origin, "rev-parse", f"refs/heads/{branch}") == git(alice, "rev-parse", branch)
    assert git(origin, "rev-parse", "refs/aevolve/observations") == git(alice, "rev-parse",
                                                                         "refs/aevolve/observations")


# -- prune ---------------------------------------------------------------------------------


def test_prune_deletes_promoted_and_rejected_branches_here_and_on_the_remote_and_keeps_the_rest(team):
    from aevolve._git.notes import write_gate_report
    from aevolve._remote.prune import prune

    from conftest import verdict_for

    origin, alice, _bob, _carol = team
    remember(alice, "evolve/done", "r-d", "done")
    assert run_cli("promote", "evolve/done", "--push", cwd=alice).returncode == 0
    repo = Repo.open(alice)
    bad = remember(alice, "evolve/bad", "r-b", "bad")
    write_gate_report(repo, verdict_for(repo, bad, "reject"))
    remember(alice, "evolve/open", "r-o", "open")
    assert subprocess.run(["git", "push", "-q", "origin", "evolve/bad", "evolve/open", NOTES_REF],
                          cwd=alice).returncode == 0

    result = prune(repo, remote="origin")

    gone = {p.ref.rsplit("/", 1)[-1]: p.why for p in result.deleted}
    assert gone == {"done": "promoted", "bad": "rejected"}  # locally and as remote-tracking copies
    assert git(origin, "for-each-ref", "--format=%(refname)", "refs/heads/evolve").split() == ["refs/heads/evolve/open"]
    assert git(alice, "for-each-ref", "--format=%(refname)", "refs/heads/evolve").split() == ["refs/heads/evolve/open"]
    assert parse_report(repo.read_note(bad))["decision"] == "reject"  # the notes stay


def test_prune_dry_run_deletes_nothing_and_older_than_takes_stale_open_branches(team):
    from aevolve._remote.prune import prune

    _origin, alice, _bob, _carol = team
    remember(alice, "evolve/open", "r-o", "open")
    repo = Repo.open(alice)
    assert prune(repo, dry_run=True, older_than=0).deleted[0].why == "stale"
    assert repo.ref_target("refs/heads/evolve/open") is not None
    assert prune(repo).deleted == []  # ungated and recent: kept
    assert [p.why for p in prune(repo, older_than=0).deleted] == ["stale"]
    assert repo.ref_target("refs/heads/evolve/open") is None
