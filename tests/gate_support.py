"""Helpers for the gate tests: a state repo whose agent answers from memory, real runners."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from conftest import make_state_repo

# The agent under test: answers a question {"q": id} with memory/facts.jsonl's
# record of that id. Special answers make it misbehave: CRASH, HANG, FLAKY:<k>
# (fails on repeat k), LUCKY:<k> (passes only on repeat k), SLEEP:<s>, COST:<x>. Every start appends a line to the log
# file given as argv[1] (outside the state dir) so tests can count runner starts.
AGENT = textwrap.dedent('''
    import json, os, sys, time
    log = sys.argv[1]
    with open(log, "a") as fh:
        fh.write(os.environ["AEVOLVE_CASE_ID"] + " " + os.environ["AEVOLVE_STATE_DIR"] + "\\n")
    question = json.load(sys.stdin)
    facts = {}
    path = os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "facts.jsonl")
    for line in open(path):
        if line.strip():
            rec = json.loads(line)
            facts[rec["id"]] = rec.get("content", "")
    answer = facts.get(question.get("q"), "unknown")
    if answer == "CRASH":
        sys.stderr.write("agent blew up: KeyError 'x'\\n")
        sys.exit(3)
    if answer == "HANG":  # sleeps past pytest's timeout: a gate that waited for it could not pass
        import subprocess  # only here: every run of every gate test starts this script
        child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(600)"])
        with open(log + ".child", "w") as fh:
            fh.write(str(child.pid))
        time.sleep(600)
    if answer.startswith("FLAKY:"):
        bad = int(answer.split(":")[1])
        answer = "wrong" if int(os.environ["AEVOLVE_REPEAT"]) == bad else "right"
    if answer.startswith("LUCKY:"):
        good = int(answer.split(":")[1])
        answer = "right" if int(os.environ["AEVOLVE_REPEAT"]) == good else "wrong"
    if answer.startswith("SLEEP:"):
        time.sleep(float(answer.split(":")[1]))
        answer = "right"
    if answer.startswith("COST:"):
        print(json.dumps({"output": "right", "cost": float(answer.split(":")[1]), "steps": [1]}))
        sys.exit(0)
    print(answer)
''')


def agent_argv(agent: Path, log: Path) -> list[str]:
    """The runner argv for an agent script. `-S` skips site-packages (the agent uses only the
    standard library): most of a Python start-up, paid on every run of every gate test."""
    return [sys.executable, "-S", str(agent), str(log)]


def facts(**answers: str) -> str:
    return "".join(json.dumps({"id": k, "content": v}) + "\n" for k, v in answers.items())


def cases_yaml(*ids: str, repeat: int | None = None, tags: dict | None = None) -> str:
    out = []
    for cid in ids:
        out.append(f"- id: {cid}\n  input: {{q: {cid}}}\n  assert:\n    - {{type: equals, value: right}}\n")
        if repeat:
            out.append(f"  repeat: {repeat}\n")
        if tags and cid in tags:
            out.append(f"  tags: [{tags[cid]}]\n")
    return "".join(out)


def config_yaml(runner: list[str], *, timeout: float = 20, jobs: int = 2, repeats: int = 1,
                policy: str = "") -> str:
    return (
        "version: 1\n"
        "gate:\n"
        f"  runner: {json.dumps(runner)}\n"
        f"  timeout: {timeout}\n"
        f"  jobs: {jobs}\n"
        f"  repeats: {repeats}\n"
        + (f"  policy:\n{textwrap.indent(policy.strip(), '    ')}\n" if policy else "")
    )


class GateRepo:
    """A real state repository with the agent above as its runner, and a runner log."""

    def __init__(self, tmp_path: Path, answers: dict[str, str], cases: str, **config):
        self.tmp = tmp_path
        agent = tmp_path / "agent.py"
        agent.write_text(AGENT)
        self.log = tmp_path / "runs.log"
        self.path = make_state_repo(tmp_path / "state", {
            "manifest.yaml": "name: t\nversion: 0.1.0\ncontract_version: '1.0'\n",
            "aevolve.yaml": config_yaml(agent_argv(agent, self.log), **config),
            "memory/facts.jsonl": facts(**answers),
            "evals/suite.yaml": cases,
        })
        from aevolve._git.repo import Repo

        self.repo = Repo.open(self.path)

    def branch(self, name: str, edits: dict[str, str | None], base: str = "main", evolver: bool = True) -> str:
        """A commit on `base` with `edits` (path -> text, None deletes) on branch `name`:
        an evolver's commit (with its Aevolve-Proposal trailer), or a person's."""
        parent = self.repo.resolve(base)
        tree = self.repo.build_tree(parent.tree, {p: (t.encode() if t is not None else None) for p, t in edits.items()})
        trailer = f"\nAevolve-Proposal: p-{name.rsplit('/', 1)[-1]}\n" if evolver else ""
        commit = self.repo.commit(tree, [str(parent.id)], f"evolve: {name}\n{trailer}")
        self.repo.create_ref(f"refs/heads/{name}", commit)
        return str(commit)

    def answers_branch(self, name: str, **answers: str) -> str:
        return self.branch(name, {"memory/facts.jsonl": facts(**answers)})

    def runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0
