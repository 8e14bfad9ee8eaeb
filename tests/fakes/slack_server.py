"""A local stand-in for the Slack Web API methods a channel reader calls (docs.slack.dev/reference/methods).

``POST /api/<method>`` (form or JSON body; GET query strings too) with ``Authorization: Bearer``.
Answers are HTTP 200 ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` as Slack's are:

- ``auth.test``; ``users.info`` (``user_not_found``)
- ``conversations.info`` / ``conversations.members`` (``channel_not_found``)
- ``conversations.history``: top-level messages newest first, with ``reply_count``,
  ``latest_reply`` and ``reply_users`` on thread parents; ``oldest`` / ``latest`` (exclusive unless
  ``inclusive``), ``limit`` (max 999), ``cursor`` → ``response_metadata.next_cursor``, ``has_more``;
  ``not_in_channel`` when the bot is not a member
- ``conversations.replies``: the parent, then replies oldest first, paginated; ``thread_not_found``

A bad token answers ``invalid_auth``; ``rate_limit(prefix)`` answers HTTP 429 with Retry-After.
Deleting a parent that has replies leaves a ``tombstone``, as Slack does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_service import FakeService, Request, Response, json_response

TOKEN = "xoxb-test-bot-token"
BOT_USER = "UARCHIVIST"
BOT_ID = "BARCHIVIST"
TEAM_URL = "https://acme.slack.com/"


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    members: list[str] = field(default_factory=list)
    bot_is_member: bool = True


@dataclass
class FakeSlack(FakeService):
    token: str = TOKEN
    channels: dict[str, Channel] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    threads: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # replies by thread
    by_ts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # method -> Slack error code to answer
    broken_threads: set[str] = field(default_factory=set)  # thread ts whose replies answer fatal_error
    now: int = 1_714_550_400  # 2024-05-01, seconds

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    # -- building a workspace --------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str, **kwargs: Any) -> Channel:
        channel = Channel(channel_id, name, **kwargs)
        self.channels[channel_id] = channel
        self.messages.setdefault(channel_id, [])
        return channel

    def add_user(self, user_id: str, display_name: str) -> None:
        self.users[user_id] = {
            "id": user_id,
            "name": display_name.lower().replace(" ", "."),
            "real_name": display_name,
            "profile": {"display_name": display_name, "real_name": display_name},
        }

    def next_ts(self, seconds: int = 60) -> str:
        self.now += seconds
        return f"{self.now}.{(self.now % 997):06d}"

    def post(
        self, channel: str, text: str, *, user: str = "U0ANN", thread_ts: str | None = None, **extra: Any
    ) -> str:
        ts = extra.pop("ts", None) or self.next_ts()
        message: dict[str, Any] = {"type": "message", "ts": ts, "text": text, **extra}
        if user:
            message["user"] = user
        if thread_ts:
            message["thread_ts"] = thread_ts
            self.threads.setdefault((channel, thread_ts), []).append(message)
        self.messages[channel].append(message)
        self.by_ts[(channel, ts)] = message
        return ts

    def edit(self, channel: str, ts: str, text: str) -> None:
        message = self._find(channel, ts)
        assert message is not None
        message["text"] = text
        message["edited"] = {"user": message.get("user", ""), "ts": self.next_ts()}

    def delete(self, channel: str, ts: str) -> None:
        message = self._find(channel, ts)
        assert message is not None
        if self._replies(channel, ts):
            message.update(
                subtype="tombstone", text="This message was deleted.", user="USLACKBOT", hidden=True
            )
        else:
            self.messages[channel].remove(message)
            del self.by_ts[(channel, ts)]

    # -- serving ---------------------------------------------------------------------------

    def error_body(self, status: int) -> bytes:
        return b'{"ok": false, "error": "ratelimited"}'

    def route(self, request: Request) -> Response:
        if not request.path.startswith("/api/"):
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        method = request.path.removeprefix("/api/")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._fail("not_authed" if not request.headers.get("authorization") else "invalid_auth")
        if method in self.errors:
            return self._fail(self.errors[method])
        params = request.form()
        handler = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "conversations.info": self._info,
            "conversations.members": self._members,
            "conversations.history": self._history,
            "conversations.replies": self._replies_method,
        }.get(method)
        if handler is None:
            return self._fail("unknown_method")
        return handler(params)

    def _fail(self, error: str, **extra: Any) -> Response:
        return json_response(200, {"ok": False, "error": error, **extra})

    def _ok(self, **payload: Any) -> Response:
        return json_response(200, {"ok": True, **payload})

    def _auth_test(self, params: dict[str, str]) -> Response:
        return self._ok(
            url=TEAM_URL, team="Acme", user="archivist", team_id="T0ACME", user_id=BOT_USER, bot_id=BOT_ID
        )

    def _users_info(self, params: dict[str, str]) -> Response:
        user = self.users.get(params.get("user", ""))
        return self._ok(user=user) if user else self._fail("user_not_found")

    def _channel(self, params: dict[str, str]) -> Channel | Response:
        channel = self.channels.get(params.get("channel", ""))
        if channel is None:
            return self._fail("channel_not_found")
        return channel

    def _info(self, params: dict[str, str]) -> Response:
        channel = self._channel(params)
        if not isinstance(channel, Channel):
            return channel
        if channel.is_private and not channel.bot_is_member:
            return self._fail("channel_not_found")  # private channels are invisible to outsiders
        return self._ok(
            channel={
                "id": channel.id,
                "name": channel.name,
                "is_channel": not channel.is_private,
                "is_group": channel.is_private,
                "is_private": channel.is_private,
                "is_member": channel.bot_is_member,
            }
        )

    def _members(self, params: dict[str, str]) -> Response:
        channel = self._channel(params)
        if not isinstance(channel, Channel):
            return channel
        return self._paged(params, [*channel.members, BOT_USER], "members")

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return self.by_ts.get((channel, ts))

    def _replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return sorted(self.threads.get((channel, ts), []), key=lambda m: float(m["ts"]))

    def _with_thread_fields(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        replies = self._replies(channel, message["ts"])
        if not replies:
            return dict(message)
        return {
            **message,
            "thread_ts": message["ts"],
            "reply_count": len(replies),
            "reply_users": sorted({r.get("user", "") for r in replies}),
            "latest_reply": replies[-1]["ts"],
        }

    def _history(self, params: dict[str, str]) -> Response:
        channel = self._channel(params)
        if not isinstance(channel, Channel):
            return channel
        if not channel.bot_is_member:
            return self._fail("not_in_channel")
        inclusive = params.get("inclusive") in ("1", "true")
        oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or 9e12)
        top = [
            self._with_thread_fields(channel.id, m)
            for m in self.messages[channel.id]
            if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast"
        ]
        chosen = [
            m
            for m in top
            if (oldest <= float(m["ts"]) if inclusive else oldest < float(m["ts"]))
            and (float(m["ts"]) <= latest if inclusive else float(m["ts"]) < latest)
        ]
        chosen.sort(key=lambda m: float(m["ts"]), reverse=True)
        return self._paged(params, chosen, "messages", maximum=999)

    def _replies_method(self, params: dict[str, str]) -> Response:
        channel = self._channel(params)
        if not isinstance(channel, Channel):
            return channel
        if not channel.bot_is_member:
            return self._fail("not_in_channel")
        parent = self._find(channel.id, params.get("ts", ""))
        if parent is None:
            return self._fail("thread_not_found")
        if parent["ts"] in self.broken_threads:
            return self._fail("fatal_error")
        thread = [self._with_thread_fields(channel.id, parent), *self._replies(channel.id, parent["ts"])]
        return self._paged(params, thread, "messages", maximum=1000)

    def _paged(self, params: dict[str, str], items: list[Any], key: str, maximum: int = 1000) -> Response:
        limit = max(1, min(int(params.get("limit") or 100), maximum))
        start = int(base64.b64decode(params["cursor"]).decode().split(":")[1]) if params.get("cursor") else 0
        chunk = items[start : start + limit]
        more = start + limit < len(items)
        following = base64.b64encode(f"next:{start + limit}".encode()).decode() if more else ""
        return self._ok(**{key: chunk}, has_more=more, response_metadata={"next_cursor": following})
