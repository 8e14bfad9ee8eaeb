"""A local stand-in for Slack's Web API, speaking its documented wire format.

``POST /api/<method>`` with a form or JSON body and ``Authorization: Bearer``;
answers ``{"ok": true, ...}`` like Slack (or ``{"ok": false, "error": ...}``),
and records every call. ``POST /response/<id>`` stands in for response_url
webhooks. ``rate_limit_next(method)`` makes the next call of a method answer
HTTP 429 with ``Retry-After``, as Slack does.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.http_service import serve, server_url, shut_down, write_body, write_json

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
TEAM_ID = "T0TEAM"
BOT_USER_ID = "UARCHIVIST"
BOT_ID = "BARCHIVIST"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int = 200

    def text(self) -> str:
        """Everything a person would read in the message this call posts."""
        parts = [str(self.params.get("text") or "")]
        for block in self.params.get("blocks") or []:
            parts.append(_block_text(block))
        return "\n".join(p for p in parts if p)


def _block_text(block: dict[str, Any]) -> str:
    if isinstance(block.get("text"), dict):
        return str(block["text"].get("text", ""))
    if isinstance(block.get("text"), str):
        return block["text"]
    return " ".join(_block_text(e) if isinstance(e, dict) else "" for e in block.get("elements") or [])


@dataclass
class MockSlack:
    calls: list[Call] = field(default_factory=list)
    # Messages conversations.history / replies can return: channel -> list of messages.
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    socket_url: str = ""
    _rate_limits: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None

    # -- test-facing -------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{server_url(self._server)}/"

    @property
    def api_url(self) -> str:
        return self.url + "api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}response/{name}"

    def rate_limit_next(self, method: str, times: int = 1) -> None:
        self._rate_limits[method] = times

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def posted(self) -> list[Call]:
        """Messages that reached Slack (429 answers excluded)."""
        return [c for c in self.of("chat.postMessage") if c.status == 200]

    def seen(self, predicate: Callable[[Call], bool]) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.status == 200 and predicate(c)]

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    # -- server ------------------------------------------------------------

    def _handle(self, path: str, params: dict[str, Any], token: str) -> tuple[int, dict[str, str], Any]:
        if path.startswith("/response/"):
            self._record(Call("response_url", {**params, "_path": path}))
            return 200, {}, "ok"
        method = path.removeprefix("/api/")
        remaining = self._rate_limits.get(method, 0)
        if remaining:
            self._rate_limits[method] = remaining - 1
            self._record(Call(method, params, 429))
            return 429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            self._record(Call(method, params, 200))
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        self._record(Call(method, params))
        return 200, {}, self._answer(method, params)

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _answer(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://test.slack.com/",
                "team": "Test",
                "user": "archivist",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            channel = str(p["channel"])
            if channel.startswith("U"):  # posting to a user id opens the app's DM with them
                channel = "D" + channel[1:]
            ts = self.next_ts()
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": p.get("text", ""), "ts": ts, "user": BOT_USER_ID, "bot_id": BOT_ID},
            }
        if method == "chat.update":
            return {"ok": True, "channel": p["channel"], "ts": p["ts"], "text": p.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self.next_ts()}
        if method == "conversations.history":
            return self._history(p)
        if method == "conversations.replies":
            return self._replies(p)
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0VIEW", **(p.get("view") or {})}}
        if method == "users.info":
            user = self.users.get(str(p["user"]))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        if method == "reactions.add":
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    def _history(self, p: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/conversations.history: top-level messages only, newest first.
        top = [
            m
            for m in self.messages.get(str(p["channel"]), [])
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        found = sorted(_within(top, p), key=lambda m: float(m["ts"]), reverse=True)
        limit = int(p.get("limit") or 100)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _replies(self, p: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/conversations.replies: `ts` may be the parent or any reply;
        # the parent comes first in every page, whatever oldest/latest say, and counts toward `limit`.
        channel = self.messages.get(str(p["channel"]), [])
        asked = next((m for m in channel if m["ts"] == p.get("ts")), None)
        if asked is None:
            return {"ok": False, "error": "thread_not_found"}
        root = asked.get("thread_ts") or asked["ts"]
        parent = next((m for m in channel if m["ts"] == root), None)
        replies = sorted(
            (m for m in channel if m.get("thread_ts") == root and m["ts"] != root),
            key=lambda m: float(m["ts"]),
        )
        found = ([parent] if parent else []) + _within(replies, p)
        limit = int(p.get("limit") or 1000)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def start(self) -> MockSlack:
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - some methods (conversations.*) are GETs
                self.do_POST()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode()
                kind = self.headers.get("Content-Type", "")
                if "?" in self.path and not raw:
                    raw, kind = self.path.split("?", 1)[1], "application/x-www-form-urlencoded"
                params: dict[str, Any] = json.loads(raw or "{}") if "json" in kind else dict(parse_qsl(raw))
                for key in ("blocks", "view", "attachments"):  # form bodies carry JSON strings
                    if isinstance(params.get(key), str):
                        params[key] = json.loads(params[key])
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
                token = token or str(params.get("token", ""))
                status, headers, payload = mock._handle(self.path.split("?")[0], params, token)
                if isinstance(payload, str):
                    write_body(self, status, {"Content-Type": "text/plain", **headers}, payload.encode())
                else:
                    write_json(self, status, payload, headers)

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)


def _within(messages: list[dict[str, Any]], p: dict[str, Any]) -> list[dict[str, Any]]:
    """``oldest`` / ``latest`` bounds, exclusive unless ``inclusive`` is true."""
    inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
    oldest, latest = float(p.get("oldest") or 0), float(p.get("latest") or 1e12)

    def inside(ts: float) -> bool:
        if inclusive:
            return oldest <= ts <= latest
        return oldest < ts < latest

    return [m for m in messages if inside(float(m["ts"]))]


async def wait_until(
    check: Callable[[], Any], timeout: float = 90.0, what: str = "the expected Slack calls"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
