"""`aevolve import letta` / `aevolve export letta`: Letta Agent Files in and out of a state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git, run_cli

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "letta"
SAMPLES = sorted(FIXTURES.glob("*.af")) if FIXTURES.is_dir() else []


def agent_file(**agent) -> dict:
    """A small Agent File of one agent with two blocks and two tools."""
    base = {
        "name": "helper", "id": "agent-0", "agent_type": "letta_v1_agent", "description": "helps",
        "system": "You are helpful.\n", "block_ids": ["block-0", "block-1"], "tool_ids": ["tool-0", "tool-1"],
        "llm_config": {"model": "gpt-4o-mini", "temperature": 0.7, "context_window": 32000},
        "embedding_config": {"embedding_model": "text-embedding-3-small"}, "tool_rules": [], "messages": [],
        "in_context_message_ids": [],
    }
    base.update(agent)
    return {
        "agents": [base], "groups": [], "files": [], "sources": [], "mcp_servers": [],
        "metadata": {"revision_id": "abc"}, "created_at": "2025-01-01T00:00:00+00:00",
        "blocks": [
            {"id": "block-0", "label": "human", "value": "\nName: Ada\n", "limit": 5000,
             "description": "About the user.", "read_only": False, "metadata": {}},
            {"id": "block-1", "label": "persona", "value": "I am Sam.", "limit": 20000, "description": None,
             "read_only": True, "metadata": {}},
        ],
        "tools": [
            {"id": "tool-0", "name": "lookup", "tool_type": "custom", "source_type": "python",
             "description": "Look a thing up.", "source_code": "def lookup(q: str) -> str:\n    return q\n",
             "json_schema": {"name": "lookup", "description": "Look a thing up.",
                             "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                                            "required": ["q"]}}, "tags": []},
            {"id": "tool-1", "name": "send_message", "tool_type": "letta_core", "source_type": "python",
             "description": "Say something.", "source_code": None,
             "json_schema": {"name": "send_message", "description": "Say something.",
                             "parameters": {"type": "object", "properties": {"message": {"type": "string"}},
                                            "required": ["message"]}}, "tags": ["letta_core"]},
        ],
    }


def write_af(path: Path, doc: dict, *, as_string: bool = False) -> Path:
    text = json.dumps(doc)
    path.write_text(json.dumps(text) if as_string else text)
    return path


def state_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def import_(src: Path, dest: Path, *extra):
    result = run_cli("import", "letta", src, dest, *extra)
    assert result.returncode == 0, result.stderr
    return result


def test_import_makes_a_state_repository_that_validates(tmp_path):
    import_(write_af(tmp_path / "a.af", agent_file()), tmp_path / "st")
    assert git(tmp_path / "st", "log", "--format=%s", "main").strip() == "aevolve: adopt agent state"
    result = run_cli("validate", cwd=tmp_path / "st")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 warnings" in result.stdout


def test_import_maps_each_part_of_the_agent_file_to_its_home(tmp_path):
    import yaml

    import_(write_af(tmp_path / "a.af", agent_file()), tmp_path / "st")
    root = tmp_path / "st"
    assert (root / "prompts/system.md").read_text() == "You are helpful.\n"
    human = (root / "prompts/blocks/human.md").read_text()
    assert human == "---\nlabel: human\ndescription: About the user.\nlimit: 5000\nread_only: false\n---\n\nName: Ada\n"
    registry = yaml.safe_load((root / "tools/registry.yaml").read_text())["tools"]
    assert registry[0] == {"name": "lookup", "description": "Look a thing up.",
                           "parameters": {"q": {"type": "string"}}, "required": ["q"], "file": "tools/src/lookup.py"}
    assert (root / "tools/src/lookup.py").read_text().startswith("def lookup")
    manifest = yaml.safe_load((root / "manifest.yaml").read_text())
    assert manifest["name"] == "helper" and manifest["description"] == "helps"
    assert manifest["metadata"]["letta"]["llm_config"]["model"] == "gpt-4o-mini"


def test_tool_sources_are_protected_from_evolvers(tmp_path):
    from aevolve._config import is_protected, resolve
    from aevolve._git.repo import Repo
    from aevolve._state.model import State

    import_(write_af(tmp_path / "a.af", agent_file()), tmp_path / "st")
    config = resolve(State.from_tree(Repo.open(tmp_path / "st"), "main").config())
    assert is_protected("tools/src/lookup.py", config)
    assert not is_protected("tools/registry.yaml", config)


def test_a_json_string_holding_the_document_is_read(tmp_path):
    import_(write_af(tmp_path / "a.af", agent_file(), as_string=True), tmp_path / "st")
    assert (tmp_path / "st/prompts/blocks/persona.md").read_text().endswith("---\nI am Sam.")


def test_import_export_import_gives_the_same_state(tmp_path):
    import_(write_af(tmp_path / "a.af", agent_file()), tmp_path / "one")
    assert run_cli("export", "letta", "-o", tmp_path / "b.af", cwd=tmp_path / "one").returncode == 0
    import_(tmp_path / "b.af", tmp_path / "two")
    assert state_files(tmp_path / "one") == state_files(tmp_path / "two")


def test_export_writes_back_the_document_it_was_imported_from(tmp_path):
    doc = agent_file()
    import_(write_af(tmp_path / "a.af", doc), tmp_path / "st")
    out = run_cli("export", "letta", "-o", "-", cwd=tmp_path / "st")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == doc


@pytest.mark.skipif(not SAMPLES, reason="no shared Letta fixtures beside the project")
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_each_fixture_round_trips(tmp_path, sample):
    from aevolve._ecosystem.letta import read_agent_file

    import_(sample, tmp_path / "one")
    assert run_cli("validate", cwd=tmp_path / "one").returncode == 0
    assert run_cli("export", "letta", "main", "-o", tmp_path / "b.af", cwd=tmp_path / "one").returncode == 0
    assert json.loads((tmp_path / "b.af").read_text()) == read_agent_file(sample)
    import_(tmp_path / "b.af", tmp_path / "two")
    assert state_files(tmp_path / "one") == state_files(tmp_path / "two")


def test_export_follows_edits_of_blocks_and_tools(tmp_path):
    import_(write_af(tmp_path / "a.af", agent_file()), tmp_path / "st")
    root = tmp_path / "st"
    text = (root / "prompts/blocks/human.md").read_text().replace("Ada", "Grace")
    (root / "prompts/blocks/human.md").write_text(text)
    (root / "prompts/blocks/todo.md").write_text("---\nlabel: todo\nlimit: 100\n---\n- call back")
    registry = (root / "tools/registry.yaml").read_text()
    (root / "tools/registry.yaml").write_text(registry[:registry.index("- name: send_message")])
    git(root, "add", "-A")
    git(root, "commit", "-qm", "edit")
    doc = json.loads(run_cli("export", "letta", "-o", "-", cwd=root).stdout)
    blocks = {b["label"]: b for b in doc["blocks"]}
    assert blocks["human"]["value"] == "\nName: Grace\n"
    assert blocks["todo"]["value"] == "- call back" and blocks["todo"]["id"] in doc["agents"][0]["block_ids"]
    assert [t["name"] for t in doc["tools"]] == ["lookup"]
    assert doc["agents"][0]["tool_ids"] == ["tool-0"]


def test_user_turns_of_the_history_become_observations(tmp_path):
    messages = [
        {"id": "m1", "role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"id": "m2", "role": "user", "content": [{"type": "text", "text": "Where is my order?"}],
         "created_at": "2025-01-02T03:04:05+00:00"},
        {"id": "m3", "role": "assistant", "content": [], "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "send_message", "arguments": json.dumps({"message": "On its way."})}}]},
    ]
    result = import_(write_af(tmp_path / "a.af", agent_file(messages=messages)), tmp_path / "st", "--json")
    assert json.loads(result.stdout)["observations"] == 1
    shown = run_cli("observations", "--json", cwd=tmp_path / "st")
    [obs] = json.loads(shown.stdout)
    assert (obs["task"], obs["output"], obs["ts"]) == ("Where is my order?", "On its way.", "2025-01-02T03:04:05+00:00")


def test_hostile_labels_and_names_stay_inside_their_folders(tmp_path):
    doc = agent_file()
    doc["blocks"][0]["label"] = "../../escape"
    doc["tools"][0]["name"] = "../../../evil"
    import_(write_af(tmp_path / "a.af", doc), tmp_path / "st")
    assert not (tmp_path / "escape.md").exists() and not (tmp_path / "evil.py").exists()
    assert (tmp_path / "st/prompts/blocks/escape.md").is_file() and (tmp_path / "st/tools/src/evil.py").is_file()


def test_import_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "keep.txt").write_text("mine")
    result = run_cli("import", "letta", write_af(tmp_path / "a.af", agent_file()), tmp_path / "st")
    assert result.returncode == 2 and "not an empty folder" in result.stderr
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == ["keep.txt"]


def test_a_file_of_several_agents_is_refused(tmp_path):
    doc = agent_file()
    doc["agents"].append(dict(doc["agents"][0], name="other"))
    result = run_cli("import", "letta", write_af(tmp_path / "a.af", doc), tmp_path / "st")
    assert result.returncode == 3 and "holds 2 agents" in result.stderr
    assert not (tmp_path / "st").exists()


def test_broken_json_is_reported_with_its_line(tmp_path):
    (tmp_path / "a.af").write_text('{\n  "agents": [\n    {"name": }\n')
    result = run_cli("import", "letta", tmp_path / "a.af", tmp_path / "st")
    assert result.returncode == 3 and "a.af:3: broken JSON" in result.stderr
