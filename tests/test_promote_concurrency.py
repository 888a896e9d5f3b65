"""Promotions racing in real processes: main never points at an ungated commit,
and no promotion is lost silently (each process promotes or says why not)."""

from __future__ import annotations

import json
import subprocess
import sys

from aevolve._git.notes import write_gate_report
from aevolve._git.repo import MAIN, NOTES_REF, Repo

from conftest import SAMPLE_STATE, admissible, git, make_state_repo, verdict_for, wait_until

WORKER = """\
import json, os, sys, time
from aevolve._git.repo import Repo
from aevolve._promote.promote import promote
from aevolve._errors import AevolveError
repo_path, candidate, regate, go = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
open(f"{go}.ready.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
try:
    r = promote(Repo.open(repo_path), candidate, regate=regate)
    out = {"outcome": "promoted" if r.promoted else "noop", "new": r.new, "rebased": r.rebased}
except AevolveError as exc:
    out = {"outcome": type(exc).__name__, "code": exc.exit_code, "message": str(exc)}
print(json.dumps(out))
"""

# Keeps refs/notes/aevolve moving while the promotions run, as a parallel gate would.
NOTE_WRITER = """\
import os, sys, time
from aevolve._git.repo import Repo
from aevolve._git.notes import write_gate_report
repo = Repo.open(sys.argv[1])
go, stop, target = sys.argv[2], sys.argv[3], sys.argv[4]
open(f"{go}.ready.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
n = 0
while not os.path.exists(stop):
    write_gate_report(repo, {"version": 1, "candidate": target, "decision": "reject", "reasons": [f"noise {n}"]})
    n += 1
print(n)
"""


def commit_on(repo: Repo, parent: str, files: dict, message: str) -> str:
    tree = repo.build_tree(repo.resolve(parent).tree, {p: c.encode() for p, c in files.items()})
    return str(repo.commit(tree, [parent], message))


def race(tmp_path, repo: Repo, candidates: list[str], regate: bool) -> tuple[list[dict], int]:
    """Start one promoting process per candidate plus a note writer, all at once."""
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "notes.py").write_text(NOTE_WRITER)
    go, stop = tmp_path / "go", tmp_path / "stop"
    noise_target = commit_on(repo, repo.ref_target(MAIN), {"noise.txt": "n\n"}, "noise\n")
    root = str(repo.workdir or repo.git_dir)
    writer = subprocess.Popen([sys.executable, str(tmp_path / "notes.py"), root, str(go), str(stop), noise_target],
                              stdout=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), root, c, "1" if regate else "0", str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in candidates]
    wait_until(lambda: len(list(tmp_path.glob("go.ready.*"))) == len(workers) + 1  # all at the barrier
               or any(proc.poll() is not None for proc in [writer, *workers]),  # or one died: its stderr says why
               what="every process to start and wait at the barrier")
    go.write_text("go")
    outs = []
    for proc in workers:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        outs.append(json.loads(stdout))
    stop.write_text("stop")
    noise_notes = int(writer.communicate(timeout=60)[0])
    return outs, noise_notes


def first_parent_chain(repo: Repo, tip: str, stop: str) -> list[str]:
    chain = []
    while tip != stop:
        chain.append(tip)
        tip = str(repo.resolve(tip).parent_ids[0])
    return chain


def test_parallel_promotions_without_regate_admit_one_and_refuse_the_rest_clearly(tmp_path):
    repo = Repo.open(make_state_repo(tmp_path / "state"))
    base = repo.ref_target(MAIN)
    cands = [commit_on(repo, base, {f"prompts/p{i}.md": f"{i}\n"}, f"evolve: p{i}\n") for i in range(4)]
    for c in cands:
        write_gate_report(repo, verdict_for(repo, c))
    outs, noise = race(tmp_path, repo, cands, regate=False)

    winners = [c for c, o in zip(cands, outs, strict=True) if o["outcome"] == "promoted"]
    assert len(winners) == 1, outs
    assert repo.ref_target(MAIN) == winners[0]
    losers = [o for o in outs if o["outcome"] != "promoted"]
    assert all(o["code"] == 6 and "moved since" in o["message"] for o in losers), losers
    assert admissible(repo, repo.ref_target(MAIN))
    assert noise > 0  # the notes ref really moved during the race
    assert git(repo.workdir, "status", "--porcelain") == ""
    assert git(repo.workdir, "fsck", "--no-dangling") == ""


AGENT = """\
import json, os, sys
json.load(sys.stdin)
memory = open(os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "episodic.jsonl")).read()
print(" ".join(json.loads(l).get("content", "") for l in memory.splitlines() if l.strip()))
"""


def test_parallel_promotions_with_the_real_gate_all_land_each_with_its_note(tmp_path):
    state = {**SAMPLE_STATE, "agent/run.py": AGENT,
             "aevolve.yaml": f"gate:\n  runner: [{json.dumps(sys.executable)}, -S, agent/run.py]\n  jobs: 1\n"}
    repo = Repo.open(make_state_repo(tmp_path / "state", state))
    base = repo.ref_target(MAIN)
    memory = repo.read(repo.resolve(base).tree, "memory/episodic.jsonl").decode()
    cands = [commit_on(repo, base,
                       {"memory/episodic.jsonl": memory + json.dumps({"id": f"r-{i}", "content": f"fact {i}"}) + "\n"},
                       f"evolve(memory): fact {i}\n") for i in range(4)]
    outs, _ = race(tmp_path, repo, cands, regate=True)

    assert [o["outcome"] for o in outs] == ["promoted"] * 4, outs
    tip = repo.ref_target(MAIN)
    chain = first_parent_chain(repo, tip, base)
    assert len(chain) == 4
    assert all(admissible(repo, c) for c in chain)  # every commit main ever pointed at is gated
    assert sorted(o["new"] for o in outs) == sorted(chain)
    final = repo.read(repo.resolve(tip).tree, "memory/episodic.jsonl").decode()
    ids = [json.loads(line)["id"] for line in final.splitlines()]
    assert ids[0] == "m-1" and sorted(ids[1:]) == [f"r-{i}" for i in range(4)]  # nothing lost
    assert sum(o["rebased"] for o in outs) == 3
    assert repo.ref_target(NOTES_REF) is not None
    assert git(repo.workdir, "status", "--porcelain") == ""
    assert git(repo.workdir, "fsck", "--no-dangling") == ""
