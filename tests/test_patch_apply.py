"""The patch evolver applies a diff with `git apply --cached` on a temporary index:
git's quoting, renames, offsets and refusals, turned into edits the policy checks."""

from __future__ import annotations

import json
import subprocess

from aevolve._git.repo import Repo
from aevolve._propose.evolvers.base import Edit
from aevolve._propose.evolvers.patch import diff_to_edits

from conftest import git, run_cli, write

RATIONALE = ["--title", "apply a diff", "--diagnosis", "d", "--change", "c", "--expected-effect", "e"]
TEN_LINES = "".join(f"line {n}\n" for n in range(1, 11))


def diff_of(state_repo, tmp_path, change, *diff_args) -> str:
    """`git diff` of a change made and committed in a real clone."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(state_repo), str(clone))
    change(clone)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "change")
    return subprocess.run(["git", "diff", *diff_args, "HEAD~1", "HEAD"], cwd=clone, capture_output=True,
                          text=True, check=True).stdout


def commit_files(repo_dir, files: dict[str, str]) -> None:
    write(repo_dir, files)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-qm", "base")


def propose_diff(state_repo, tmp_path, text: str):
    (tmp_path / "change.diff").write_text(text)
    return run_cli("propose", "--diff", tmp_path / "change.diff", *RATIONALE, "--json", cwd=state_repo)


def edits_of(state_repo, text: str) -> list[Edit]:
    repo = Repo.open(state_repo)
    return diff_to_edits(text.encode(), repo, git(state_repo, "rev-parse", "main"))


def test_quoted_paths_are_unquoted_by_git(state_repo, tmp_path):
    def change(root):
        write(root, {"prompts/café.md": "Bonjour.\n", 'prompts/say "hi".md': "Hi.\n", "prompts/two words.md": "x\n"})

    text = diff_of(state_repo, tmp_path, change)
    assert '"b/prompts/caf\\303\\251.md"' in text and '"b/prompts/say \\"hi\\".md"' in text
    proc = propose_diff(state_repo, tmp_path, text)
    assert proc.returncode == 0, proc.stderr
    branch = json.loads(proc.stdout)["branch"]
    names = git(state_repo, "ls-tree", "-r", "-z", "--name-only", branch, "prompts")
    assert set(names.split("\0")) >= {"prompts/café.md", 'prompts/say "hi".md', "prompts/two words.md"}


def test_a_rename_is_a_delete_and_a_write(state_repo, tmp_path):
    def change(root):
        (root / "prompts" / "system.md").rename(root / "prompts" / "main.md")

    text = diff_of(state_repo, tmp_path, change, "-M")
    assert "rename from prompts/system.md" in text
    assert edits_of(state_repo, text) == [
        Edit("write", "prompts/main.md", content="You are a helpful support agent.\nAnswer briefly.\n"),
        Edit("delete", "prompts/system.md"),
    ]


def test_a_hunk_applies_where_its_context_moved(state_repo, tmp_path):
    commit_files(state_repo, {"prompts/long.md": TEN_LINES})
    changed = TEN_LINES.replace("line 5", "LINE 5")
    text = diff_of(state_repo, tmp_path, lambda root: write(root, {"prompts/long.md": changed}))
    commit_files(state_repo, {"prompts/long.md": "# heading\n\n" + TEN_LINES})
    assert edits_of(state_repo, text) == [Edit("write", "prompts/long.md", content="# heading\n\n" + changed)]


def test_a_hunk_at_the_start_of_a_file_must_still_start_it(state_repo, tmp_path):
    text = diff_of(state_repo, tmp_path, lambda root: write(root, {"prompts/system.md": "Hello.\nAnswer briefly.\n"}))
    commit_files(state_repo, {"prompts/system.md": "# Role\nYou are a helpful support agent.\nAnswer briefly.\n"})
    proc = propose_diff(state_repo, tmp_path, text)
    assert proc.returncode == 5 and "prompts/system.md: hunk 1 (@@ -1,2 +1,2 @@) does not apply" in proc.stderr


def test_a_hunk_that_does_not_apply_is_named_by_file_and_number(state_repo, tmp_path):
    twenty = TEN_LINES + TEN_LINES.replace("line", "more")
    commit_files(state_repo, {"prompts/long.md": twenty})
    changed = twenty.replace("line 2\n", "LINE 2\n").replace("more 9", "MORE 9")
    text = diff_of(state_repo, tmp_path, lambda root: write(root, {"prompts/long.md": changed}))
    commit_files(state_repo, {"prompts/long.md": TEN_LINES + "something else\n"})
    proc = propose_diff(state_repo, tmp_path, text)
    assert proc.returncode == 5
    assert "prompts/long.md: hunk 2 (@@ -16," in proc.stderr and "does not apply" in proc.stderr
    assert git(state_repo, "for-each-ref", "refs/heads/evolve/") == ""


def test_a_change_to_a_file_missing_from_the_base_fails(state_repo, tmp_path):
    proc = propose_diff(state_repo, tmp_path, "--- a/prompts/gone.md\n+++ b/prompts/gone.md\n@@ -1 +1 @@\n-a\n+b\n")
    assert proc.returncode == 5
    assert "prompts/gone.md: the diff changes a file that is not in the base state" in proc.stderr


def test_text_that_is_not_a_diff_is_invalid_input(state_repo, tmp_path):
    proc = propose_diff(state_repo, tmp_path, "please make the agent nicer\n")
    assert proc.returncode == 3 and "no file patches found" in proc.stderr


def test_a_corrupt_hunk_is_invalid_input_with_its_line(state_repo, tmp_path):
    proc = propose_diff(state_repo, tmp_path, "--- a/prompts/system.md\n+++ b/prompts/system.md\n@@ -1 +1 @@\nstray\n")
    assert proc.returncode == 3 and "change.diff:4: corrupt patch" in proc.stderr


def test_a_path_outside_the_state_is_refused_by_policy(state_repo, tmp_path):
    proc = propose_diff(state_repo, tmp_path, "--- /dev/null\n+++ b/../outside.md\n@@ -0,0 +1 @@\n+x\n")
    assert proc.returncode == 4 and "../outside.md: not a path inside the state" in proc.stderr


def test_a_new_symbolic_link_is_refused_by_policy(state_repo, tmp_path):
    text = "diff --git a/prompts/link.md b/prompts/link.md\nnew file mode 120000\n--- /dev/null\n" \
           "+++ b/prompts/link.md\n@@ -0,0 +1 @@\n+../aevolve.yaml\n\\ No newline at end of file\n"
    proc = propose_diff(state_repo, tmp_path, text)
    assert proc.returncode == 4 and "prompts/link.md: the diff creates a symbolic link" in proc.stderr


def test_a_mode_change_is_refused(state_repo, tmp_path):
    text = "diff --git a/prompts/system.md b/prompts/system.md\nold mode 100644\nnew mode 100755\n"
    proc = propose_diff(state_repo, tmp_path, text)
    assert proc.returncode == 5 and "prompts/system.md: the diff sets mode 100755" in proc.stderr


def test_a_binary_patch_is_refused(state_repo, tmp_path):
    text = diff_of(state_repo, tmp_path, lambda root: write(root, {"prompts/logo.bin": b"\x00\xff\x00"}), "--binary")
    proc = propose_diff(state_repo, tmp_path, text)
    assert proc.returncode == 5 and "prompts/logo.bin: binary patches are not supported" in proc.stderr


def test_applying_leaves_the_users_index_alone(state_repo, tmp_path):
    text = diff_of(state_repo, tmp_path, lambda root: write(root, {"prompts/system.md": "Hi.\n"}))
    write(state_repo, {"prompts/staged.md": "staged\n"})
    git(state_repo, "add", "prompts/staged.md")
    assert propose_diff(state_repo, tmp_path, text).returncode == 0
    assert git(state_repo, "diff", "--cached", "--name-only") == "prompts/staged.md"
