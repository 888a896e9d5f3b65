#!/usr/bin/env python3
"""Evolution scaling: does more evolution compute (K candidates per cycle) buy more gain?

An offline agent family bigger than the demo: 48 tasks over 6 topics, each a fact
the agent answers from memory/facts.jsonl (the last record of an id wins). 30 are
gate cases, 18 held-out cases (`gate.holdout`). The world drifts halfway: a
billing rule changes (three answers change, and the exam with them) and a new
product appears (two new tasks). Each week the field reports the failing tasks,
with the right answer, except for a share of wrong feedback.

The evolver is a `command` evolver, stochastic under its seed: for the evidence it
is handed it writes the answer (or, sometimes, a plausible near miss that fixes
nothing), and sometimes also a harmful edit (an outdated answer for another fact).
The loop runs through `aevolve._evolve.evolve` (what `aevolve evolve` calls) for
K = 1, 2, 4, 8 at equal cycles, several seeds each.

Printed per K: the gate and held-out pass rate of main after each cycle (mean over
seeds), regressions promoted (cases that passed before a promotion and fail after:
must be 0), runner starts, evolver calls, and wall time. It reports what it
measures; read the table, not the hope.

Usage: python benchmarks/bench_evolution.py [--small] [--cycles N] [--seeds N] [--ks 1,2,4,8] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

TOPICS = ("shipping", "billing", "account", "stores", "warranty", "products")
PER_TOPIC = 8
GATE_PER_TOPIC = 5  # the other 3 of each topic are held out
WRONG_FEEDBACK = 0.1
REPORTED = 0.8  # share of failing tasks the field reports each week

AGENT = """\
import json, os, sys
facts = {}
path = os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "facts.jsonl")
for line in open(path, encoding="utf-8"):
    if line.strip():
        r = json.loads(line)
        facts[r["id"]] = r["content"]
case = json.loads(sys.stdin.read() or "{}")
print(json.dumps({"output": facts.get(case.get("key"), "unknown")}))
"""

EVOLVER = """\
import json, os, random
seed = int(os.environ.get("AEVOLVE_SEED") or 0)
obs = [json.loads(l) for l in open(os.environ["AEVOLVE_OBSERVATIONS"]) if l.strip()]
facts = {}
for line in open(os.path.join(os.environ["AEVOLVE_STATE_DIR"], "memory", "facts.jsonl")):
    if line.strip():
        r = json.loads(line)
        facts[r["id"]] = r["content"]
known = sorted(facts)
rng = random.Random(seed * 7919 + sum(map(ord, "".join(o["id"] for o in obs))))
ids, learned = [], []
for o in obs:
    if o["feedback"].get("success") is not False or "expected" not in o["feedback"]:
        continue
    answer = o["feedback"]["expected"]
    if rng.random() < 0.25:
        answer = answer + " (roughly)"  # a plausible near miss: fixes nothing
    facts[o["task"]["key"]] = answer
    learned.append(o["task"]["key"])
    ids.append(o["id"])
if not ids:
    raise SystemExit(0)
if rng.random() < 0.25 and known:  # a harmful edit riding along
    facts[rng.choice(known)] = "outdated: see the old policy"
text = "".join(json.dumps({"id": k, "content": v}) + "\\n" for k, v in facts.items())
print(json.dumps({"title": "learn " + ", ".join(learned[:3]), "diagnosis": "field failures",
                  "change": "update facts", "expected_effect": "the tasks get their answers",
                  "evidence": ids, "edits": [{"op": "write", "path": "memory/facts.jsonl", "content": text}]}))
"""


@dataclass
class World:
    truth: dict[str, str]
    gate: list[str]
    held: list[str]

    @classmethod
    def initial(cls) -> World:
        truth: dict[str, str] = {}
        gate: list[str] = []
        held: list[str] = []
        for topic in TOPICS:
            for n in range(PER_TOPIC):
                key = f"{topic}-{n}"
                truth[key] = f"{topic} answer {n}, v1"
                (gate if n < GATE_PER_TOPIC else held).append(key)
        return cls(truth, gate, held)

    def drift(self) -> None:
        for n in (0, 1, 5):  # a billing rule changes: gate and held-out answers alike
            self.truth[f"billing-{n}"] = f"billing answer {n}, v2 (new rule)"
        for n, where in ((PER_TOPIC, self.gate), (PER_TOPIC + 1, self.held)):  # a new product
            key = f"products-{n}"
            self.truth[key] = f"products answer {n}, v1 (new product)"
            where.append(key)

    def cases(self, keys: list[str]) -> str:
        return "".join(f"- id: {k}\n  input: {{key: {k}}}\n"
                       f"  assert: [{{type: equals, value: {json.dumps(self.truth[k])}}}]\n" for k in keys)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def facts_of(root: Path) -> dict[str, str]:
    """main's facts (the last record of an id wins), read from git."""
    text = git(root, "show", "main:memory/facts.jsonl")
    facts = {}
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            facts[record["id"]] = record["content"]
    return facts


def passing(root: Path, world: World) -> set[str]:
    facts = facts_of(root)
    return {k for k in world.gate + world.held if facts.get(k) == world.truth[k]}


def build(root: Path, world: World, rng: random.Random) -> None:
    from aevolve._state.init import init_repo

    config = textwrap.dedent(f"""\
        gate:
          runner: [{json.dumps(sys.executable)}, "agent/run_case.py"]
          holdout: "evals/holdout/**"
          timeout: 20
          jobs: 4
        evolver:
          default: command
          command: [{json.dumps(sys.executable)}, "{root.parent / 'evolver.py'}"]
        """)
    known = [k for k in world.truth if rng.random() < 0.4]
    files = {
        "aevolve.yaml": config,
        "manifest.yaml": "name: facts-agent\nversion: 0.1.0\ncontract_version: \"1.0\"\nagent:\n  type: reference\n"
                         "  entrypoint: agent/run_case.py\nevolvable_layers: [memory]\nreload_strategy: hot\n",
        "memory/facts.jsonl": "".join(json.dumps({"id": k, "content": world.truth[k]}) + "\n" for k in known),
        "evals/gate.yaml": world.cases(world.gate),
        "evals/holdout/held.yaml": world.cases(world.held),
        "agent/run_case.py": AGENT,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root.parent / "evolver.py").write_text(EVOLVER)
    init_repo(root)


def field_week(root: Path, world: World, week: int, rng: random.Random) -> None:
    from aevolve._git.repo import Repo
    from aevolve._state.observations import observe

    good = passing(root, world)
    records = []
    for key in sorted(world.truth):
        if key in good or (key not in world.gate and key not in world.held) or rng.random() > REPORTED:
            continue
        expected = world.truth[key] if rng.random() > WRONG_FEEDBACK else f"{key}: whatever the customer said"
        when = datetime(2026, 11, 2, 9, tzinfo=UTC) + timedelta(weeks=week)
        records.append({"id": f"w{week}-{key}", "task": {"key": key}, "output": "unknown",
                        "feedback": {"success": False, "expected": expected}, "ts": f"{when:%Y-%m-%dT%H:%M:%SZ}"})
    source = root.parent / f"week{week}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    observe(Repo.open(root), [source])


def drift_exam(root: Path, world: World) -> None:
    """The maintainers follow the world: the exam changes on main (a direct maintainer commit)."""
    world.drift()
    (root / "evals/gate.yaml").write_text(world.cases(world.gate))
    (root / "evals/holdout/held.yaml").write_text(world.cases(world.held))
    git(root, "commit", "-qam", "exam: the billing rule changed; a new product")


@dataclass
class Run:
    gate: list[float] = field(default_factory=list)  # main's gate pass rate before the loop, then after each cycle
    held: list[float] = field(default_factory=list)
    regressions_promoted: int = 0
    runner_starts: int = 0
    evolver_calls: int = 0
    seconds: float = 0.0


def rate(keys: list[str], good: set[str]) -> float:
    return sum(k in good for k in keys) / len(keys)


def one_run(k: int, seed: int, cycles: int, workdir: Path) -> Run:
    from aevolve._evolve import evolve

    rng = random.Random(seed)
    world = World.initial()
    root = workdir / f"k{k}-s{seed}" / "repo"
    root.mkdir(parents=True)
    build(root, world, rng)
    out = Run()
    start = passing(root, world)
    out.gate.append(rate(world.gate, start))  # c0: main before the loop
    out.held.append(rate(world.held, start))
    started = time.perf_counter()
    for cycle in range(1, cycles + 1):
        if cycle == 1 or cycle == cycles // 2 + 1:
            if cycle > 1:
                drift_exam(root, world)
            field_week(root, world, cycle, rng)
        before = passing(root, world)
        result = evolve(root, cycles=1, candidates=k)
        after = passing(root, world)
        if result.promoted:
            out.regressions_promoted += len(before - after)
        out.runner_starts += result.compute.get("runner_starts", 0)
        out.evolver_calls += result.compute.get("evolver_calls", 0)
        out.gate.append(rate(world.gate, after))
        out.held.append(rate(world.held, after))
    out.seconds = time.perf_counter() - started
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="K = 1, 2; 2 cycles; 1 seed")
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ks", default="1,2,4,8")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the repositories")
    args = parser.parse_args(argv)
    ks = [1, 2] if args.small else [int(x) for x in args.ks.split(",")]
    cycles, seeds = (2, 1) if args.small else (args.cycles, args.seeds)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aevolve-bench-evolution-"))
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    print(f"evolution scaling: 48 tasks / 6 topics (30 gate, 18 held-out; drift after cycle {cycles // 2}), "
          f"{cycles} cycles, {seeds} seed(s), in {workdir}")
    header = "  K  " + " ".join(f"c{c}:gate/held" for c in range(cycles + 1))
    print(header + "  regr.promoted  runner starts  evolver calls  wall s")
    try:
        for k in ks:
            runs = [one_run(k, seed, cycles, workdir) for seed in range(seeds)]
            cells = " ".join(f"{sum(r.gate[c] for r in runs) / seeds:.2f}/{sum(r.held[c] for r in runs) / seeds:.2f}"
                             .rjust(12) for c in range(cycles + 1))
            starts, calls = sum(r.runner_starts for r in runs) / seeds, sum(r.evolver_calls for r in runs) / seeds
            print(f"{k:>3}  {cells}  {sum(r.regressions_promoted for r in runs):>13}  {starts:>13.0f}  {calls:>13.1f}"
                  f"  {sum(r.seconds for r in runs) / seeds:>6.1f}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("(pass rates and compute are means over seeds; regressions promoted are summed and must be 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
