"""A real local HTTP server speaking OpenAI's chat-completions protocol (SSE streaming),
so the openai client is exercised end to end without the network."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    answer: str = "Hello!"
    status: int = 200  # e.g. 429, 500
    delay: float = 0.0  # seconds before answering (timeouts)
    fail_after_chunks: int | None = None  # drop the connection mid-stream
    requests: list[dict] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        b = self.server.behaviour  # type: ignore[attr-defined]
        b.requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if b.delay:
            time.sleep(b.delay)
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        if b.status != 200:
            message = {429: "Rate limit reached", 500: "The server had an error"}.get(
                b.status, "error"
            )
            self._json(b.status, {"error": {"message": message, "type": "server_error"}})
            return
        words = [w + " " for w in b.answer.split(" ")]
        words[-1] = words[-1][:-1]
        if not body.get("stream"):
            self._json(200, _completion(b.answer, body.get("model", "")))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for i, word in enumerate(words):
            if b.fail_after_chunks is not None and i >= b.fail_after_chunks:
                self.wfile.write(b'data: {"error": {"message": "stream broke"}}\n\n')
                self.wfile.flush()
                return
            chunk = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model", ""),
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        done = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _completion(text: str, model: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


class FakeOpenAI:
    """`with FakeOpenAI() as server:` ... `server.base_url`, `server.behaviour`."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.behaviour = self.behaviour  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
