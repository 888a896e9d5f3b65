"""Shared test fixtures: real git repositories in temporary folders.

Every test that needs a repository gets a real one (real `git`, real objects);
git identity and global config are isolated from the developer's machine.
`run_cli` runs the command line in this process; `run_cli_process` starts the
real `python -m aevolve`, for the few tests about the process itself
(test_cli_smoke.py, signals, processes racing, hooks run by git).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "a-evolve"

# With PYTHONDONTWRITEBYTECODE set, each test process would compile the test modules (with
# their assertion rewriting) and aevolve anew on every run: seconds per worker. A cache
# outside the checkout keeps the checkout clean and saves that. This process only: what
# the tests start keeps the environment as it is.
if sys.dont_write_bytecode and sys.pycache_prefix is None:
    sys.pycache_prefix = str(Path(tempfile.gettempdir()) / f"aevolve-tests-pycache-{os.getuid()}")
    sys.dont_write_bytecode = False

# The tests' folders (tmp_path) in memory when the machine has a tmpfs: a test writes
# hundreds of small files (git objects, refs, copies of repositories) that a disk makes
# it wait for, deleting them included. pytest reads this variable where it makes its base
# folder (and hands each xdist worker a folder below it), with its usual layout and
# clean-up. Not on a noexec mount: git runs the hooks the tests install there.
_MEMORY = Path("/dev/shm")
if ("PYTEST_DEBUG_TEMPROOT" not in os.environ and _MEMORY.is_dir() and os.access(_MEMORY, os.W_OK | os.X_OK)
        and not os.statvfs(_MEMORY).f_flag & os.ST_NOEXEC):
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(_MEMORY)


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path_factory, monkeypatch):
    # mkdtemp, not mktemp("home"): that one lists every home made so far, on every test
    homes = tmp_path_factory.getbasetemp() / "homes"
    homes.mkdir(exist_ok=True)
    isolate_git(monkeypatch, Path(tempfile.mkdtemp(dir=homes)))


@contextlib.contextmanager
def isolated_git_env(tmp_path_factory):
    """The same isolation while a module-scoped fixture builds what it shares: such a
    fixture runs before the per-test one."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_git(monkeypatch, tmp_path_factory.mktemp("home"))
        yield


def isolate_git(monkeypatch, home: Path) -> None:
    """No global or system git config; a fixed identity; no pager, no prompts."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for var, value in {
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
        "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "PAGER": "cat",
    }.items():
        monkeypatch.setenv(var, value)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


def git(cwd, *args, check=True) -> str:
    """Run real git and return its stdout."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def wait_until(condition, timeout: float = 60, what: str = "the condition") -> None:
    """Poll `condition()` until it is true: tests wait for an event, never for a fixed time.
    The deadline only bounds a failure; a passing test never reaches it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Is process `pid` running? A zombie is dead: killed, only waiting for its parent
    (or init, slowly) to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n") if content.startswith("\n") else content)


SAMPLE_STATE = {
    "manifest.yaml": """
        name: support-agent
        version: 0.1.0
        contract_version: "1.0"
        agent:
          type: reference
          entrypoint: agent.run
        evolvable_layers: [prompts, skills, tools, memory]
        reload_strategy: hot
        """,
    "prompts/system.md": "You are a helpful support agent.\nAnswer briefly.\n",
    "skills/refund-policy/SKILL.md": """
        ---
        name: refund-policy
        description: How to answer questions about refunds and returns.
        ---

        # Refund policy
        Returns are accepted within 30 days with a receipt.
        """,
    "tools/registry.yaml": """
        tools:
          - name: search
            description: Search the knowledge base.
            file: search.py
        """,
    "memory/episodic.jsonl": '{"id": "m-1", "content": "Shoes can be returned within 30 days."}\n',
    "evals/basic.yaml": """
        - id: refund-window
          input: {question: "Can I return shoes after 40 days?"}
          assert:
            - {type: contains, value: "30 days"}
        """,
}


def make_state_repo(root: Path, files: dict | None = None) -> Path:
    """A state repository at `root` with SAMPLE_STATE (or `files`) committed on main.

    `aevolve init` starts eight git processes; a state asked for again (same files,
    identity and git config) is copied from the first one built in this test process."""
    files = SAMPLE_STATE if files is None else files
    if root.exists() and any(root.iterdir()):  # adopting a folder that already has files
        return _init_state_repo(root, files)
    key = _template_key(files)
    template = _TEMPLATES.get(key)
    if template is None and key not in _SEEN:  # most states are asked for once: no copy to keep
        _SEEN.add(key)
        return _init_state_repo(root, files)
    if template is None:
        template = _TEMPLATES[key] = _init_state_repo(_template_root() / key[:16], files)
    shutil.copytree(template, root, symlinks=True, dirs_exist_ok=True)
    git(root, "update-index", "-q", "--refresh")  # new inodes and ctimes: the index matches the files again
    return root


def _init_state_repo(root: Path, files: dict) -> Path:
    from aevolve._state.init import init_repo

    root.mkdir(parents=True, exist_ok=True)
    write(root, files)
    init_repo(root)
    return root


_TEMPLATES: dict[str, Path] = {}
_SEEN: set[str] = set()


def _template_key(files: dict) -> str:
    """What `init` reads besides the files: git identity and config from the environment."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_") and k != "GIT_CONFIG_GLOBAL")
    global_config = os.environ.get("GIT_CONFIG_GLOBAL")
    config = Path(global_config).read_bytes() if global_config and Path(global_config).exists() else b""
    return hashlib.sha256(repr((sorted(files.items()), env, config)).encode()).hexdigest()


@functools.cache
def _template_root() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="aevolve-test-templates-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@pytest.fixture(scope="module")
def _remote_template(tmp_path_factory):
    """A bare remote with the server hook and a clone, built once per module that uses `remote`."""
    from test_hooks_server import remote_template

    return remote_template(tmp_path_factory)


@pytest.fixture
def remote(_remote_template, tmp_path):
    """(bare remote with the server hook, a working clone of it): a fresh copy of the module's template."""
    from test_hooks_server import copy_remote

    return copy_remote(_remote_template, tmp_path)


@pytest.fixture
def state_repo(tmp_path) -> Path:
    """A fresh state repository (non-bare, main checked out) with a sample agent."""
    return make_state_repo(tmp_path / "state")


@dataclass
class CliResult:
    """What a finished `aevolve` run left: the fields of a CompletedProcess tests read."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def _text_stream(data: str | bytes = b"") -> io.TextIOWrapper:
    """A UTF-8 text stream over bytes, with `.buffer`, like a process's stdin and stdout."""
    raw = data.encode() if isinstance(data, str) else data
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", newline=None)


def _drain(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", "replace")


@contextlib.contextmanager
def _process_like(cwd, env: dict | None, stdin: io.TextIOWrapper):
    """For one in-process run: the cwd, environment and stdin a subprocess would get, restored after."""
    saved_cwd, saved_env, saved_stdin = os.getcwd(), dict(os.environ), sys.stdin
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)  # relative paths in args (observe FILE, validate PATH) mean what they mean in a shell
        sys.stdin = stdin
        yield
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run_cli(*args, cwd=None, input=None, env=None) -> CliResult:
    """Run the `aevolve` command line in this process: exit code, stdout and stderr as a
    subprocess would report them (an uncaught exception is a traceback and exit 1)."""
    from aevolve.cli import main

    argv = [str(a) for a in args]
    out, err = _text_stream(), _text_stream()
    code: object = 0
    with _process_like(cwd, env, _text_stream(input or b"")), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
        except Exception:
            traceback.print_exc()
            code = 1
    if not isinstance(code, int):  # sys.exit("message") prints it and exits 1, None is 0
        if code is not None:
            print(code, file=err)
        code = 0 if code is None else 1
    return CliResult(["aevolve", *argv], code, _drain(out), _drain(err))


def run_cli_process(*args, cwd=None, input=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run the real `aevolve` command in a subprocess: for what only a separate process
    shows (start-up, signals, the interpreter's exit status)."""
    return subprocess.run(
        [sys.executable, "-m", "aevolve", *map(str, args)],
        cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cli():
    return run_cli


def verdict_for(repo, commit: str, decision: str = "accept", **extra) -> dict:
    """A gate report on the transition parent -> commit, as the gate would write it."""
    from aevolve._state.model import State
    from aevolve._trust.exam import exam_digest

    parent = str(repo.resolve(commit).parents[0].id)
    state = State.from_tree(repo, parent)
    digest = exam_digest({p: f.oid for p, f in state.files.items()},
                         lambda p: state.read(p) if p in state.files else None)
    return {"version": 1, "candidate": str(commit), "decision": decision, "reasons": [f"test: {decision}"],
            "baseline": parent, "candidate_tree": str(repo.resolve(commit).tree.id), "exam_digest": digest,
            **extra}


def admissible(repo, commit: str) -> bool:
    """Does `commit` carry a verdict that would admit it into main (aevolve.verdicts)?"""
    from aevolve._git.reader import GitReader
    from aevolve._trust.verdicts import check_commit, local_trust

    return check_commit(GitReader(repo), str(commit), local_trust(repo)).valid
