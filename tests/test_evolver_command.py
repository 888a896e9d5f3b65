"""The command evolver: a real external program proposes through a file or stdout."""

from __future__ import annotations

import json
import sys
import textwrap

from aevolve._propose.run import propose
from aevolve._state.observations import observe

from conftest import alive, git, run_cli, wait_until

GOOD = """
import json, os, pathlib
state = pathlib.Path(os.environ["AEVOLVE_STATE_DIR"])
obs = [json.loads(l) for l in open(os.environ["AEVOLVE_OBSERVATIONS"])]
history = json.load(open(os.environ["AEVOLVE_HISTORY"]))
mode = oct(os.stat(state / "prompts" / "system.md").st_mode & 0o777)
prompt = (state / "prompts" / "system.md").read_text()
proposal = {
    "title": "note what the program saw",
    "diagnosis": f"saw {len(obs)} observations and {len(history)} rejected proposals",
    "change": "adds prompts/seen.md",
    "expected_effect": "none",
    "evidence": [o["id"] for o in obs],
    "edits": [{"op": "write", "path": "prompts/seen.md",
               "content": f"mode={mode}\\nfirst line={prompt.splitlines()[0]}\\n"}],
}
MODE
"""


def program(tmp_path, body, name="evolver.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return json.dumps([sys.executable, str(path)])


def good(tmp_path, mode="file"):
    out = ('open(os.environ["AEVOLVE_OUTPUT"], "w").write(json.dumps(proposal))' if mode == "file"
           else "print(json.dumps(proposal))")
    return program(tmp_path, GOOD.replace("MODE", out))


def test_a_program_writing_the_output_file_gets_a_read_only_state_copy_and_the_observations(state_repo, tmp_path):
    record = {"id": "obs-1", "task": "t", "output": "o", "feedback": {"success": False}, "ts": "2025-01-01T00:00:00Z"}
    (tmp_path / "o.jsonl").write_text(json.dumps(record) + "\n")
    observe(state_repo, [tmp_path / "o.jsonl"])
    proc = run_cli("propose", "--evolver", "command", "--command", good(tmp_path), "--json", cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    seen = git(state_repo, "show", f"{doc['branch']}:prompts/seen.md")
    assert seen == "mode=0o444\nfirst line=You are a helpful support agent."
    assert "saw 1 observations and 0 rejected proposals" in doc["message"]
    assert "Aevolve-Evolver: command/evolver.py" in doc["message"] and "Aevolve-Evidence: obs-1" in doc["message"]


def test_a_program_may_print_the_proposal_on_stdout(state_repo, tmp_path):
    result = propose(state_repo, evolver="command", evolver_options={"command": good(tmp_path, "stdout")})
    assert git(state_repo, "show", f"{result.branch}:prompts/seen.md").startswith("mode=0o444")


def test_the_argv_comes_from_aevolve_yaml(state_repo, tmp_path):
    argv = json.loads(good(tmp_path))
    (state_repo / "aevolve.yaml").write_text(f"evolver:\n  default: command\n  command: {json.dumps(argv)}\n")
    git(state_repo, "commit", "-qam", "configure evolver")
    proc = run_cli("propose", cwd=state_repo)
    assert proc.returncode == 0, proc.stderr
    assert "created evolve/" in proc.stdout


def test_no_command_configured_is_a_usage_error(state_repo):
    proc = run_cli("propose", "--evolver", "command", cwd=state_repo)
    assert proc.returncode == 2 and "evolver.command" in proc.stderr


def test_a_failing_program_reports_its_stderr_tail(state_repo, tmp_path):
    argv = program(tmp_path, (
        "import sys\nprint('step 1', file=sys.stderr)\n"
        "print('model quota exceeded', file=sys.stderr)\nsys.exit(3)\n"
    ))
    proc = run_cli("propose", "--command", argv, cwd=state_repo)
    assert proc.returncode == 5
    assert "exited with status 3" in proc.stderr and "model quota exceeded" in proc.stderr
    assert git(state_repo, "for-each-ref", "refs/heads/evolve/") == ""


def test_a_program_past_its_timeout_is_killed_with_its_children(state_repo, tmp_path):
    pidfile = tmp_path / "child.pid"
    # both would sleep past pytest's timeout: a propose that waited for them could not pass
    argv = program(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(600)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(600)
        """)
    proc = run_cli("propose", "--command", argv, "--timeout", "1.2", cwd=state_repo)
    assert proc.returncode == 5 and "timed out after 1.2s" in proc.stderr
    child = int(pidfile.read_text())
    wait_until(lambda: not alive(child), timeout=10, what="the evolver's child process to die")


def test_output_that_is_not_json_is_an_evolver_failure(state_repo, tmp_path):
    argv = program(tmp_path, "import sys\nprint('Sure! Here is my proposal:')\nprint('oops', file=sys.stderr)\n")
    proc = run_cli("propose", "--command", argv, cwd=state_repo)
    assert proc.returncode == 5 and "is not JSON" in proc.stderr and "oops" in proc.stderr


def test_output_breaking_the_schema_is_an_evolver_failure(state_repo, tmp_path):
    argv = program(tmp_path, "import json\nprint(json.dumps({'title': 'x', 'edits': []}))\n")
    proc = run_cli("propose", "--command", argv, cwd=state_repo)
    assert proc.returncode == 5 and "breaks schema 'proposal'" in proc.stderr and "/edits" in proc.stderr


def test_a_hostile_proposal_from_a_program_is_refused_by_policy(state_repo, tmp_path):
    argv = program(tmp_path, """
        import json
        print(json.dumps({"title": "escape", "diagnosis": "d", "change": "c", "expected_effect": "e",
                          "edits": [{"op": "write", "path": "../../etc/x", "content": "x"},
                                    {"op": "write", "path": "evals/basic.yaml", "content": "[]"}]}))
        """)
    proc = run_cli("propose", "--command", argv, cwd=state_repo)
    assert proc.returncode == 4 and "'..' may not appear" in proc.stderr and "protected path" in proc.stderr


def test_no_output_means_nothing_to_propose(state_repo, tmp_path):
    proc = run_cli("propose", "--command", program(tmp_path, "pass\n"), cwd=state_repo)
    assert proc.returncode == 0 and proc.stdout.startswith("nothing to propose: command/evolver.py wrote no proposal")


def test_a_command_that_is_not_an_argv_list_is_a_usage_error(state_repo):
    proc = run_cli("propose", "--command", "python evolve.py && rm -rf /", cwd=state_repo)
    assert proc.returncode == 2 and "JSON argv list" in proc.stderr
