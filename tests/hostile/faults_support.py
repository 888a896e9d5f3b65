"""Helpers of the fault-injection tests (test_faults.py): a template repository, a
command killed at a stage, and the checks that the repository is healthy afterwards.

A kill is SIGKILL of the aevolve process alone (its children, e.g. a
`git update-ref --stdin` holding ref locks, see their pipe close and clean up)
or of its whole process group (they die too, leaving whatever they held).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conftest import alive, git, run_cli

NEW_OBSERVATIONS = [
    {"id": f"obs-fault-{i}", "task": f"Where is parcel {i}?", "output": "I don't know.",
     "feedback": {"success": False, "expected": f"Parcel {i} is on its way."}, "ts": "2026-11-20T10:00:00Z"}
    for i in range(3)
]
FAULT_PROMPT = ("prompts/fault.md", "Answer in one sentence.\n")
PAUSE_SECONDS = "60"  # a paused process is always killed long before this


@dataclass
class Template:
    """What the template repository holds (the same in every copy)."""

    root: Path
    initial: str  # main before the first promotion: what rollback restores
    main: str  # main now
    candidate: str  # an ungated evolve/* branch on main that the gate accepts
    candidate_commit: str


def build_template(root: Path) -> Template:
    """The demo's sample agent (a real runner) after one observe -> propose -> gate ->
    promote cycle, plus a second proposal: gated once without a note, so a gate of it
    in a copy finds every run in the results cache."""
    import aevolve
    from aevolve._demo import build_sample, sample

    root.mkdir(parents=True)
    build_sample(root)
    aevolve.init(root)
    repo = aevolve.Repo.open(root)
    week1 = root.parent / "week1.jsonl"
    week1.write_text(sample.jsonl(sample.OBSERVATIONS_WEEK1))
    aevolve.observe(repo, [week1])
    initial = repo.resolve_branch("main")
    first = aevolve.propose(repo, evolver="rules", observation_ids=["obs-1001", "obs-1004"])
    assert first.branch and aevolve.gate(repo, first.branch).accepted
    aevolve.promote(repo, first.branch)
    second = aevolve.propose(repo, evolver="rules", observation_ids=["obs-1002"])
    assert second.branch and second.commit, second.reason
    assert aevolve.gate(repo, second.branch, write_note=False).accepted
    return Template(root, initial, repo.resolve_branch("main"), second.branch, second.commit)


def copy_template(template: Template, dest: Path) -> Template:
    shutil.copytree(template.root, dest, symlinks=True)
    git(dest, "update-index", "-q", "--refresh")  # new inodes and ctimes: the index matches the files again
    return Template(dest, template.initial, template.main, template.candidate, template.candidate_commit)


# -- what the repository looked like before the kill --------------------------------


@dataclass
class Snapshot:
    main: str
    branches: dict[str, str]  # evolve/* ref -> commit
    observations: set[str]  # observation ids


def observation_ids(root: Path) -> set[str]:
    """Every observation id stored on refs/aevolve/observations, read with plain git."""
    ref = "refs/aevolve/observations"
    if not git(root, "rev-parse", "-q", "--verify", ref, check=False):
        return set()
    ids = set()
    for path in git(root, "ls-tree", "-r", "--name-only", ref).splitlines():
        for line in git(root, "show", f"{ref}:{path}").splitlines():
            if line.strip():
                ids.add(json.loads(line)["id"])
    return ids


def evolve_branches(root: Path) -> dict[str, str]:
    out = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/evolve/")
    return dict(line.split() for line in out.splitlines())


def snapshot(root: Path) -> Snapshot:
    return Snapshot(git(root, "rev-parse", "refs/heads/main"), evolve_branches(root), observation_ids(root))


# -- the commands under test -------------------------------------------------------


@dataclass
class Command:
    """One aevolve command: how to run it in a copy, and what it must have done once
    it ran to the end (after the kill, the re-run)."""

    name: str
    stages: tuple[str, ...]
    argv: Callable[[Template, Path], list[str]]  # (repo, a scratch folder outside it)
    finished: Callable[[Template, Snapshot], None]


def _propose_argv(t: Template, scratch: Path) -> list[str]:
    edits = scratch / "edits.json"
    edits.write_text(json.dumps([{"op": "write", "path": FAULT_PROMPT[0], "content": FAULT_PROMPT[1]}]))
    return ["propose", "--edits", str(edits), "--title", "fault change", "--diagnosis", "d", "--change", "c",
            "--expected-effect", "e", "--json"]


def _observe_argv(t: Template, scratch: Path) -> list[str]:
    source = scratch / "new.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in NEW_OBSERVATIONS))
    return ["observe", str(source)]


def _new_branches(t: Template, before: Snapshot) -> dict[str, str]:
    return {ref: sha for ref, sha in evolve_branches(t.root).items() if before.branches.get(ref) != sha}


def _proposed_once(t: Template, before: Snapshot) -> None:
    made = _new_branches(t, before)
    assert len(made) == 1, f"expected exactly one new proposal branch, got {made}"
    (sha,) = made.values()
    assert git(t.root, "show", f"{sha}:{FAULT_PROMPT[0]}") + "\n" == FAULT_PROMPT[1]


def _observed_all(t: Template, before: Snapshot) -> None:
    assert observation_ids(t.root) == before.observations | {r["id"] for r in NEW_OBSERVATIONS}


def _rolled_back_once(t: Template, before: Snapshot) -> None:
    made = _new_branches(t, before)
    assert len(made) == 1, f"expected exactly one new rollback branch, got {made}"
    (sha,) = made.values()
    assert git(t.root, "log", "-1", "--format=%s", sha).startswith("evolve(")
    assert git(t.root, "rev-parse", f"{sha}:memory") == git(t.root, "rev-parse", f"{t.initial}:memory")


def _promoted(t: Template, before: Snapshot) -> None:
    assert git(t.root, "rev-parse", "refs/heads/main") == t.candidate_commit


COMMANDS = {
    "propose": Command("propose", ("policy", "objects", "ref"), _propose_argv, _proposed_once),
    "observe": Command("observe", ("observe-objects",), _observe_argv, _observed_all),
    "rollback": Command("rollback", ("policy", "objects", "ref"),
                        lambda t, s: ["rollback", t.initial, "--reason", "fault test"], _rolled_back_once),
    "gate --promote": Command("gate --promote", ("gate-note", "promote-prepare", "promote-checkout"),
                              lambda t, s: ["gate", t.candidate, "--promote"], _promoted),
    "promote": Command("promote", ("promote-prepare", "promote-checkout"),
                       lambda t, s: ["promote", t.candidate], _promoted),
}


# -- killing ---------------------------------------------------------------------------


@dataclass
class Killed:
    returncode: int | None
    stderr: list[str] = field(default_factory=list)


def start(root: Path, args: list[str], env: dict | None = None) -> subprocess.Popen:
    """`python -m aevolve ARGS` in `root`, in a process group of its own."""
    return subprocess.Popen([sys.executable, "-m", "aevolve", *args], cwd=root, env={**os.environ, **(env or {})},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _lines(proc: subprocess.Popen) -> queue.Queue:
    """stderr lines as they come (None at the end): a child left alive may keep the pipe open."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def kill_at(root: Path, args: list[str], stage: str, group: bool, timeout: float = 60) -> Killed:
    """Run the command until it pauses at `stage`, then SIGKILL it (or its group)."""
    proc = start(root, args, {"AEVOLVE_TEST_PAUSE_AT": stage, "AEVOLVE_TEST_PAUSE_SECONDS": PAUSE_SECONDS})
    lines = _lines(proc)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:  # finished (or died) without reaching the stage
                raise AssertionError(f"aevolve {' '.join(args)} exited {proc.wait()} without pausing at "
                                     f"{stage!r}:\n{''.join(seen)}")
            seen.append(line)
            if line.strip() == f"aevolve-test-pause {stage}":
                break
    except queue.Empty:
        raise AssertionError(f"aevolve {' '.join(args)} did not reach {stage!r} in {timeout}s:\n"
                             f"{''.join(seen)}") from None
    finally:
        if proc.poll() is None:
            _kill(proc, group)
    return Killed(proc.wait(timeout=30), seen)


def kill_after(root: Path, args: list[str], delay: float, group: bool) -> Killed:
    """Run the command and SIGKILL it (or its group) after `delay` seconds, wherever it is."""
    proc = start(root, args)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        _kill(proc, group)
    proc.wait(timeout=30)
    return Killed(proc.returncode)


def _kill(proc: subprocess.Popen, group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass  # it finished just now
    # Killing only the process spares its children: they see their pipes close and clean
    # up (a git update-ref aborts its transaction). Let them finish before the next command.
    drain_group(proc.pid)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and alive(int(entry.name)):
            members.append(int(entry.name))
    return members


def drain_group(pgid: int, timeout: float = 30) -> None:
    """Wait for the group to end by itself; kill what is left after `timeout` (a test must not leak)."""
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- after the kill ----------------------------------------------------------------------

LOCK_IN_MESSAGE = re.compile(r"(/\S+?\.lock)\b")


def rerun(t: Template, args: list[str], attempts: int = 5):
    """Run the command again, as a user would: when it reports a stale lock (exit 7,
    naming the file), remove that file as its message says and run it once more."""
    for _ in range(attempts):
        result = run_cli(*args, cwd=t.root)
        named = list(dict.fromkeys(LOCK_IN_MESSAGE.findall(result.stderr)))  # a message may name it twice
        if result.returncode != 7 or not named:
            return result
        for path in named:
            assert Path(path).exists(), f"the message names a lock that does not exist: {result.stderr}"
            Path(path).unlink()
    raise AssertionError(f"still locked after {attempts} runs: {result.stderr}")


def git_lock_files(root: Path) -> list[str]:
    """git's own *.lock files (aevolve's flock files in .git/aevolve never go stale)."""
    gitdir = root / ".git"
    return sorted(str(p.relative_to(gitdir)) for p in gitdir.rglob("*.lock")
                  if not p.is_relative_to(gitdir / "aevolve"))


def check_healthy(t: Template, before: Snapshot) -> None:
    """The repository is as it was, or consistently advanced (issue 9, "Proof")."""
    _check_fsck(t.root)
    _check_main(t.root, before)
    _check_branches(t.root)
    _check_notes(t.root)
    _check_checkout(t.root)
    after = observation_ids(t.root)
    assert after == before.observations or after == before.observations | {r["id"] for r in NEW_OBSERVATIONS}, \
        f"observations lost or half-added: {sorted(after ^ before.observations)}"


def _check_fsck(root: Path) -> None:
    proc = subprocess.run(["git", "fsck", "--strict", "--no-dangling", "--no-progress"], cwd=root,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stdout + proc.stderr


def _check_main(root: Path, before: Snapshot) -> None:
    """main is where it was, or it moved along its first parents to gated commits only."""
    from aevolve._git.reader import GitReader
    from aevolve._git.repo import Repo
    from aevolve._trust.verdicts import check_chain, local_trust

    main = git(root, "rev-parse", "refs/heads/main")
    if main != before.main:
        repo = Repo.open(root)
        problems = check_chain(GitReader(repo), before.main, main, local_trust(repo))
        assert not problems, problems


def _check_branches(root: Path) -> None:
    """No half-made proposal: every evolve/* branch carries a complete rationale on its base."""
    from aevolve._propose.rationale import parse

    for ref, sha in evolve_branches(root).items():
        rationale = parse(git(root, "log", "-1", "--format=%B", sha))
        assert rationale is not None, f"{ref} has no rationale"
        assert rationale.title and rationale.diagnosis and rationale.change and rationale.expected_effect, \
            f"{ref}: incomplete rationale {rationale}"
        assert rationale.base == git(root, "rev-parse", f"{sha}^"), f"{ref}: Aevolve-Base is not its parent"


def _check_notes(root: Path) -> None:
    """The notes ref is a commit, and every note on it is a gate report."""
    from aevolve._git.notes import parse_report

    for line in git(root, "notes", "--ref=aevolve", "list").splitlines():
        blob, commit = line.split()
        text = git(root, "cat-file", "blob", blob)
        assert parse_report(text.encode()) is not None, f"note of {commit} is not a gate report: {text[:200]}"


def _check_checkout(root: Path) -> None:
    """main checked out, the index equal to HEAD's tree, the files equal to the index."""
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/main"
    status = git(root, "status", "--porcelain")
    assert status == "", f"the checkout is not clean:\n{status}"
    assert subprocess.run(["git", "diff-index", "--cached", "--quiet", "HEAD"], cwd=root).returncode == 0, \
        "the index differs from HEAD's tree"
