"""The plumbing the SaaS fakes share: a threaded local HTTP server, a request log, injected failures.

A fake service subclasses ``FakeService`` and implements ``route(request)``. Tests then steer it:
``rate_limit(prefix, times, ...)`` makes the next requests under a path prefix answer like the
real service's rate limiter, ``fail(prefix, status)`` makes them fail, and ``requests`` records
what the connector asked for.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Response = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        """Parameters as Slack-style methods take them: query string, form body or JSON body."""
        params = dict(self.query)
        content_type = self.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type:
            params.update(parse_qsl(self.body.decode(), keep_blank_values=True))
        elif "application/json" in content_type and self.body:
            params.update({k: str(v) for k, v in self.json().items()})
        return params


@dataclass
class Injected:
    times: int
    status: int
    headers: dict[str, str]
    body: bytes


class KeepAliveHandler(BaseHTTPRequestHandler):
    """A quiet handler that keeps connections open, as the real services do.

    Every answer must carry a length (``write_body`` and ``write_json`` send one).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: don't wait 40 ms between

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


def write_body(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    """Send one complete answer with its length, so keep-alive clients know where it ends."""
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def write_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> None:
    """Send ``payload`` as JSON; ``content_type`` is the exact header the imitated service sends."""
    write_body(
        handler, status, {"Content-Type": content_type, **(headers or {})}, json.dumps(payload).encode()
    )


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threaded server for ``handler`` on a free local port, already answering in the background."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def server_url(server: ThreadingHTTPServer | None) -> str:
    assert server is not None, "start() the fake first"
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def shut_down(server: ThreadingHTTPServer | None) -> None:
    if server:
        server.shutdown()
        server.server_close()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return (
        status,
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        json.dumps(payload).encode(),
    )


@dataclass
class FakeService:
    requests: list[Request] = field(default_factory=list)
    _injected: dict[str, Injected] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None

    # -- for subclasses ---------------------------------------------------------------

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def error_body(self, status: int) -> bytes:
        return json.dumps({"message": f"simulated HTTP {status}"}).encode()

    # -- for tests --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return server_url(self._server)

    def rate_limit(
        self, prefix: str, times: int = 1, status: int = 429, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``times`` requests whose path starts with ``prefix`` answer as rate limited."""
        body = self.error_body(status)
        self._injected[prefix] = Injected(
            times, status, {"Retry-After": "1"} if headers is None else headers, body
        )

    def fail(self, prefix: str, status: int, times: int = 1_000_000, body: bytes | None = None) -> None:
        self._injected[prefix] = Injected(
            times, status, {}, self.error_body(status) if body is None else body
        )

    def clear_failures(self) -> None:
        self._injected.clear()

    def paths(self, prefix: str = "") -> list[str]:
        return [r.path for r in self.requests if r.path.startswith(prefix)]

    def start(self) -> FakeService:
        fake = self

        class Handler(KeepAliveHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with fake._lock:
                    fake.requests.append(request)
                    status, headers, body = fake._answer(request)
                write_body(self, status, headers, body)

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)

    def _answer(self, request: Request) -> Response:
        for prefix, injected in self._injected.items():
            if request.path.startswith(prefix) and injected.times > 0:
                injected.times -= 1
                return (
                    injected.status,
                    {"Content-Type": "application/json", **injected.headers},
                    injected.body,
                )
        return self.route(request)
