"""An exported LangSmith runs file (JSON Lines, one run a line) as observations.

Runs are grouped by `trace_id`; each trace's root run (no `parent_run_id`, or
one whose parent is not in the file) is one observation: its `inputs` the task,
its `outputs` the output, every other run of the trace a step (name, run_type,
inputs, outputs, error, tokens), in start order. The run is unsuccessful when
the root has an `error`, or when its `feedback_stats` hold scores and their
mean is below 0.5; that mean is the observation's `score`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aevolve._ecosystem.traces import Converted, iso, safe_id
from aevolve._json import loads

RUN_TYPES = ("chain", "llm", "tool", "retriever", "prompt", "parser", "embedding")
REQUIRED = ("id", "trace_id", "run_type", "start_time")


@dataclass
class Run:
    data: dict
    line: int
    start: datetime
    children: list[Run] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.data["id"])


class Malformed(ValueError):
    pass


def when(value, key: str) -> datetime:
    """An ISO date-time (LangSmith writes it without a zone: UTC) or epoch milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise Malformed(f"`{key}` is not a date-time: {value!r}")


def _run(line: int, data) -> Run:
    if not isinstance(data, dict):
        raise Malformed("a run must be a JSON object")
    missing = [k for k in REQUIRED if data.get(k) in (None, "")]
    if missing:
        raise Malformed(f"not a LangSmith run: {', '.join(missing)} missing")
    if data["run_type"] not in RUN_TYPES:
        raise Malformed(f"unknown run_type {data['run_type']!r} (one of {', '.join(RUN_TYPES)})")
    for key in ("inputs", "outputs", "feedback_stats", "extra"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise Malformed(f"`{key}` must be an object")
    if data.get("error") is not None and not isinstance(data["error"], str):
        raise Malformed("`error` must be text or null")
    return Run(data, line, when(data["start_time"], "start_time"))


def _unwrap(value):
    """{"input": x} -> x: a one-key mapping is what most chains take and give."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def _score(stats) -> float | None:
    if not isinstance(stats, dict):
        return None
    scores = [s["avg"] for s in stats.values()
              if isinstance(s, dict) and isinstance(s.get("avg"), (int, float)) and not isinstance(s["avg"], bool)]
    return sum(scores) / len(scores) if scores else None


def _step(run: Run) -> dict:
    d = run.data
    step = {"name": d.get("name"), "run_type": d["run_type"], "inputs": d.get("inputs"), "outputs": d.get("outputs"),
            "error": d.get("error"), "start": iso(run.start),
            "prompt_tokens": d.get("prompt_tokens"), "completion_tokens": d.get("completion_tokens")}
    return {k: v for k, v in step.items() if v is not None}


def _descendants(root: Run) -> list[Run]:
    out, stack, seen = [], list(root.children), {id(root)}
    while stack:
        run = stack.pop()
        if id(run) not in seen:
            seen.add(id(run))
            out.append(run)
            stack.extend(run.children)
    return sorted(out, key=lambda r: (r.start, str(r.data.get("dotted_order") or "")))


def observation(root: Run) -> dict:
    d = root.data
    score = _score(d.get("feedback_stats"))
    error = d.get("error")
    success = error is None and (score is None or score >= 0.5)
    if error is not None:
        detail = f"the run ended with an error: {error}"
    elif score is not None:
        detail = f"mean feedback score {score:g} over {', '.join(sorted(d['feedback_stats']))}"
    else:
        detail = "no error and no feedback recorded in LangSmith"
    feedback: dict = {"success": success, "detail": detail}
    if score is not None:
        feedback["score"] = score
    meta = (d.get("extra") or {}).get("metadata")
    metadata = {k: v for k, v in {
        "source": "langsmith", "run_id": root.id, "trace_id": str(d["trace_id"]), "name": d.get("name"),
        "run_type": d["run_type"], "session_id": d.get("session_id"), "feedback_stats": d.get("feedback_stats"),
        "total_tokens": d.get("total_tokens"), "metadata": meta if isinstance(meta, dict) else None,
        "end_time": iso(when(d["end_time"], "end_time")) if d.get("end_time") else None}.items() if v is not None}
    tags = ["langsmith"] + [str(t) for t in d.get("tags") or [] if isinstance(t, (str, int))]
    return {"id": safe_id(f"langsmith-{root.id}"), "task": _unwrap(d.get("inputs")),
            "output": _unwrap(d.get("outputs")), "steps": [_step(r) for r in _descendants(root)],
            "feedback": feedback, "ts": iso(root.start), "tags": tags, "metadata": metadata}


def convert(name: str, text: str) -> Converted:
    out = Converted()
    runs: list[Run] = []
    for number, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            runs.append(_run(number, loads(raw)))
        except json.JSONDecodeError as exc:
            out.problems.append(f"{name}:{number}: not JSON ({exc.msg})")
        except Malformed as exc:
            out.problems.append(f"{name}:{number}: {exc}")
    by_id = {r.id: r for r in runs}
    roots = []
    for run in runs:
        parent = by_id.get(str(run.data.get("parent_run_id") or ""))
        if parent is not None and parent is not run:
            parent.children.append(run)
        else:
            roots.append(run)
    out.records = [observation(r) for r in sorted(roots, key=lambda r: r.start)]
    return out
