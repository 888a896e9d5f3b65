"""Letta Agent Files (`.af`) to a state and back.

Every field of the Agent File has one home. What aevolve understands goes to the
layout files, so evolvers, validate and the diff see it:

    prompts/system.md              the agent's `system` prompt, as written
    prompts/blocks/<label>.md      one memory block: front matter (label, description, limit,
                                   read_only, as present) and the block's value as the body
    tools/registry.yaml            name, description, parameters and required of each tool's JSON schema
    tools/src/<name>.<ext>         the tool's source code (protected: aevolve.yaml protection.protected)
    manifest.yaml                  name, description; metadata.letta: agent_type and the LLM settings

Everything else (ids, tool rules, the message history, embedding details left null, groups...)
stays in `letta/agent-file.json`, the document with those fields taken out, so an
export puts the files back into it. Import -> export -> import gives the same files.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aevolve._ecosystem.files import read_bounded
from aevolve._errors import FileError, InvalidInput

SIDECAR = "letta/agent-file.json"
SYSTEM_PROMPT = "prompts/system.md"
BLOCKS = "prompts/blocks/"
TOOL_SOURCES = "tools/src/"
REGISTRY = "tools/registry.yaml"
MANIFEST = "manifest.yaml"
BLOCK_KEYS = ("label", "description", "limit", "read_only")
LLM_KEYS = ("llm_config", "embedding_config", "model", "embedding", "model_settings", "context_window_limit",
            "embedding_chunk_size", "max_tokens", "max_reasoning_tokens", "enable_reasoner", "reasoning",
            "response_format", "parallel_tool_calls")
IDENTITY_KEYS = ("name", "description", "agent_type")
SOURCE_SUFFIX = {"python": ".py", "typescript": ".ts", "javascript": ".js"}
MAX_BYTES = 256 * 1024 * 1024  # a larger .af is refused before it is parsed
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Mapped:
    """The files an Agent File becomes (path -> text) and its message history."""

    files: dict[str, str] = field(default_factory=dict)
    messages: list = field(default_factory=list)
    agent_name: str = ""


# -- reading an .af ---------------------------------------------------------------


def read_agent_file(path: str | Path) -> dict:
    """The Agent File document; a JSON string holding the document (as some exporters wrote
    it) is read too. InvalidInput says where the file breaks."""
    name = str(path)
    data = read_bounded(path, MAX_BYTES)
    doc = _parse_json(name, data)
    if isinstance(doc, str):
        doc = _parse_json(f"{name} (the JSON document inside its string)", doc.encode("utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("agents"), list):
        raise InvalidInput(f"{name}: not a Letta Agent File: expected a JSON object with an `agents` list")
    agents = doc["agents"]
    if len(agents) != 1 or not isinstance(agents[0], dict):
        raise InvalidInput(f"{name}: holds {len(agents)} agents; aevolve imports an Agent File with exactly "
                           "one agent (a state repository is one agent)")
    for key in ("blocks", "tools"):
        if not isinstance(doc.get(key, []), list):
            raise InvalidInput(f"{name}: `{key}` must be a list")
    return doc


def _parse_json(name: str, data: bytes):
    from aevolve._json import loads

    try:
        return loads(data)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name}:{exc.lineno}: broken JSON: {exc.msg} (column {exc.colno})") from None


# -- an .af to files -----------------------------------------------------------------


def to_files(doc: dict) -> Mapped:
    """The state files of an Agent File (see the module docstring)."""
    rest = copy.deepcopy(doc)
    agent = rest["agents"][0]
    out = Mapped(messages=list(agent.get("messages") or []))
    if isinstance(agent.get("system"), str):
        out.files[SYSTEM_PROMPT] = agent.pop("system")
    out.files[MANIFEST] = _manifest_text(agent)
    out.agent_name = str(_take_manifest_fields(agent).get("name", ""))
    taken: set[str] = set()
    rest["blocks"] = [_block_to_file(block, out.files, taken) for block in rest.get("blocks", [])]
    entries: list[dict] = []
    rest["tools"] = [_tool_to_entry(tool, entries, out.files, taken) for tool in rest.get("tools", [])]
    if entries or "tools" in doc:
        out.files[REGISTRY] = yaml_text({"tools": entries})
    out.files[SIDECAR] = json.dumps(rest, indent=2, ensure_ascii=False) + "\n"
    return out


def _take_manifest_fields(agent: dict) -> dict:
    """Identity and LLM settings leave the agent for the manifest (nulls stay behind)."""
    taken = {}
    for key in (*IDENTITY_KEYS, *LLM_KEYS):
        value = agent.get(key)
        if value is None or (key == "name" and value == ""):
            continue
        if key in IDENTITY_KEYS and not isinstance(value, str):
            continue
        taken[key] = agent.pop(key)
    return taken


def _manifest_text(agent: dict) -> str:
    fields = _take_manifest_fields(copy.deepcopy(agent))
    manifest: dict = {"name": fields.get("name") or "letta-agent", "version": "0.1.0", "contract_version": "1.0"}
    if "description" in fields:
        manifest["description"] = fields["description"]
    manifest["agent"] = {"type": "letta"}
    manifest["evolvable_layers"] = ["prompts", "skills", "tools", "memory"]
    manifest["metadata"] = {"letta": {k: v for k, v in fields.items() if k not in ("name", "description")}}
    return yaml_text(manifest)


def yaml_text(value) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, data: str):  # multi-line text as a `|` block, which reads like the text itself
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(value, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)


def safe_name(text: str, taken: set[str], prefix: str, suffix: str) -> str:
    """A path under `prefix` for `text` that no other file took: hostile labels stay inside."""
    stem = _UNSAFE.sub("-", text).strip("-.")[:100] or "item"
    path, n = f"{prefix}{stem}{suffix}", 1
    while path.lower() in taken:
        n += 1
        path = f"{prefix}{stem}-{n}{suffix}"
    taken.add(path.lower())
    return path


def _block_to_file(block, files: dict[str, str], taken: set[str]):
    if not (isinstance(block, dict) and isinstance(block.get("label"), str) and isinstance(block.get("value"), str)):
        return block  # not a block aevolve understands: kept whole, exported as it was
    front = {k: block[k] for k in BLOCK_KEYS if k in block}
    path = safe_name(block["label"], taken, BLOCKS, ".md")
    files[path] = "---\n" + yaml_text(front) + "---\n" + block["value"]
    return {k: v for k, v in block.items() if k not in BLOCK_KEYS[1:] and k != "value"}


def _tool_to_entry(tool, entries: list[dict], files: dict[str, str], taken: set[str]):
    if not (isinstance(tool, dict) and isinstance(tool.get("name"), str) and tool["name"]):
        return tool
    rest = copy.deepcopy(tool)
    entry: dict = {"name": rest["name"]}
    if isinstance(rest.get("description"), str):
        entry["description"] = rest.pop("description")
    schema = rest.get("json_schema")
    if isinstance(schema, dict):
        if schema.get("name") == entry["name"]:
            del schema["name"]
        if "description" in entry and schema.get("description") == entry["description"]:
            del schema["description"]
        params = schema.get("parameters")
        if isinstance(params, dict) and isinstance(params.get("properties"), dict):
            entry["parameters"] = params.pop("properties")
            if isinstance(params.get("required"), list):
                entry["required"] = params.pop("required")
    if isinstance(rest.get("source_code"), str):
        suffix = SOURCE_SUFFIX.get(str(rest.get("source_type")), ".txt")
        entry["file"] = safe_name(rest["name"], taken, TOOL_SOURCES, suffix)
        files[entry["file"]] = rest.pop("source_code")
    entries.append(entry)
    return rest


# -- files to an .af ----------------------------------------------------------------


def from_state(state) -> dict:
    """The Agent File of a state (a `State` from any source): the kept document with the
    layout files put back. A state never imported from Letta gets a fresh document."""
    doc = _sidecar(state)
    agent = doc["agents"][0]
    if SYSTEM_PROMPT in state:
        agent["system"] = state.text(SYSTEM_PROMPT)
    _put_manifest(agent, state)
    doc["blocks"] = _blocks_back(state, doc.get("blocks") or [], agent)
    doc["tools"] = _tools_back(state, doc.get("tools") or [], agent)
    return doc


def _sidecar(state) -> dict:
    if SIDECAR not in state:
        return {"agents": [{}], "groups": [], "blocks": [], "files": [], "sources": [], "tools": [],
                "mcp_servers": [], "metadata": {}}
    try:
        doc = json.loads(state.text(SIDECAR))
    except json.JSONDecodeError as exc:
        raise FileError(SIDECAR, f"broken JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    agents = doc.get("agents") if isinstance(doc, dict) else None
    if not (isinstance(agents, list) and len(agents) == 1 and isinstance(agents[0], dict)):
        raise FileError(SIDECAR, "expected the kept Agent File: an object with one agent in `agents`", 1)
    return doc


def _put_manifest(agent: dict, state) -> None:
    manifest = state.manifest() if MANIFEST in state else {}
    letta = (manifest.get("metadata") or {}).get("letta") or {}
    if not isinstance(letta, dict):
        raise FileError(MANIFEST, "metadata.letta must be a mapping")
    agent.update({k: v for k, v in letta.items() if k in ("agent_type", *LLM_KEYS)})
    if "name" not in agent and isinstance(manifest.get("name"), str):  # a null or empty name stays as it was
        agent["name"] = manifest["name"]
    if isinstance(manifest.get("description"), str):
        agent["description"] = manifest["description"]


def parse_block(path: str, text: str) -> tuple[dict, str]:
    """(front matter, value) of a block file; the value is the body exactly as written."""
    from aevolve._state.model import load_yaml

    if not text.startswith("---\n"):
        raise FileError(path, "a memory block file starts with front matter ('---' on the first line)", 1)
    end = text.find("\n---\n", 3)
    if end < 0:
        raise FileError(path, "the front matter is not closed by a '---' line", 1)
    front = load_yaml(text[4:end + 1], path, line_offset=1)
    if not isinstance(front, dict) or not isinstance(front.get("label"), str):
        raise FileError(path, "the front matter must be a mapping with a `label` string", 2)
    return front, text[end + 5:]


def _blocks_back(state, kept: list, agent: dict) -> list:
    files = {}
    for path in state.paths(BLOCKS):
        if path.endswith(".md"):
            front, value = parse_block(path, state.text(path))
            files[front["label"]] = {**front, "value": value}
    return _merge_back(kept, files, agent, "block_ids", "label", "block")


def _tools_back(state, kept: list, agent: dict) -> list:
    registry = state.yaml(REGISTRY, default=None) if REGISTRY in state else None
    entries = (registry or {}).get("tools") or [] if isinstance(registry, dict) else []
    files = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            files[entry["name"]] = entry
    merged = _merge_back(kept, dict(files), agent, "tool_ids", "name", "tool")
    return [_tool_back(tool, files[tool["name"]], state) if isinstance(tool, dict) and tool.get("name") in files
            else tool for tool in merged]


def _merge_back(kept: list, current: dict[str, dict], agent: dict, ids_key: str, key: str, kind: str) -> list:
    """Kept records in their order with the files' values over them; records whose file is
    gone are dropped (and their ids), records with a new file are added at the end."""
    out, dropped = [], set()
    for record in kept:
        name = record.get(key) if isinstance(record, dict) else None
        mapped = isinstance(record, dict) and ((key == "label" and "value" not in record) or
                                               (key == "name" and isinstance(name, str)))
        if not mapped:
            out.append(record)
        elif name in current:
            values = current.pop(name)
            out.append({**record, **values} if kind == "block" else dict(record))
        else:
            dropped.add(record.get("id"))
    ids = agent.get(ids_key) if isinstance(agent.get(ids_key), list) else None
    for n, (name, values) in enumerate(current.items(), 1):
        new_id = f"{kind}-aevolve-{n}"
        out.append({"id": new_id, **values} if kind == "block" else {"id": new_id, "name": name,
                                                                     "tool_type": "custom"})
        if ids is not None:
            ids.append(new_id)
    if ids is not None:
        agent[ids_key] = [i for i in ids if i not in dropped]
    return out


def _tool_back(tool: dict, entry: dict, state) -> dict:
    tool = copy.deepcopy(tool)
    if "description" in entry:
        tool["description"] = entry["description"]
    file = entry.get("file")
    if isinstance(file, str):
        if file not in state:
            raise FileError(REGISTRY, f"tool {entry['name']!r}: its file {file!r} is not in the state")
        tool["source_code"] = state.text(file)
        tool.setdefault("source_type", "python")
    elif "source_code" not in tool:
        tool["source_code"] = None
    schema = tool.get("json_schema")
    if schema is None and "parameters" not in entry:
        return tool
    schema = schema if isinstance(schema, dict) else {}
    schema.setdefault("name", entry["name"])
    if "description" in entry:
        schema.setdefault("description", entry["description"])
    params: dict = schema["parameters"] if isinstance(schema.get("parameters"), dict) else {"type": "object"}
    if "parameters" in entry:
        params["properties"] = entry["parameters"]
    if "required" in entry:
        params["required"] = entry["required"]
    schema["parameters"] = params
    tool["json_schema"] = schema
    return tool


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
