"""Path names git's fsck refuses (and a few more) are refused everywhere: by the policy
(exit 4, nothing written), by validate (an error naming the path) and by the server's
pre-receive hook (the push refused, naming the path)."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_hooks_server import push

from aevolve._state.names import case_collisions, shown, unsafe_reason

from conftest import git, make_state_repo, run_cli

RATIONALE = ["--title", "hostile path", "--diagnosis", "d", "--change", "c", "--expected-effect", "e"]

# Names that can live in a git tree (one component each), and what makes each unsafe.
HOSTILE_NAMES = {
    ".git.": "'.git' on Windows",  # NTFS drops the trailing dot
    ".git ": "'.git' on Windows",  # ... and the trailing space
    "git~1": "'.git' on Windows",  # the 8.3 short name of .git
    ".GIT": "'.git' may not appear",  # any case
    ".git::$INDEX_ALLOCATION": "'.git' on Windows",  # an NTFS stream of .git
    ".gi\u200ct": "'.git' on macOS",  # HFS+ ignores the zero-width non-joiner
    "gitmod~1": ".gitmodules on Windows",  # the short name of .gitmodules
    ".gitmodules.": ".gitmodules on Windows",
    "evil\u202egpj.md": "bidi-override",  # Trojan source: shows as "evilmd.jpg"
    "zero\u200bwidth.md": "U+200B",
    "red\x1b[31m.md": "control characters",
    "bell\x07.md": "control characters",
    "c1\x9b.md": "control characters",
    "..": "'..' may not appear",
    "back\\slash.md": "backslashes",
}
# Whole paths a tree cannot even hold, but a proposal can name.
HOSTILE_PATHS = {
    "/etc/passwd": "absolute",
    "prompts//x.md": "empty or '.'",
    "prompts/./x.md": "empty or '.'",
    "prompts/nul\x00.md": "control characters",
    "prompts/" + "x" * 300 + ".md": "longer than 255 bytes",
}


def hostile_path(name: str) -> str:
    return f"prompts/{name}/config"


def refs(root) -> str:
    return git(root, "for-each-ref", "--format=%(refname) %(objectname)")


# -- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE_NAMES))
def test_each_hostile_name_has_a_reason(name):
    reason = unsafe_reason(hostile_path(name))
    assert reason is not None and HOSTILE_NAMES[name] in reason, reason


@pytest.mark.parametrize("path", ["prompts/system.md", "skills/a-b_c/SKILL.md", "memory/épisodes.jsonl",
                                  "prompts/.github/x.md", "prompts/.gitkeep", ".gitignore", "prompts/git~1x.md",
                                  "prompts/über/日本.md", "prompts/🙂.md"])
def test_ordinary_names_are_safe(path):
    assert unsafe_reason(path) is None


def test_shown_escapes_what_a_terminal_would_not_show_as_itself():
    assert shown("a\x1b[31m\u202eb\"\\c") == '"a\\x1b[31m\\u202eb\\"\\\\c"'
    assert shown("café/日本") == '"café/日本"'


def test_case_collisions_find_files_and_folders_that_differ_only_in_case():
    pairs = case_collisions(["prompts/system.md", "prompts/System.md", "skills/A/x.md", "skills/a/y.md",
                             "prompts/caf\u00e9.md", "prompts/cafe\u0301.md", "prompts/other.md"])
    assert pairs == [("prompts/system.md", "prompts/System.md"), ("skills/A", "skills/a"),
                     ("prompts/caf\u00e9.md", "prompts/cafe\u0301.md")]


# -- the policy: aevolve propose -----------------------------------------------------------------


def propose_paths(root, tmp_path, paths):
    doc = tmp_path / "edits.json"
    doc.write_text(json.dumps([{"op": "write", "path": p, "content": "x\n"} for p in paths]))
    return run_cli("propose", "--evolver", "patch", "--edits", doc, *RATIONALE, cwd=root)


@pytest.mark.parametrize("path", [hostile_path(n) for n in HOSTILE_NAMES] + list(HOSTILE_PATHS))
def test_a_proposal_with_a_hostile_path_is_refused_and_writes_nothing(state_repo, tmp_path, path):
    before = refs(state_repo)
    objects = git(state_repo, "count-objects")
    proc = propose_paths(state_repo, tmp_path, [path])
    assert proc.returncode == 4, proc.stderr
    assert shown(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert refs(state_repo) == before and git(state_repo, "count-objects") == objects


def test_the_refusal_prints_no_raw_control_character(state_repo, tmp_path):
    proc = propose_paths(state_repo, tmp_path, ["prompts/red\x1b[31m\u202e.md"])
    assert proc.returncode == 4
    assert not any(c in proc.stderr + proc.stdout for c in "\x1b\u202e")


def test_a_proposal_adding_a_name_that_differs_only_in_case_is_refused(state_repo, tmp_path):
    before = refs(state_repo)
    proc = propose_paths(state_repo, tmp_path, ["prompts/System.md"])
    assert proc.returncode == 4, proc.stderr
    assert '"prompts/System.md": differs from "prompts/system.md" only in case' in proc.stderr
    assert refs(state_repo) == before


def test_two_new_folders_that_differ_only_in_case_are_refused(state_repo, tmp_path):
    proc = propose_paths(state_repo, tmp_path, ["prompts/Notes/a.md", "prompts/notes/b.md"])
    assert proc.returncode == 4, proc.stderr
    assert '"prompts/notes": differs from "prompts/Notes" only in case' in proc.stderr


def test_renaming_a_file_to_another_case_in_one_proposal_is_allowed(state_repo, tmp_path):
    doc = tmp_path / "edits.json"
    doc.write_text(json.dumps([{"op": "delete", "path": "prompts/system.md"},
                               {"op": "write", "path": "prompts/System.md", "content": "x\n"}]))
    proc = run_cli("propose", "--evolver", "patch", "--edits", doc, *RATIONALE, cwd=state_repo)
    assert proc.returncode == 0, proc.stderr


# -- validate: the same names committed by hand ----------------------------------------------------


def tree_with(root, base: str | None, entries: dict[tuple[str, ...], tuple[str, str]]) -> str:
    """`base` (a tree id) with each path (as its components) set to (mode, object id),
    built with `git mktree`, which takes names git's own porcelain refuses."""
    listing: dict[bytes, tuple[str, str, str]] = {}
    if base:
        out = subprocess.run(["git", "ls-tree", "-z", base], cwd=root, capture_output=True, check=True).stdout
        for record in filter(None, out.split(b"\0")):
            meta, _, name = record.partition(b"\t")
            mode, kind, oid = meta.decode().split()
            listing[name] = (mode, kind, oid)
    groups: dict[str, dict[tuple[str, ...], tuple[str, str]]] = {}
    for parts, value in entries.items():
        groups.setdefault(parts[0], {})[parts[1:]] = value
    for name, below in groups.items():
        key = name.encode("utf-8", "surrogateescape")
        if () in below:
            mode, oid = below[()]
            listing[key] = (mode, "commit" if mode == "160000" else "blob", oid)
        else:
            old = listing.get(key)
            listing[key] = ("040000", "tree", tree_with(root, old[2] if old and old[1] == "tree" else None, below))
    data = b"".join(f"{m} {k} {o}\t".encode() + n + b"\0" for n, (m, k, o) in listing.items())
    return subprocess.run(["git", "mktree", "-z"], cwd=root, input=data, capture_output=True,
                          check=True).stdout.decode().strip()


def commit_by_hand(root, paths: dict[str, tuple[str, str]], parent: str = "main") -> str:
    """A commit on `parent` adding `paths` (path -> (mode, object id)); no ref is moved."""
    base = git(root, "rev-parse", f"{parent}^{{tree}}")
    tree = tree_with(root, base, {tuple(p.split("/")): v for p, v in paths.items()})
    return git(root, "commit-tree", tree, "-p", parent, "-m", "by hand")


def blob(root, text: str = "x\n") -> str:
    return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=root, input=text.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


@pytest.mark.parametrize("name", list(HOSTILE_NAMES))
def test_a_hostile_name_committed_by_hand_is_a_validate_error_naming_it(state_repo, name):
    path = hostile_path(name)
    commit = commit_by_hand(state_repo, {path: ("100644", blob(state_repo))})
    proc = run_cli("validate", commit, "--json", cwd=state_repo)
    assert proc.returncode == 1, proc.stderr
    errors = json.loads(proc.stdout)["errors"]
    assert any(e["path"] == path and shown(path) in e["message"] for e in errors), errors


def test_names_that_differ_only_in_case_are_a_validate_error(state_repo):
    commit = commit_by_hand(state_repo, {"prompts/System.md": ("100644", blob(state_repo))})
    proc = run_cli("validate", commit, "--json", cwd=state_repo)
    assert proc.returncode == 1
    [error] = json.loads(proc.stdout)["errors"]
    assert error["path"] == "prompts/system.md"
    assert '"prompts/system.md" differs from "prompts/System.md" only in case' in error["message"]


def test_the_validate_text_output_escapes_the_name(state_repo):
    path = "prompts/red\x1b[31m.md"
    commit = commit_by_hand(state_repo, {path: ("100644", blob(state_repo))})
    proc = run_cli("validate", commit, cwd=state_repo)
    assert proc.returncode == 1 and shown(path) in proc.stdout


# -- the server hook: the same commits pushed ------------------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE_NAMES))
def test_a_push_bringing_a_hostile_name_is_refused(remote, name):
    bare, clone = remote
    path = hostile_path(name)
    commit = commit_by_hand(clone, {path: ("100644", blob(clone))})
    result = push(clone, "origin", f"{commit}:refs/heads/feature")
    assert result.returncode != 0
    assert f"refusing commit {commit[:12]}" in result.stderr and shown(path) in result.stderr, result.stderr
    assert git(bare, "for-each-ref", "refs/heads/feature") == ""


def test_a_push_hiding_a_hostile_name_under_a_later_commit_is_refused(remote):
    _, clone = remote
    first = commit_by_hand(clone, {"prompts/.git./config": ("100644", blob(clone))})
    second = git(clone, "commit-tree", git(clone, "rev-parse", "main^{tree}"), "-p", first, "-m", "drop it")
    result = push(clone, "origin", f"{second}:refs/heads/feature")
    assert result.returncode != 0 and f"refusing commit {first[:12]}" in result.stderr, result.stderr


def test_a_push_adding_a_name_that_differs_only_in_case_is_refused(remote):
    _, clone = remote
    commit = commit_by_hand(clone, {"prompts/System.md": ("100644", blob(clone))})
    result = push(clone, "origin", f"{commit}:refs/heads/feature")
    assert result.returncode != 0
    assert 'differ only in case' in result.stderr
    assert '"prompts/System.md" and "prompts/system.md"' in result.stderr, result.stderr


def test_a_push_with_ordinary_names_is_accepted(remote):
    bare, clone = remote
    commit = commit_by_hand(clone, {"prompts/notes/new.md": ("100644", blob(clone))})
    result = push(clone, "origin", f"{commit}:refs/heads/feature")
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "refs/heads/feature") == commit


def test_a_push_removing_a_hostile_name_the_server_already_has_is_accepted(tmp_path):
    source = make_state_repo(tmp_path / "state")
    bad = commit_by_hand(source, {"prompts/git~1/config": ("100644", blob(source))})
    git(source, "update-ref", "refs/heads/feature", bad)
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    assert run_cli("hooks", "install", "--server", bare).returncode == 0
    fixed = git(source, "commit-tree", git(source, "rev-parse", "main^{tree}"), "-p", bad, "-m", "remove it")
    result = push(source, str(bare), f"{fixed}:refs/heads/feature")
    assert result.returncode == 0, result.stderr
