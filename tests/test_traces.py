"""Traces as observations: OTLP JSON (GenAI conventions) and LangSmith runs files."""

from __future__ import annotations

import json

from aevolve._ecosystem import langsmith, otel
from aevolve._state import schemas
from aevolve._state.observations import load_observations

from conftest import make_state_repo, run_cli

T0 = 1_715_000_000_000_000_000  # ns


def attr(key, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(trace, ident, parent, name, start_ms, end_ms, attrs=(), events=(), status=None) -> dict:
    out = {"traceId": trace, "spanId": ident, "name": name, "kind": 1,
           "startTimeUnixNano": str(T0 + start_ms * 1_000_000), "endTimeUnixNano": str(T0 + end_ms * 1_000_000),
           "attributes": [attr(k, v) for k, v in attrs],
           "events": [{"name": n, "timeUnixNano": str(T0), "attributes": [attr(k, v) for k, v in a]}
                      for n, a in events]}
    if parent:
        out["parentSpanId"] = parent
    if status:
        out["status"] = status
    return out


def export(*spans) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "support-bot")]},
                               "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]}


AGENT_TRACE = export(
    span("a1", "root", "", "invoke_agent support", 0, 900, [
        ("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", "support"),
        ("gen_ai.request.model", "gpt-4.1-mini")]),
    span("a1", "chat1", "root", "chat gpt-4.1-mini", 10, 400, [
        ("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4.1-mini"),
        ("gen_ai.usage.input_tokens", 120), ("gen_ai.usage.output_tokens", 30),
        ("gen_ai.input.messages", json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Can I return shoes after 40 days?"}]}])),
        ("gen_ai.output.messages", json.dumps([
            {"role": "assistant", "parts": [{"type": "tool_call", "name": "policy"}]}]))]),
    span("a1", "tool1", "root", "execute_tool policy", 410, 500, [
        ("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", "policy")]),
    span("a1", "chat2", "root", "chat gpt-4.1-mini", 510, 890, [
        ("gen_ai.operation.name", "chat"), ("gen_ai.usage.input_tokens", 200), ("gen_ai.usage.output_tokens", 40),
        ("gen_ai.output.messages", json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "No: returns close after 30 days."}]}]))]),
)

# older conventions: prompts as events and attributes, an error status
FAILED_TRACE = export(
    span("b2", "only", "", "chat", 0, 50, [
        ("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "m"),
        ("gen_ai.completion", "partial answer")],
        events=[("gen_ai.user.message", [("content", "What are your hours?")])],
        status={"code": 2, "message": "rate limited"}),
)


def write_otel(tmp_path, *lines) -> str:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def test_an_agent_span_tree_becomes_one_observation_with_its_steps(tmp_path):
    [record] = otel.convert("t.json", json.dumps(AGENT_TRACE)).records
    assert record["id"] == "otel-a1-root"
    assert record["task"] == "Can I return shoes after 40 days?"
    assert record["output"] == "No: returns close after 30 days."
    assert [s["operation"] for s in record["steps"]] == ["chat", "execute_tool", "chat"]
    assert record["steps"][1]["tool"] == "policy"
    assert record["feedback"]["success"] is True
    assert record["metadata"]["usage"] == {"input_tokens": 320, "output_tokens": 70}
    assert record["metadata"]["service"] == "support-bot" and "agent:support" in record["tags"]
    assert record["ts"] == "2024-05-06T12:53:20Z"
    assert not schemas.errors("observation", record)


def test_an_error_status_makes_the_run_unsuccessful_and_older_conventions_are_read():
    [record] = otel.convert("t.json", json.dumps(FAILED_TRACE)).records
    assert record["id"] == "otel-b2"
    assert (record["task"], record["output"]) == ("What are your hours?", "partial answer")
    assert record["feedback"]["success"] is False and "rate limited" in record["feedback"]["detail"]


def test_two_agent_invocations_in_one_trace_are_two_runs():
    doc = export(
        span("c3", "http", "", "POST /chat", 0, 100),
        span("c3", "ag1", "http", "invoke_agent", 1, 40, [("gen_ai.operation.name", "invoke_agent")]),
        span("c3", "sub", "ag1", "invoke_agent inner", 2, 30, [("gen_ai.operation.name", "invoke_agent")]),
        span("c3", "ag2", "http", "invoke_agent", 50, 90, [("gen_ai.operation.name", "invoke_agent")]),
    )
    records = otel.convert("t.json", json.dumps(doc)).records
    assert [r["id"] for r in records] == ["otel-c3-ag1", "otel-c3-ag2"]
    assert [s["name"] for s in records[0]["steps"]] == ["invoke_agent inner"]  # a nested agent is a step


def test_spans_of_one_trace_split_over_lines_are_joined():
    first, second = AGENT_TRACE["resourceSpans"][0]["scopeSpans"][0]["spans"][:2], \
        AGENT_TRACE["resourceSpans"][0]["scopeSpans"][0]["spans"][2:]
    text = json.dumps(export(*second)) + "\n" + json.dumps(export(*first)) + "\n"
    [record] = otel.convert("t.jsonl", text).records
    assert len(record["steps"]) == 3


def test_malformed_otel_records_are_reported_with_their_line():
    bad_span = span("d4", "x", "", "chat", 0, 1)
    del bad_span["startTimeUnixNano"]
    text = "\n".join([json.dumps(AGENT_TRACE), "{not json", json.dumps({"resourceLogs": []}),
                      json.dumps(export(bad_span))]) + "\n"
    converted = otel.convert("t.jsonl", text)
    assert len(converted.records) == 1
    assert converted.problems[0].startswith("t.jsonl:2: not JSON")
    assert converted.problems[1] == "t.jsonl:3: not an OTLP trace export (no `resourceSpans` list)"
    assert converted.problems[2].startswith("t.jsonl:4: /resourceSpans/0/scopeSpans/0/spans/0: `startTimeUnixNano`")


def test_observe_format_otel_ingests_runs_and_a_second_time_adds_nothing(tmp_path):
    root = make_state_repo(tmp_path / "s")
    path = write_otel(tmp_path, AGENT_TRACE, FAILED_TRACE)
    first = run_cli("observe", "--format", "otel", path, cwd=root)
    assert first.returncode == 0, first.stderr
    assert "ingested 2 run(s) from otel as observations" in first.stdout
    assert {r["id"] for r in load_observations(root)} == {"otel-a1-root", "otel-b2"}
    again = run_cli("observe", "--format", "otel", path, "--json", cwd=root)
    assert json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["duplicates"] == 2


def test_an_invalid_record_stops_observe_unless_skip_invalid(tmp_path):
    root = make_state_repo(tmp_path / "s")
    path = write_otel(tmp_path, AGENT_TRACE, "[1, 2")
    refused = run_cli("observe", "--format", "otel", path, cwd=root)
    assert refused.returncode == 3
    assert f"{path}:2: not JSON" in refused.stderr and "nothing was ingested" in refused.stderr
    assert load_observations(root) == []
    skipped = run_cli("observe", "--format", "otel", "--skip-invalid", path, cwd=root)
    assert skipped.returncode == 0, skipped.stderr
    assert f"skipped: {path}:2: not JSON" in skipped.stderr
    assert "1 invalid record(s) skipped" in skipped.stdout
    assert [r["id"] for r in load_observations(root)] == ["otel-a1-root"]


def test_skip_invalid_is_refused_for_observation_jsonl(tmp_path):
    root = make_state_repo(tmp_path / "s")
    result = run_cli("observe", "--skip-invalid", "x.jsonl", cwd=root)
    assert result.returncode == 2 and "--skip-invalid goes with --format otel" in result.stderr


def test_a_trace_file_over_observe_max_bytes_is_refused(tmp_path):
    root = make_state_repo(tmp_path / "s", {"aevolve.yaml": "observe: {max_bytes: 100}\n"})
    path = write_otel(tmp_path, AGENT_TRACE)
    result = run_cli("observe", "--format", "otel", path, cwd=root)
    assert result.returncode == 3 and "larger than 100 bytes" in result.stderr


# -- LangSmith ----------------------------------------------------------------------------


def ls_run(ident, trace, parent, run_type, start, **extra) -> dict:
    return {"id": ident, "trace_id": trace, "parent_run_id": parent, "run_type": run_type, "name": ident,
            "start_time": f"2024-05-01T12:00:{start:02d}.000000", "end_time": f"2024-05-01T12:00:{start + 1:02d}",
            "inputs": {}, "outputs": None, "error": None, **extra}


LS_RUNS = [
    ls_run("r1", "r1", None, "chain", 0, inputs={"question": "Can I return shoes?"},
           outputs={"output": "Within 30 days."}, feedback_stats={"correctness": {"n": 1, "avg": 1.0}}),
    ls_run("r1-llm", "r1", "r1", "llm", 1, inputs={"messages": []}, outputs={"generations": []},
           prompt_tokens=10, completion_tokens=5),
    ls_run("r1-tool", "r1", "r1-llm", "tool", 2, inputs={"input": "returns"}, outputs={"output": "30 days"}),
    ls_run("r2", "r2", None, "chain", 5, inputs={"question": "Hours?"}, error="TimeoutError: upstream"),
    ls_run("r3", "r3", None, "chain", 9, inputs={"q": "x", "lang": "en"}, outputs={"output": "y"},
           feedback_stats={"helpful": {"n": 2, "avg": 0.25}}),
]


def test_a_langsmith_trace_becomes_one_observation_with_its_runs_as_steps():
    text = "".join(json.dumps(r) + "\n" for r in LS_RUNS)
    records = {r["id"]: r for r in langsmith.convert("runs.jsonl", text).records}
    assert list(records) == ["langsmith-r1", "langsmith-r2", "langsmith-r3"]
    one = records["langsmith-r1"]
    assert (one["task"], one["output"]) == ("Can I return shoes?", "Within 30 days.")
    assert [s["run_type"] for s in one["steps"]] == ["llm", "tool"]
    assert one["feedback"] == {"success": True, "score": 1.0, "detail": "mean feedback score 1 over correctness"}
    assert one["ts"] == "2024-05-01T12:00:00Z"
    assert records["langsmith-r2"]["feedback"]["success"] is False
    assert "TimeoutError" in records["langsmith-r2"]["feedback"]["detail"]
    assert records["langsmith-r3"]["feedback"]["success"] is False  # mean score 0.25 < 0.5
    assert records["langsmith-r3"]["task"] == {"q": "x", "lang": "en"}
    assert all(not schemas.errors("observation", r) for r in records.values())


def test_unknown_langsmith_records_are_reported_with_their_line():
    text = json.dumps(LS_RUNS[0]) + "\n" + json.dumps({"id": "x"}) + "\n" + \
        json.dumps({**LS_RUNS[3], "run_type": "agentic"}) + "\n"
    converted = langsmith.convert("runs.jsonl", text)
    assert [r["id"] for r in converted.records] == ["langsmith-r1"]
    assert converted.problems == [
        "runs.jsonl:2: not a LangSmith run: trace_id, run_type, start_time missing",
        "runs.jsonl:3: unknown run_type 'agentic' (one of chain, llm, tool, retriever, prompt, parser, embedding)",
    ]


def test_observe_format_langsmith_ingests_from_stdin(tmp_path):
    root = make_state_repo(tmp_path / "s")
    text = "".join(json.dumps(r) + "\n" for r in LS_RUNS)
    result = run_cli("observe", "--format", "langsmith", "-", cwd=root, input=text.encode())
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in load_observations(root, failed=True)] == ["langsmith-r2", "langsmith-r3"]
