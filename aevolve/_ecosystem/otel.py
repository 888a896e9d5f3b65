"""OpenTelemetry traces (OTLP JSON, GenAI semantic conventions) as observations.

Input: the OTLP JSON encoding of ExportTraceServiceRequest (`resourceSpans` ->
`scopeSpans` -> `spans`), one document in the file or one per line (what the
collector's file exporter writes). Spans are grouped by trace; an agent run is a
span tree rooted at an `invoke_agent` span (`gen_ai.operation.name`) with no
`invoke_agent` above it, or the whole trace when it has none. Each run becomes
one observation: the first user message is its `task`, the last assistant
message its `output`, every other span of the tree a step (operation, model,
tool, token usage, status, and the messages when the instrumentation captured
them), and an ERROR status anywhere in the tree makes it unsuccessful.

Messages are read where instrumentations put them: `gen_ai.input.messages` /
`gen_ai.output.messages` (current conventions: JSON with `role` and `parts`),
the events `gen_ai.system.message`, `gen_ai.user.message`,
`gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice` (v1.36 and
before), and the attributes `gen_ai.prompt` / `gen_ai.completion` (also indexed:
`gen_ai.prompt.0.content`, as OpenLLMetry writes them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aevolve._ecosystem.traces import Converted, iso, safe_id
from aevolve._json import loads

ERROR = 2  # Status.code: 0 unset, 1 ok, 2 error
AGENT_OPS = ("invoke_agent",)
MAX_TEXT = 20_000  # characters of one message kept in a step: observations stay readable


@dataclass
class Span:
    trace: str
    id: str
    parent: str
    name: str
    start: int  # ns since the epoch
    end: int
    attrs: dict
    events: list[tuple[str, dict]]
    status: int
    message: str
    service: str
    where: str  # FILE:LINE pointer, for messages
    children: list[Span] = field(default_factory=list)

    @property
    def operation(self) -> str:
        return str(self.attrs.get("gen_ai.operation.name") or "")


class Malformed(ValueError):
    pass


# -- reading the file -------------------------------------------------------------------


def _documents(name: str, text: str):
    """(line, document) of a whole-file document or of one document per line; a line
    that is not JSON yields (line, JSONDecodeError)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            yield 1, loads(stripped)
            return
        except json.JSONDecodeError:
            pass  # JSON Lines, then
    for number, raw in enumerate(text.split("\n"), 1):
        if raw.strip():
            try:
                yield number, loads(raw)
            except json.JSONDecodeError as exc:
                yield number, exc


def value_of(value):
    """The Python value of an OTLP AnyValue ({"stringValue": ...}, {"intValue": "3"}...)."""
    if not isinstance(value, dict):
        raise Malformed(f"an attribute value must be an object, not {type(value).__name__}")
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a JSON string in OTLP JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [value_of(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values") or [])
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None  # an empty AnyValue


def attributes(items) -> dict:
    if not isinstance(items, list):
        raise Malformed("`attributes` must be a list of {key, value}")
    out = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise Malformed("an attribute needs a string `key`")
        try:
            out[item["key"]] = value_of(item.get("value") or {})
        except (TypeError, ValueError) as exc:
            raise Malformed(f"attribute {item['key']!r}: {exc}") from None
    return out


def _nanos(span: dict, key: str) -> int:
    try:
        return int(span[key])
    except KeyError:
        raise Malformed(f"`{key}` is missing") from None
    except (TypeError, ValueError):
        raise Malformed(f"`{key}` must be nanoseconds since the epoch, not {span[key]!r}") from None


def _status(span: dict) -> tuple[int, str]:
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise Malformed("`status` must be an object")
    code = status.get("code", 0)
    if isinstance(code, str):  # the enum's name is also valid protobuf JSON
        code = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(code, -1)
    if code not in (0, 1, 2):
        raise Malformed(f"unknown status code {status.get('code')!r}")
    return code, str(status.get("message") or "")


def _span(raw, service: str, where: str) -> Span:
    if not isinstance(raw, dict):
        raise Malformed("a span must be an object")
    trace, ident = raw.get("traceId"), raw.get("spanId")
    if not isinstance(trace, str) or not trace or not isinstance(ident, str) or not ident:
        raise Malformed("a span needs `traceId` and `spanId` (hex strings)")
    events = []
    for event in raw.get("events") or []:
        if not isinstance(event, dict):
            raise Malformed("an event must be an object")
        events.append((str(event.get("name") or ""), attributes(event.get("attributes") or [])))
    code, message = _status(raw)
    start = _nanos(raw, "startTimeUnixNano")
    end = _nanos(raw, "endTimeUnixNano") if "endTimeUnixNano" in raw else start
    return Span(trace, ident, str(raw.get("parentSpanId") or ""), str(raw.get("name") or ""), start, end,
                attributes(raw.get("attributes") or []), events, code, message, service, where)


def _spans_of(doc, name: str, line: int, problems: list[str]) -> list[Span]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        problems.append(f"{name}:{line}: not an OTLP trace export (no `resourceSpans` list)")
        return []
    spans = []
    for r, resource in enumerate(doc["resourceSpans"]):
        try:
            res = resource.get("resource") or {} if isinstance(resource, dict) else None
            if res is None:
                raise Malformed("a resourceSpans entry must be an object")
            service = str(attributes(res.get("attributes") or []).get("service.name") or "")
        except Malformed as exc:
            problems.append(f"{name}:{line}: /resourceSpans/{r}: {exc}")
            continue
        for s, scope in enumerate(resource.get("scopeSpans") or resource.get("instrumentationLibrarySpans") or []):
            for k, raw in enumerate(scope.get("spans") or [] if isinstance(scope, dict) else []):
                pointer = f"/resourceSpans/{r}/scopeSpans/{s}/spans/{k}"
                try:
                    spans.append(_span(raw, service, f"{name}:{line}"))
                except Malformed as exc:
                    problems.append(f"{name}:{line}: {pointer}: {exc}")
    return spans


# -- messages ---------------------------------------------------------------------------


def _text(content) -> str:
    """The text of a message body: a string, {content}, or parts [{type: text, content}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in ("content", "text", "parts", "message"):
            if key in content:
                return _text(content[key])
        return ""
    if isinstance(content, list):
        return "".join(_text(p) for p in content if not isinstance(p, dict) or p.get("type", "text") == "text")
    return ""


def _maybe_json(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _structured(value) -> list[tuple[str, str]]:
    value = _maybe_json(value)
    if isinstance(value, str):
        return [("", value)]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [(str(m.get("role") or ""), _text(m)) for m in value if isinstance(m, dict)]


def _indexed(attrs: dict, prefix: str) -> list[tuple[str, str]]:
    out = []
    for i in range(1000):
        content, role = attrs.get(f"{prefix}.{i}.content"), attrs.get(f"{prefix}.{i}.role")
        if content is None and role is None:
            break
        out.append((str(role or ""), _text(_maybe_json(content)) if content is not None else ""))
    return out


EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
               "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_text(attrs: dict) -> str:
    for key in ("gen_ai.event.content", "content", "message", "gen_ai.prompt", "gen_ai.completion"):
        if key in attrs:
            return _text(_maybe_json(attrs[key]))
    return ""


def messages(span: Span) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(input messages, output messages) of a span, as (role, text)."""
    a = span.attrs
    inputs = _structured(a["gen_ai.input.messages"]) if "gen_ai.input.messages" in a else []
    outputs = _structured(a["gen_ai.output.messages"]) if "gen_ai.output.messages" in a else []
    inputs = inputs or _indexed(a, "gen_ai.prompt") or (_structured(a["gen_ai.prompt"]) if "gen_ai.prompt" in a else [])
    outputs = outputs or _indexed(a, "gen_ai.completion") or (
        [("assistant", t) for _, t in _structured(a["gen_ai.completion"])] if "gen_ai.completion" in a else [])
    for name, attrs in span.events:
        if name in EVENT_ROLES and not any(r == EVENT_ROLES[name] for r, _ in inputs):
            inputs.append((EVENT_ROLES[name], _event_text(attrs)))
        elif name == "gen_ai.choice" and not outputs:
            outputs.append(("assistant", _event_text(attrs)))
    return inputs, [(r or "assistant", t) for r, t in outputs]


# -- runs -------------------------------------------------------------------------------


def _runs(spans: list[Span]) -> list[Span]:
    """The root span of every agent run: top-level invoke_agent spans of each trace, or
    the trace's root(s) when it has none."""
    by_id = {(s.trace, s.id): s for s in spans}
    for span in spans:
        parent = by_id.get((span.trace, span.parent))
        if parent is not None and parent is not span:
            parent.children.append(span)
    roots = [s for s in spans if (s.trace, s.parent) not in by_id]
    runs: list[Span] = []
    for root in sorted(roots, key=lambda s: s.start):
        agents = _top_agents(root)
        runs.extend(agents or [root])
    return runs


def _top_agents(span: Span) -> list[Span]:
    if span.operation in AGENT_OPS:
        return [span]
    return [a for child in sorted(span.children, key=lambda s: s.start) for a in _top_agents(child)]


def _tree(root: Span) -> list[Span]:
    out, stack, seen = [], [root], set()
    while stack:
        span = stack.pop()
        if id(span) in seen:
            continue  # a cycle of parent ids: each span once
        seen.add(id(span))
        out.append(span)
        stack.extend(span.children)
    return sorted(out, key=lambda s: (s.start, s.end))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... [{len(text) - MAX_TEXT} more characters]"


def _step(span: Span, root: Span) -> dict:
    a = span.attrs
    inputs, outputs = messages(span)
    step = {
        "name": span.name, "operation": span.operation or None,
        "model": a.get("gen_ai.response.model") or a.get("gen_ai.request.model"),
        "tool": a.get("gen_ai.tool.name"), "agent": a.get("gen_ai.agent.name"),
        "input_tokens": a.get("gen_ai.usage.input_tokens"), "output_tokens": a.get("gen_ai.usage.output_tokens"),
        "start_ms": round((span.start - root.start) / 1e6, 3), "duration_ms": round((span.end - span.start) / 1e6, 3),
        "status": "error" if span.status == ERROR else "ok",
        "error": (span.message or a.get("error.type")) if span.status == ERROR else None,
        "input": [{"role": r, "content": _clip(t)} for r, t in inputs] or None,
        "output": [{"role": r, "content": _clip(t)} for r, t in outputs] or None,
        "tool_arguments": a.get("gen_ai.tool.call.arguments"), "tool_result": a.get("gen_ai.tool.call.result"),
    }
    return {k: v for k, v in step.items() if v is not None}


def _task_and_output(tree: list[Span]) -> tuple[str | None, str | None]:
    task = output = None
    for span in tree:  # the first user message of the run
        inputs, _ = messages(span)
        task = next((t for r, t in inputs if r in ("user", "")), None)
        if task is not None:
            break
    for span in sorted(tree, key=lambda s: s.end, reverse=True):  # the last answer
        _, outputs = messages(span)
        output = next((t for r, t in reversed(outputs) if r == "assistant"), None)
        if output is not None:
            break
    return task, output


def observation(root: Span) -> dict:
    tree = _tree(root)
    task, output = _task_and_output(tree)
    errors = [s for s in tree if s.status == ERROR]
    tokens = {key: sum(s.attrs[k] for s in tree if isinstance(s.attrs.get(k), int))
              for key, k in (("input_tokens", "gen_ai.usage.input_tokens"),
                             ("output_tokens", "gen_ai.usage.output_tokens"))}
    agent = root.attrs.get("gen_ai.agent.name")
    ident = f"otel-{root.trace}" if not root.parent and root.operation not in AGENT_OPS else \
        f"otel-{root.trace}-{root.id}"
    first = errors[0] if errors else None
    detail = (f"span {first.name!r} ended with an error: {first.message or first.attrs.get('error.type') or 'ERROR'}"
              if first else f"no span of trace {root.trace} reported an error")
    return {
        "id": safe_id(ident),
        "task": task if task is not None else root.name,
        "output": output,
        "steps": [_step(s, root) for s in tree if s is not root],
        "feedback": {"success": not errors, "detail": detail},
        "ts": iso(datetime.fromtimestamp(root.start / 1e9, UTC)),
        "tags": ["otel"] + ([f"agent:{agent}"] if agent else []),
        "metadata": {k: v for k, v in {
            "source": "otel", "trace_id": root.trace, "span_id": root.id, "service": root.service or None,
            "agent": agent, "model": root.attrs.get("gen_ai.request.model"),
            "duration_ms": round((root.end - root.start) / 1e6, 3), "usage": tokens,
            "spans": len(tree)}.items() if v is not None},
    }


def convert(name: str, text: str) -> Converted:
    out = Converted()
    spans: list[Span] = []
    for line, doc in _documents(name, text):
        if isinstance(doc, json.JSONDecodeError):
            out.problems.append(f"{name}:{line}: not JSON ({doc.msg})")
            continue
        spans += _spans_of(doc, name, line, out.problems)
    out.records = [observation(root) for root in _runs(spans)]
    return out
