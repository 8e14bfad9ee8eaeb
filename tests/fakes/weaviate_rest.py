"""A local stand-in for the REST side of Weaviate's start-up handshake.

The client's connect first reads ``/v1/.well-known/openid-configuration`` (404:
no OIDC) and ``/v1/meta`` (the server version), then checks gRPC health on the
gRPC port. This server answers those two REST calls the way Weaviate does, so
tests can reach the failures a user meets before any data moves: a gRPC port
that is not published, and an API key the cluster refuses (401 on ``/v1/meta``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEAVIATE_VERSION = "1.32.0"


@dataclass
class FakeWeaviate:
    url: str
    authorizations: list[str] = field(default_factory=list)  # each request's Authorization header


@contextmanager
def weaviate_rest(*, refuse_key: bool = False) -> Iterator[FakeWeaviate]:
    """Serve on a free local port. ``refuse_key``: ``/v1/meta`` answers 401, as for a wrong key."""
    fake = FakeWeaviate("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            fake.authorizations.append(self.headers.get("Authorization", ""))
            if refuse_key and self.path.startswith("/v1/meta"):
                self._json(401, {"error": [{"message": "anonymous access not enabled"}]})
            elif self.path.startswith("/v1/meta"):
                self._json(200, {"hostname": "http://[::]:8080", "version": WEAVIATE_VERSION, "modules": {}})
            else:
                self._json(404, {"error": [{"message": f"no route {self.path}"}]})

        def _json(self, status: int, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
