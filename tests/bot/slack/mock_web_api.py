"""A local stand-in for Slack's Web API, speaking its documented wire format.

``POST /api/<method>`` with a form or JSON body and ``Authorization: Bearer``;
answers ``{"ok": true, ...}`` like Slack (or ``{"ok": false, "error": ...}``),
and records every call. ``POST /response/<id>`` stands in for response_url
webhooks. Rate limits are enforced as Slack documents them: per method and
workspace (token) for tiered methods, per channel for ``chat.postMessage``; past
them a call gets HTTP 429 with ``Retry-After``. ``rate_limit_next(method)`` makes
the next call of a method answer 429 regardless. ``streaming`` says whether this
workspace offers the streaming methods (``chat.startStream`` and its two twins).
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

# https://api.slack.com/apis/rate-limits: calls per minute, per method, per workspace.
# chat.update is Tier 3; the streaming methods are Tier 4 (docs.slack.dev/reference/methods/chat.startStream).
TIER_PER_MINUTE = {
    "chat.update": 50,
    "chat.startStream": 100,
    "chat.appendStream": 100,
    "chat.stopStream": 100,
    "assistant.threads.setStatus": 600,
}
# https://api.slack.com/methods/chat.postMessage#rate_limiting: about one message a second per
# channel, short bursts allowed; modelled as at most 10 in any 10 seconds.
POSTS_PER_CHANNEL = (10, 10.0)
BLOCK_TEXT_CHARS = 12_000


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int = 200
    error: str | None = None  # what Slack answered when ``ok`` was false

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
    streaming: bool = False  # whether chat.startStream & co. exist in this workspace
    # What people see: message ts -> {"channel", "thread_ts", "text", "blocks", "streaming"}.
    board: dict[str, dict[str, Any]] = field(default_factory=dict)
    _windows: dict[tuple[str, ...], list[float]] = field(default_factory=dict)
    not_member: set[str] = field(default_factory=set)  # conversations Archivist was never added to
    _url_uses: dict[str, int] = field(default_factory=dict)
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
        """Messages that reached Slack (429s and refusals excluded)."""
        return [c for c in self.of("chat.postMessage") if c.status == 200 and not c.error]

    def rate_limited(self) -> list[Call]:
        """Every call Slack answered 429."""
        with self._lock:
            return [c for c in self.calls if c.status == 429]

    def shown(self, ts: str) -> str:
        """All a person reads in the message at ``ts`` now: its text and its blocks."""
        message = self.board.get(ts) or {}
        parts = [str(message.get("text") or "")] + [_block_text(b) for b in message.get("blocks") or []]
        return "\n".join(p for p in parts if p)

    def seen(self, predicate: Callable[[Call], bool]) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.status == 200 and not c.error and predicate(c)]

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    # -- server ------------------------------------------------------------

    def _handle(self, path: str, params: dict[str, Any], token: str) -> tuple[int, dict[str, str], Any]:
        if path.startswith("/response/"):
            call = Call("response_url", {**params, "_path": path})
            self._record(call)
            refused = self._refuse("chat.postMessage", params)
            with self._lock:
                used = self._url_uses[path] = self._url_uses.get(path, 0) + 1
            # https://api.slack.com/interactivity/handling#message_responses: five uses in 30 minutes.
            if used > 5:
                refused = {"error": "used_url"}
            if refused:  # response_url answers errors with an HTTP error and the error's name
                call.error = str(refused["error"])
                return 404 if used > 5 else 400, {}, call.error
            return 200, {}, "ok"
        method = path.removeprefix("/api/")
        remaining = self._rate_limits.get(method, 0)
        if remaining:
            self._rate_limits[method] = remaining - 1
            self._record(Call(method, params, 429))
            return 429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            self._record(Call(method, params, 200, "invalid_auth"))
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        retry_after = self._over_limit(method, params, token)
        if retry_after:
            self._record(Call(method, params, 429))
            return 429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"}
        call = Call(method, params)
        self._record(call)
        with self._lock:
            answer = self._refuse(method, params) or self._answer(method, params)
        call.error = None if answer.get("ok") else str(answer.get("error"))
        return 200, {}, answer

    @staticmethod
    def _refuse(method: str, p: dict[str, Any]) -> dict[str, Any] | None:
        # https://api.slack.com/methods/chat.postMessage#errors msg_blocks_too_long: well below 50
        # blocks of 3,000 characters, the blocks' text together is capped at about 12,000 characters.
        if method in ("chat.postMessage", "chat.update", "chat.stopStream", "chat.postEphemeral"):
            if sum(len(_block_text(b)) for b in p.get("blocks") or []) > BLOCK_TEXT_CHARS:
                return {"ok": False, "error": "msg_blocks_too_long"}
        return None

    def _over_limit(self, method: str, params: dict[str, Any], token: str) -> int:
        """Seconds to wait when this call would pass Slack's limit; 0 if it may go (and is counted)."""
        if method in TIER_PER_MINUTE:
            key, (limit, window) = (method, token), (TIER_PER_MINUTE[method], 60.0)
        elif method == "chat.postMessage":
            key, (limit, window) = (method, token, str(params.get("channel"))), POSTS_PER_CHANNEL
        else:
            return 0
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._windows.get(key, []) if now - t < window]
            if len(recent) >= limit:
                self._windows[key] = recent
                return max(1, int(window - (now - recent[0])) + 1)
            self._windows[key] = [*recent, now]
        return 0

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
            if channel in self.not_member:  # https://api.slack.com/methods/chat.postMessage#errors
                return {"ok": False, "error": "not_in_channel"}
            if channel.startswith("U"):  # posting to a user id opens the app's DM with them
                channel = "D" + channel[1:]
            ts = self.next_ts()
            self._show(
                ts, channel=channel, thread_ts=p.get("thread_ts"), text=p.get("text"), blocks=p.get("blocks")
            )
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": p.get("text", ""), "ts": ts, "user": BOT_USER_ID, "bot_id": BOT_ID},
            }
        if method == "chat.update":
            if p["ts"] in self.board:
                self.board[p["ts"]].update(text=p.get("text", ""), blocks=p.get("blocks") or [])
            return {"ok": True, "channel": p["channel"], "ts": p["ts"], "text": p.get("text", "")}
        if method.endswith("Stream"):
            return self._stream(method, p)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self.next_ts()}
        if method == "conversations.history":
            return self._history(p)
        if method == "conversations.replies":
            return self._replies(p)
        if method == "views.publish":  # https://api.slack.com/methods/views.publish
            if p.get("view", {}).get("type") != "home" or not p.get("user_id"):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True, "view": {"id": "V0HOME", **p["view"]}}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0VIEW", **(p.get("view") or {})}}
        if method == "users.info":
            user = self.users.get(str(p["user"]))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        if method == "reactions.add":
            return {"ok": True}
        if method.startswith("assistant.threads."):  # setStatus, setSuggestedPrompts, setTitle
            if not (p.get("channel_id") and p.get("thread_ts")):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    def _show(self, ts: str, **message: Any) -> None:
        self.board[ts] = {**message, "text": message.get("text") or "", "blocks": message.get("blocks") or []}

    def _stream(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        # docs.slack.dev/reference/methods/chat.startStream (and appendStream, stopStream).
        if not self.streaming:
            return {"ok": False, "error": "unknown_method"}
        channel = str(p["channel"])
        if method == "chat.startStream":
            if channel in self.not_member:
                return {"ok": False, "error": "not_in_channel"}
            if not p.get("thread_ts"):
                return {"ok": False, "error": "invalid_arguments"}  # streamed messages are replies
            # "recipient_user_id / recipient_team_id: required when streaming to channels"
            if not channel.startswith("D") and not (
                p.get("recipient_user_id") and p.get("recipient_team_id")
            ):
                return {"ok": False, "error": "invalid_arguments"}
            ts = self.next_ts()
            self._show(
                ts, channel=channel, thread_ts=p["thread_ts"], text=p.get("markdown_text"), streaming=True
            )
            return {"ok": True, "channel": channel, "ts": ts}
        message = self.board.get(str(p.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not message.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message["text"] += p.get("markdown_text") or ""
        if method == "chat.stopStream":
            message.update(streaming=False, blocks=p.get("blocks") or [])
        return {"ok": True, "channel": channel, "ts": p["ts"]}

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
