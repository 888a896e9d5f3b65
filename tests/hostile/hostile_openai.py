"""A hostile OpenAI-compatible server on 127.0.0.1: one misbehaviour per server.

It speaks raw HTTP/1.1 over its own threaded socket server, so it can do what a
well-behaved framework never would: drip a body one byte at a time, stop after
the headers, send 50 MB, reset the connection half-way. Every request gets the
same behaviour, so a retry storm is just a server that keeps failing.

    with HostileOpenAI("drip", interval=0.2) as server:
        ... base_url=server.base_url ...
        server.requests        # how many requests arrived

Behaviours (keyword parameters in brackets):
- drip [interval]: a 200 with a Content-Length, then one body byte per `interval` seconds
- drip_headers [interval]: the status line and headers, one byte per `interval` seconds
- hang_after_headers: a 200 with a Content-Length, then silence
- raw [body, status, headers]: `body` (bytes) as is, with a Content-Length
- completion [content]: a well-formed chat completion whose message content is `content`
- status [status, headers]: an error status with a JSON error body (a 429/500 storm)
- huge [size]: a 200 that streams `size` bytes of JSON-looking filler (no Content-Length)
- reset: a 200 with a Content-Length, half the body, then a TCP reset
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time

THREAD_PREFIX = "hostile-openai"


def completion(content, **extra) -> dict:
    """The body of a well-formed chat completion answering `content`."""
    return {"id": "chatcmpl-hostile", "object": "chat.completion", "created": int(time.time()),
            "model": "hostile-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, **extra}


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def process_request(self, request, client_address):  # named threads: tests tell ours from the client's
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name=f"{THREAD_PREFIX}-handler", daemon=True)
        thread.start()


class HostileOpenAI:
    def __init__(self, behaviour: str, **params):
        self.behaviour = behaviour
        self.params = params
        self.requests = 0
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> HostileOpenAI:
        hostile = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    hostile._serve(self)
                except OSError:
                    pass  # the client hung up: that is what a deadline does

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"{THREAD_PREFIX}-accept", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)

    def __enter__(self) -> HostileOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- one request --------------------------------------------------------------------
    def _serve(self, handler) -> None:
        if not self._read_request(handler):
            return
        with self._lock:
            self.requests += 1
        getattr(self, "_" + self.behaviour)(handler.connection, **self.params)

    def _read_request(self, handler) -> bool:
        request_line = handler.rfile.readline(65537)
        if not request_line:
            return False
        length = 0
        while True:
            line = handler.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        with self._lock:
            self.bodies.append(body)
        return True

    @staticmethod
    def _head(status: int = 200, headers: dict | None = None, length: int | None = None) -> bytes:
        lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Hostile'}", "Content-Type: application/json",
                 "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _wait(self, seconds: float) -> bool:
        """Sleep; False when the server is stopping."""
        return not self._stop.wait(seconds)

    # -- behaviours ---------------------------------------------------------------------
    def _drip(self, conn, interval: float = 1.0) -> None:
        body = json.dumps(completion("x" * 10000)).encode()
        conn.sendall(self._head(length=len(body)))
        for i in range(len(body)):
            if not self._wait(interval):
                return
            conn.sendall(body[i:i + 1])

    def _drip_headers(self, conn, interval: float = 1.0) -> None:
        head = self._head(headers={f"X-Filler-{i}": "y" * 20 for i in range(200)})
        for i in range(len(head)):
            if not self._wait(interval):
                return
            conn.sendall(head[i:i + 1])

    def _hang_after_headers(self, conn) -> None:
        conn.sendall(self._head(length=1000))
        self._stop.wait(120)

    def _raw(self, conn, body: bytes = b"", status: int = 200, headers: dict | None = None) -> None:
        conn.sendall(self._head(status, headers, len(body)) + body)

    def _completion(self, conn, content=None) -> None:
        self._raw(conn, json.dumps(completion(content)).encode())

    def _status(self, conn, status: int = 500, headers: dict | None = None) -> None:
        body = json.dumps({"error": {"message": f"hostile {status}", "type": "hostile"}}).encode()
        headers = dict(headers or {})
        if not any(k.lower().startswith("retry-after") for k in headers):
            headers["retry-after-ms"] = "1"  # the client's own backoff (0.5 s and up) only slows tests
        self._raw(conn, body, status, headers)

    def _huge(self, conn, size: int = 50 * 1024 * 1024) -> None:
        conn.sendall(self._head())  # no length: the body ends when the connection does
        chunk = b'{"choices": [' + b" " * (1024 * 1024 - 14) + b"\n"
        sent = 0
        while sent < size and not self._stop.is_set():
            conn.sendall(chunk)
            sent += len(chunk)

    def _reset(self, conn) -> None:
        body = json.dumps(completion("half of an answer")).encode()
        conn.sendall(self._head(length=len(body)) + body[: len(body) // 2])
        time.sleep(0.05)  # let the client read the half it got
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        conn.close()
