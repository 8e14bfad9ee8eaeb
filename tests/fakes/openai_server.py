"""A local stand-in for an OpenAI-compatible chat endpoint, speaking its wire format.

``POST /v1/embeddings`` returns deterministic bag-of-words vectors.
``POST /v1/chat/completions`` answers with ``reply`` (a string, or a function of
the request's messages), as one JSON response or as server-sent events when
``stream`` is true, exactly as the OpenAI API does. Every request is recorded.
Set ``fail_with`` to an HTTP status to make the next requests fail, or
``error_after_chunks`` to break a streamed answer off with an error event after that
many chunks (how OpenAI and vLLM report a failure once the stream has started).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.http_service import serve, server_url, shut_down, write_json

Reply = str | Callable[[list[dict[str, Any]]], str]


class FakeOpenAI:
    def __init__(self) -> None:
        self.reply: Reply = "The documents say so [1]."
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.delay_s = 0.0
        self.chunk_chars = 12
        self.chunk_delay_s = 0.0  # pause between streamed chunks: a model writing for a while
        self.error_after_chunks: int | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"{server_url(self._server)}/v1"

    def _text(self, messages: list[dict[str, Any]]) -> str:
        return self.reply(messages) if callable(self.reply) else self.reply

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append(
                    {
                        "path": self.path,
                        "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fake.fail_with:
                    self._json(
                        fake.fail_with, {"error": {"message": "simulated failure", "type": "server_error"}}
                    )
                    return
                if self.path.endswith("/embeddings"):
                    self._json(200, _embeddings(body))
                    return
                if not self.path.endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                text = fake._text(body.get("messages", []))
                if body.get("stream"):
                    self._stream(body.get("model", "fake"), text)
                else:
                    self._json(200, _completion(body.get("model", "fake"), text))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                write_json(self, status, payload)

            def _stream(self, model: str, text: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = [text[i : i + fake.chunk_chars] for i in range(0, len(text), fake.chunk_chars)]
                for sent, piece in enumerate(pieces):
                    if fake.error_after_chunks is not None and sent >= fake.error_after_chunks:
                        error = {"error": {"message": "simulated mid-stream failure", "type": "server_error"}}
                        self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                        self.wfile.flush()
                        return
                    self.wfile.write(f"data: {json.dumps(_chunk(model, piece))}\n\n".encode())
                    self.wfile.flush()
                    if fake.chunk_delay_s:
                        time.sleep(fake.chunk_delay_s)
                self.wfile.write(f"data: {json.dumps(_chunk(model, None, 'stop'))}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)


EMBEDDING_DIMENSIONS = 64


def hashed_embedding(text: str) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words point the same way."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in text.lower().split():
        word = word.strip(".,;:!?()[]\"'")
        if word:
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % EMBEDDING_DIMENSIONS] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    texts = body.get("input", [])
    texts = [texts] if isinstance(texts, str) else texts
    return {
        "object": "list",
        "model": body.get("model", "fake-embedding"),
        "data": [
            {"object": "embedding", "index": i, "embedding": hashed_embedding(t)} for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(model: str, piece: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": piece} if piece is not None else {}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
