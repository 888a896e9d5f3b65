"""A Letta message history as observations: one per user turn.

A turn is a user message and everything after it up to the next user message: the
tool calls and their returns become `steps`, the last thing said to the user (a
`send_message` call or an assistant message's text) the `output`. Letta records no
verdict on a turn, so each observation says `success: true` with a `detail` saying
no feedback was recorded: an evolver reads them as context, never as failures.
"""

from __future__ import annotations

import json
import re

NO_FEEDBACK = "imported from a Letta message history; Letta records no outcome, so none is claimed"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def text_of(content) -> str:
    """The text of a message's content: a string, or a list of parts with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _said(message: dict) -> str | None:
    """What an assistant message said to the user, if anything."""
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and function.get("name") == "send_message":
            try:
                args = json.loads(function.get("arguments") or "{}")
            except (TypeError, json.JSONDecodeError):
                continue
            if isinstance(args, dict) and isinstance(args.get("message"), str):
                return args["message"]
    text = text_of(message.get("content"))
    return text or None


def _step(message: dict) -> dict:
    step: dict = {"role": message.get("role")}
    if text_of(message.get("content")):
        step["content"] = text_of(message.get("content"))
    if message.get("tool_calls"):
        step["tool_calls"] = message["tool_calls"]
    if message.get("tool_call_id"):
        step["tool_call_id"] = message["tool_call_id"]
    return step


def _turns(messages: list) -> list[list[dict]]:
    turns: list[list[dict]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            turns.append([message])
        elif turns:
            turns[-1].append(message)
    return turns


def observations_of(messages: list, doc: dict) -> list[dict]:
    """One observation per user turn of the history (none without user messages)."""
    agent = doc["agents"][0]
    who = str(agent.get("id") or agent.get("name") or "agent")
    out = []
    for n, (user, *after) in enumerate(_turns(messages), 1):
        output = None
        for message in after:
            if message.get("role") == "assistant":
                output = _said(message) or output
        ts = user.get("created_at") if isinstance(user.get("created_at"), str) else doc.get("created_at")
        ident = _ID_UNSAFE.sub("-", f"letta-{who}-{user.get('id') or n}").strip("-")[:200]
        record = {"id": ident, "task": text_of(user.get("content")), "output": output,
                  "steps": [_step(m) for m in after],
                  "feedback": {"success": True, "detail": NO_FEEDBACK},
                  "tags": ["letta"], "ts": ts,
                  "metadata": {"source": "letta", "agent": agent.get("name"), "message_id": user.get("id")}}
        out.append(record)
    return out
