"""`aevolve diff`: the semantic diff by layer, on real repositories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aevolve._git.repo import Repo
from aevolve._review.diff import INDEX, WORKTREE, _Source, semantic_diff

from conftest import SAMPLE_STATE, git, make_state_repo, run_cli, write

ROOT = Path(__file__).resolve().parents[1]


def commit_branch(repo: Path, branch: str, files: dict | None = None, delete: tuple = (), base: str = "main") -> str:
    """Commit `files` (and deletions) on a new `branch` from `base` with real git; back on main after."""
    git(repo, "checkout", "-q", "-b", branch, base)
    write(repo, files or {})
    for path in delete:
        git(repo, "rm", "-q", "-r", path)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"change on {branch}")
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return sha


def skill(name: str, description: str, body: str, **extra) -> str:
    more = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return f"---\nname: {name}\ndescription: {description}\n{more}---\n\n{body}"


@pytest.fixture
def repo(state_repo) -> Path:
    return state_repo


def diff_of(repo: Path, b: str, a: str = "main"):
    return semantic_diff(Repo.open(repo), a, b)


def test_prompt_change_is_a_unified_diff(repo):
    commit_branch(repo, "evolve/p", {"prompts/system.md": "You are a helpful support agent.\nAnswer in one line.\n"})
    d = diff_of(repo, "evolve/p")
    [f] = d.files
    assert (f.path, f.layer, f.status) == ("prompts/system.md", "prompts", "modified")
    assert "-Answer briefly." in f.diff and "+Answer in one line." in f.diff
    assert (f.additions, f.deletions) == (1, 1)
    assert not d.skills and not d.memory and not d.structured


def test_a_very_long_line_is_cut_on_display_and_shown_whole_with_full(repo):
    long_line = "x" * 5000
    commit_branch(repo, "evolve/long", {"prompts/system.md": f"{long_line}\n"})
    cut = run_cli("diff", "main", "evolve/long", cwd=repo)
    whole = run_cli("diff", "main", "evolve/long", "--full", cwd=repo)
    assert cut.returncode == whole.returncode == 0, cut.stderr + whole.stderr
    assert "… (4,001 more characters)" in cut.stdout and long_line not in cut.stdout
    assert long_line in whole.stdout


def test_skill_front_matter_changes_are_listed_apart_from_the_body(repo):
    text = skill("refund-policy", "Refunds, returns and store credit.", "# Refund policy\nReturns within 30 days.\n",
                 license="MIT")
    commit_branch(repo, "evolve/s", {"skills/refund-policy/SKILL.md": text})
    [s] = diff_of(repo, "evolve/s").skills
    assert (s.name, s.status) == ("refund-policy", "changed")
    fields = {f.field: f for f in s.fields}
    assert fields["description"].old == "How to answer questions about refunds and returns."
    assert fields["description"].new == "Refunds, returns and store credit."
    assert fields["license"].kind == "added"
    assert "+Returns within 30 days." in s.body_diff
    assert not any("description" in line for line in s.body_diff)


def test_skills_added_and_removed(repo):
    commit_branch(repo, "evolve/s",
                  {"skills/entity-check/SKILL.md": skill("entity-check", "Verify ids.", "Check ids.\n")},
                  delete=("skills/refund-policy",))
    skills = {s.name: s for s in diff_of(repo, "evolve/s").skills}
    assert skills["entity-check"].status == "added"
    assert skills["entity-check"].description == "Verify ids."
    assert skills["refund-policy"].status == "removed"


def test_skill_moved_to_a_new_folder_with_small_edits_is_a_rename(repo):
    body = "# Refund policy\nReturns are accepted within 30 days with a receipt.\nStore credit after that.\n"
    commit_branch(repo, "evolve/r", {"skills/refunds/SKILL.md": skill("refunds", "Refund rules.", body),
                                     "skills/refunds/scripts/check.py": "print('ok')\n"},
                  delete=("skills/refund-policy",))
    [s] = diff_of(repo, "evolve/r").skills
    assert (s.status, s.old_name, s.name) == ("renamed", "refund-policy", "refunds")
    assert 0.6 <= s.similarity < 1.0
    assert {f.field for f in s.fields} == {"name", "description"}
    assert [f.path for f in s.files] == ["skills/refunds/scripts/check.py"]


def test_skill_moved_unchanged_is_a_rename_with_full_similarity(repo):
    same = (repo / "skills/refund-policy/SKILL.md").read_text()
    commit_branch(repo, "evolve/r", {"skills/returns/SKILL.md": same}, delete=("skills/refund-policy",))
    [s] = diff_of(repo, "evolve/r").skills
    assert (s.status, s.old_name, s.similarity, s.fields, s.body_diff) == ("renamed", "refund-policy", 1.0, [], [])


TEMPLATE = "".join(f"Step {n}: check the order, the invoice and the shipping window.\n" for n in range(12))


def test_many_renames_of_template_skills_each_pair_with_their_own_new_folder(repo):
    # 30 x 30 pairs: past the every-pair limit, so the candidate prefilter chooses
    old = {f"skills/t-{i:02d}/SKILL.md": skill(f"t-{i:02d}", "d", f"Only topic {i * 37} here.\n" + TEMPLATE)
           for i in range(30)}
    commit_branch(repo, "evolve/seed", old)
    git(repo, "merge", "-q", "--ff-only", "evolve/seed")
    moved = {f"skills/moved-{i:02d}/SKILL.md": skill(f"moved-{i:02d}", "d", f"Only topic {i * 37} here.\n"
                                                     + TEMPLATE.replace("Step 3:", f"Step 3 ({i}):"))
             for i in range(30)}
    commit_branch(repo, "evolve/mv", moved, delete=tuple(f"skills/t-{i:02d}" for i in range(30)))
    renames = {s.old_name: s.name for s in diff_of(repo, "evolve/mv").skills if s.status == "renamed"}
    assert renames == {f"t-{i:02d}": f"moved-{i:02d}" for i in range(30)}


def test_unrelated_skills_are_added_and_removed_not_renamed(repo):
    commit_branch(repo, "evolve/r", {"skills/math/SKILL.md": skill("math", "Arithmetic.", "Add numbers carefully, "
                                                                  "carry digits, verify by estimation.\n")},
                  delete=("skills/refund-policy",))
    assert sorted((s.name, s.status) for s in diff_of(repo, "evolve/r").skills) == [
        ("math", "added"), ("refund-policy", "removed")]


def test_memory_records_are_matched_by_id_with_field_changes(repo):
    lines = ['{"id": "m-2", "content": "Ship in 2 days."}',
             '{"id": "m-1", "content": "Shoes can be returned within 45 days.", "tags": ["shoes"]}',
             '{"id": "m-3", "content": "New."}']
    commit_branch(repo, "evolve/m", {"memory/episodic.jsonl": "\n".join(lines) + "\n"})
    d = diff_of(repo, "evolve/m")
    [m] = d.memory
    assert [r.key for r in m.added] == ["m-2", "m-3"] and m.removed == []
    [changed] = m.changed
    assert changed.key == "m-1"
    assert {(f.field, f.kind) for f in changed.fields} == {("content", "changed"), ("tags", "added")}
    text = d.render("text")
    assert "+    content: \"Shoes can be returned within 45 days.\"" in text
    assert not any(line.lstrip().startswith('-{"id"') for line in text.splitlines())  # never a JSONL line diff


def test_memory_without_ids_is_matched_by_content_hash_and_order_does_not_matter(repo):
    old = ['{"content": "a"}', '{"content": "b"}', '{"content": "c"}']
    make = lambda lines: "\n".join(lines) + "\n"  # noqa: E731
    write(repo, {"memory/notes.jsonl": make(old)})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notes")
    commit_branch(repo, "evolve/reorder", {"memory/notes.jsonl": make(list(reversed(old)))})
    commit_branch(repo, "evolve/edit", {"memory/notes.jsonl": make(['{"content": "a"}', '{"content": "B"}', old[2]])})
    [m] = diff_of(repo, "evolve/reorder").memory
    assert (m.added, m.removed, m.changed) == ([], [], [])
    [m] = diff_of(repo, "evolve/edit").memory
    assert [r.new for r in m.added] == [{"content": "B"}]
    assert [r.old for r in m.removed] == [{"content": "b"}]
    assert m.added[0].key.startswith("sha256:") and m.changed == []


def test_tool_registry_entries_by_name_field_by_field(repo):
    registry = ("tools:\n  - name: calc\n    description: Arithmetic.\n"
                "  - name: search\n    description: Search the knowledge base.\n    file: search_v2.py\n")
    commit_branch(repo, "evolve/t", {"tools/registry.yaml": registry})
    [s] = diff_of(repo, "evolve/t").structured
    entries = {e.name: e for e in s.entries}
    assert entries["calc"].kind == "added" and entries["calc"].entry["description"] == "Arithmetic."
    assert entries["search"].kind == "changed"
    assert [(f.field, f.old, f.new) for f in entries["search"].fields] == [("file", "search.py", "search_v2.py")]


def test_manifest_changes_field_by_field(repo):
    manifest = (repo / "manifest.yaml").read_text().replace("version: 0.1.0", "version: 0.2.0")
    manifest = manifest.replace("type: reference", "type: custom")
    commit_branch(repo, "evolve/m", {"manifest.yaml": manifest})
    [s] = diff_of(repo, "evolve/m").structured
    assert s.layer == "manifest" and not s.protected
    assert {(f.field, f.old, f.new) for f in s.fields} == {("version", "0.1.0", "0.2.0"),
                                                           ("agent.type", "reference", "custom")}


def test_protected_paths_are_flagged_and_shown_first(repo):
    config = (repo / "aevolve.yaml").read_text().replace("timeout: 60 ", "timeout: 5  ")
    commit_branch(repo, "evolve/x", {"aevolve.yaml": config, "evals/basic.yaml": "[]\n",
                                     "prompts/system.md": "Be brief.\n"})
    d = diff_of(repo, "evolve/x")
    assert d.protected == ["aevolve.yaml", "evals/basic.yaml"]
    [cfg] = d.structured
    assert cfg.protected and [(f.field, f.old, f.new) for f in cfg.fields] == [("gate.timeout", 60, 5)]
    text = d.render("text")
    assert "PROTECTED PATHS CHANGED" in text
    assert text.index("evals/basic.yaml") < text.index("prompts/system.md")
    assert "[!WARNING]" in d.render("markdown")


def test_binary_and_non_utf8_files_are_reported_as_such(repo):
    commit_branch(repo, "evolve/b", {"prompts/logo.png": b"\x89PNG\x00\x01",
                                     "prompts/latin1.md": "caf\xe9".encode("latin-1"),
                                     "memory/episodic.jsonl": b'{"id": "m-1", "content": "ok"}\n\xff\xfe broken\n'})
    d = diff_of(repo, "evolve/b")
    files = {f.path: f for f in d.files}
    assert files["prompts/logo.png"].binary and files["prompts/latin1.md"].binary
    assert "binary or not UTF-8" in files["prompts/latin1.md"].note
    [m] = d.memory
    assert m.invalid == [{"side": "b", "line": 2, "error": "not valid UTF-8", "text": m.invalid[0]["text"]}]
    assert "binary or not UTF-8" in d.render("text")


def test_json_output_shape(repo, cli):
    commit_branch(repo, "evolve/j", {"prompts/system.md": "Hi.\n",
                                     "memory/episodic.jsonl": '{"id": "m-1", "content": "changed"}\n'})
    proc = cli("diff", "main", "evolve/j", "--format", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"a", "b", "empty", "protected", "stat", "files", "skills", "memory", "structured"}
    assert data["a"]["rev"] == "main" and len(data["b"]["commit"]) == 40
    assert data["files"][0]["path"] == "prompts/system.md" and data["files"][0]["diff"][0] == "--- a/prompts/system.md"
    assert data["memory"][0]["changed"][0] == {"key": "m-1", "kind": "changed", "fields": [
        {"field": "content", "kind": "changed", "old": "Shoes can be returned within 30 days.", "new": "changed"}]}
    assert data["stat"]["memory"] == {"files": 1, "records added": 0, "records removed": 0, "records changed": 1}
    assert json.loads(run_cli("diff", "main", "evolve/j", "--json", cwd=repo).stdout) == data


def test_markdown_folds_long_parts_in_details(repo):
    long_prompt = "".join(f"Rule {i}: be precise.\n" for i in range(60))
    commit_branch(repo, "evolve/md", {"prompts/system.md": long_prompt, "prompts/short.md": "One line.\n"})
    md = diff_of(repo, "evolve/md").render("markdown")
    assert md.count("<details>") == 1
    details = md[md.index("<details>"):md.index("</details>")]
    assert "+Rule 59: be precise." in details and "```diff" in details
    assert "+One line." in md[:md.index("<details>")]  # the short one stays open


def test_stat_prints_counts_per_layer(repo, cli):
    commit_branch(repo, "evolve/st", {"prompts/system.md": "Hi.\n", "skills/x/SKILL.md": skill("x", "X.", "x\n"),
                                      "memory/episodic.jsonl": '{"id": "m-9", "content": "new"}\n'})
    proc = cli("diff", "--stat", "main", "evolve/st", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split()[:3] == ["prompts", "1", "file,"] for line in lines)
    assert any(line.split() == ["skills", "1", "added"] for line in lines)
    assert any(line.split() == ["memory", "1", "file,", "1", "record", "added,", "1", "record", "removed"]
               for line in lines)
    assert "@@" not in proc.stdout


def test_default_diffs_main_against_the_working_tree_when_the_checkout_has_changes(repo, cli):
    (repo / "prompts/system.md").write_text("Changed in the checkout.\n")
    write(repo, {"skills/draft/SKILL.md": skill("draft", "Untracked draft.", "d\n")})
    proc = cli("diff", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "working tree" in proc.stdout.splitlines()[0]
    assert "+Changed in the checkout." in proc.stdout and "skill draft (added)" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour when not on a terminal
    assert git(repo, "status", "--porcelain") == "M prompts/system.md\n?? skills/draft/"  # nothing staged or moved


def test_default_diffs_main_against_the_current_branch_when_clean(repo, cli):
    commit_branch(repo, "evolve/c", {"prompts/system.md": "On the branch.\n"})
    git(repo, "checkout", "-q", "evolve/c")
    proc = cli("diff", cwd=repo)
    assert "HEAD" in proc.stdout.splitlines()[0] and "+On the branch." in proc.stdout


def test_index_side_shows_what_is_staged(repo):
    (repo / "prompts/system.md").write_text("Staged.\n")
    git(repo, "add", "prompts/system.md")
    (repo / "prompts/system.md").write_text("Staged, then edited.\n")
    staged = semantic_diff(Repo.open(repo), "main", INDEX)
    assert "+Staged." in staged.files[0].diff
    assert "+Staged, then edited." in semantic_diff(Repo.open(repo), "main", WORKTREE).files[0].diff


def test_works_in_a_bare_repository_with_refs(repo, tmp_path, cli):
    commit_branch(repo, "evolve/b", {"prompts/system.md": "Bare.\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    proc = cli("diff", "main", "evolve/b", cwd=bare)
    assert proc.returncode == 0, proc.stderr
    assert "+Bare." in proc.stdout
    assert "no changes" in cli("diff", cwd=bare).stdout  # HEAD is main in a bare clone


def test_unknown_revision_is_a_clear_error(repo, cli):
    proc = cli("diff", "main", "nope", cwd=repo)
    assert proc.returncode == 1 and "unknown revision 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_unchanged_skill_folders_are_not_read(tmp_path, monkeypatch):
    files = dict(SAMPLE_STATE)
    for i in range(40):
        files[f"skills/s{i:03d}/SKILL.md"] = skill(f"s{i:03d}", f"Skill {i}.", f"Body {i}\n")
    root = make_state_repo(tmp_path / "big", files)
    commit_branch(root, "evolve/one", {"skills/s020/SKILL.md": skill("s020", "Skill 20, sharper.", "Body 20\n")})
    reads = []
    original = _Source.read
    monkeypatch.setattr(_Source, "read", lambda self, path, oid: reads.append(path) or original(self, path, oid))
    [s] = diff_of(root, "evolve/one").skills
    assert s.name == "s020" and [f.field for f in s.fields] == ["description"]
    assert set(reads) <= {"skills/s020/SKILL.md", "aevolve.yaml"}


def test_benchmark_small_prints_a_table():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_diff.py"), "--small", "--records", "2000",
                           "--changes", "20", "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "x git diff" in lines[1]
    rows = {line.split("  ")[0].strip(): line for line in lines[2:]}
    assert {"git diff A B", "aevolve diff A B", "aevolve diff --stat A B"} <= set(rows)
    assert rows["git diff A B"].split()[-2] == "1.00x"
    exponents = [line for line in lines if line.split()[:1] == ["exponent"]]
    assert len(exponents) == 2 and all("target <= 1.1" in line for line in exponents)  # records, renames


def test_colour_codes_only_when_asked(repo):
    commit_branch(repo, "evolve/c", {"prompts/system.md": "Hi.\n"})
    d = diff_of(repo, "evolve/c")
    assert "\x1b[32m+Hi.\x1b[0m" in d.render("text", color=True)
    assert "\x1b[" not in d.render("text") and "\x1b[" not in d.render("markdown")
