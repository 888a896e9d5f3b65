"""A real OpenAI-compatible HTTP server on 127.0.0.1 that replays scripted answers.

Only the model's intelligence is fake: the client under test is the real
`openai` package talking real HTTP. Each request to POST /v1/chat/completions
(or /chat/completions) takes the next scripted step from the queue and the
server records the request body it got.

    with FakeOpenAI() as server:
        server.answer_json({...})                       # 200 with that JSON as the message content
        server.answer("not json")                       # 200 with raw content
        server.error(429, headers={"Retry-After": "0"}) # an HTTP error
        server.answer_json({...}, delay=2.0)            # answer late (client timeouts)
        ... base_url=server.base_url ...
        server.requests                                 # [{"path", "headers" (lower-case names), "body"}, ...]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Step:
    status: int = 200
    content: str | None = None  # the assistant message content (status 200)
    body: dict | None = None  # a raw JSON body, replacing the generated one
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    usage: dict | None = None
    finish_reason: str = "stop"
    drip: float = 0.0  # > 0: send the body one byte per `drip` seconds


class FakeOpenAI:
    def __init__(self, model: str = "fake-model"):
        self.model = model
        self.steps: deque[Step] = deque()
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------
    def answer(self, content: str, *, usage: dict | None = None, delay: float = 0.0,
               finish_reason: str = "stop") -> FakeOpenAI:
        self.steps.append(Step(content=content, delay=delay, finish_reason=finish_reason,
                               usage=usage or {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}))
        return self

    def answer_json(self, data, **kwargs) -> FakeOpenAI:
        return self.answer(json.dumps(data), **kwargs)

    def error(self, status: int, message: str = "scripted error", *, headers: dict | None = None,
              delay: float = 0.0) -> FakeOpenAI:
        body = {"error": {"message": message, "type": "fake_error", "code": status}}
        self.steps.append(Step(status=status, body=body, headers=headers or {}, delay=delay))
        return self

    def drip(self, content: str, interval: float) -> FakeOpenAI:
        """A 200 whose body arrives one byte per `interval` seconds: every read succeeds in time."""
        self.steps.append(Step(content=content, drip=interval))
        return self

    @property
    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    # -- lifecycle ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                if self.path not in ("/v1/chat/completions", "/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                with fake._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    fake.requests.append({"path": self.path, "headers": headers, "body": body})
                    step = fake.steps.popleft() if fake.steps else None
                if step is None:
                    # not retryable, so a test that under-scripts fails loudly
                    return self._send(400, {"error": {"message": "fake server: no scripted response left"}})
                if step.delay and fake._stop.wait(step.delay):
                    return
                if step.status != 200 or step.body is not None:
                    return self._send(step.status, step.body or {}, step.headers)
                if step.drip:
                    return _drip(self, step, fake._stop)
                self._send(200, {
                    "id": f"chatcmpl-fake-{len(fake.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", fake.model),
                    "choices": [{"index": 0, "finish_reason": step.finish_reason,
                                 "message": {"role": "assistant", "content": step.content}}],
                    "usage": step.usage,
                }, step.headers)

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    sent = dict(headers or {})
                    if status >= 400 and not any(k.lower().startswith("retry-after") for k in sent):
                        sent["retry-after-ms"] = "1"  # the client's own backoff (0.5 s and up) only slows tests
                    for key, value in sent.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever checks for shutdown every poll_interval (0.5 s by default): every test's teardown waited that
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _drip(handler: BaseHTTPRequestHandler, step: Step, stop: threading.Event) -> None:
    """Answer `step` one body byte per `step.drip` seconds, until done or the server stops."""
    data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": step.content}}]}).encode()
    handler.close_connection = True  # the client hangs up mid-body: no next request to read
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for i in range(len(data)):
            if stop.wait(step.drip):
                return
            handler.wfile.write(data[i:i + 1])
            handler.wfile.flush()
    except OSError:
        pass  # the client gave up at its deadline
