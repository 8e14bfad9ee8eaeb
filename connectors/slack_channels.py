"""Threads from chosen Slack channels as knowledge: one document per thread (a message and its replies).

``[connectors.NAME] type = "slack_channels"`` with ``channels = ["C0123", ...]`` (required; the bot
must be a member), ``token_env`` (``SLACK_BOT_TOKEN``), ``lookback_days`` (30) and
``min_replies`` (0: every message; 1 or more: only threads with at least that many replies).
``SLACK_API_URL`` points the Web API client at a proxy, as for the bot. Bot scopes needed:
``channels:history``, ``groups:history``, ``channels:read``, ``groups:read``, ``users:read``.

Reading: ``conversations.history`` lists a channel's top-level messages (cursor pagination,
``response_metadata.next_cursor``); a message with replies is read whole with
``conversations.replies``. Authors are shown by name (``users.info``, cached). The bot's own
messages (Archivist's answers) are never indexed, nor are join/leave notices. Ids are
``CHANNEL:TS``; links are ``{workspace}/archives/CHANNEL/pTS``.

Incremental, and why a lookback: a thread's activity is the newest of its ts, its
``latest_reply`` and its last edit. The cursor keeps, per channel, the activity of the last
thread delivered. A new reply does not move a thread in ``conversations.history`` (that lists by
the parent's ts), so each poll re-lists the last ``lookback_days`` of top-level messages
(``oldest`` = position - lookback) and re-reads the threads whose activity is newer than the
position. Replies to threads older than the lookback, and edits of replies, reach the index with
a ``--full`` sync (run one now and then; ``list_ids`` still prunes deletions on every sync).

Access: a public channel's threads are public; a private channel's are readable by its members
(``conversations.members``, as ``slack:user:UXXXX``) and by the channel itself
(``slack:channel:CXXXX``). When the membership changes, the channel's threads are sent again with
the new ACL. Slack's errors arrive as HTTP 200 ``{"ok": false, "error": ...}``: token errors
name ``token_env``; ``not_in_channel`` says to invite the bot; 429 waits for ``Retry-After``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator

from connectors.api_client import ApiClient
from connectors.options import ConnectorOptions, Count, EnvName, Strings
from connectors.saas import (
    Checkpoints,
    Position,
    acl_fingerprint,
    note_outcome,
    read_cursor,
    retries,
    token_from_env,
    with_grants,
)
from connectors.slack_text import plain_text, ts_key, ts_minus, ts_time
from core.documents import Acl, Document, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api"
BATCH_SIZE = 32
PAGE_LIMIT = 200  # Slack's advice for paginated methods: no more than 200 a page
IDS_PAGE_LIMIT = 999  # conversations.history's maximum; list_ids reads whole channels
DEFAULT_LOOKBACK_DAYS = 30
TITLE_CHARS = 80
_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")
# Messages that are not what people said: channel housekeeping.
_NOISE = {
    "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name", "channel_archive",
    "channel_unarchive", "group_join", "group_leave", "group_topic", "group_purpose", "group_name",
    "group_archive", "group_unarchive", "bot_add", "bot_remove", "pinned_item", "unpinned_item",
    "channel_convert_to_private", "channel_convert_to_public", "reminder_add",
}  # fmt: skip
_TOKEN_ERRORS = {"invalid_auth", "not_authed", "token_expired", "token_revoked", "account_inactive"}


class SlackApiError(SourceError):
    """Slack answered ``ok: false``; ``error`` is Slack's code (``not_in_channel``, ...)."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class _Me:
    team_url: str  # https://WORKSPACE.slack.com/
    user_id: str
    bot_id: str


@dataclass(frozen=True)
class _Channel:
    id: str
    name: str
    acl: Acl


def activity(message: dict[str, Any]) -> str:
    """The newest thing that happened to a thread: its post, latest reply or last edit."""
    stamps = [str(message.get("ts", "0"))]
    if message.get("latest_reply"):
        stamps.append(str(message["latest_reply"]))
    edited = message.get("edited")
    if isinstance(edited, dict) and edited.get("ts"):
        stamps.append(str(edited["ts"]))
    return max(stamps, key=ts_key)


class SlackChannelsOptions(ConnectorOptions):
    """The keys of a ``type = "slack_channels"`` table."""

    channels: Annotated[Strings, Field(description='the channel ids to read, ["C0123ABC"]')]
    token_env: EnvName = "SLACK_BOT_TOKEN"
    lookback_days: Count = DEFAULT_LOOKBACK_DAYS
    min_replies: Count = 0

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        if not channels:
            msg = "'channels' must name at least one channel id"
            raise ValueError(msg)
        for channel in channels:
            if not _CHANNEL.match(channel):
                msg = f"'channels': {channel!r} is not a channel id (like C0123ABC, in the channel's details)"
                raise ValueError(msg)
        return channels


@dataclass
class SlackChannelsConnector:
    name: str
    channels: tuple[str, ...]
    grants: Acl
    token_env: str = "SLACK_BOT_TOKEN"
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    min_replies: int = 0
    kind: str = "slack_channels"
    cursor_keeps_failures: ClassVar[bool] = True  # failed ids ride in the cursor and are retried
    sleep: Callable[[float], None] = time.sleep  # tests pass a fast one
    _names: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # user id -> name
    _names_readable: bool = field(default=True, init=False, repr=False)

    @classmethod
    def from_settings(
        cls, name: str, settings: ConnectorSettings, *, data_dir: Path
    ) -> SlackChannelsConnector:
        options = SlackChannelsOptions.parse(settings)
        return cls(
            name=name,
            channels=options.channels,
            grants=Acl(public=settings.public, principals=frozenset(settings.principals)),
            token_env=options.token_env,
            lookback_days=options.lookback_days,
            min_replies=options.min_replies,
        )

    def describe(self) -> str:
        return f"Slack threads from {len(self.channels)} channel(s): {', '.join(self.channels)}"

    # -- PollsChanges ---------------------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        with self._client() as api:
            me = self._me(api)
            state = read_cursor(self.name, cursor)
            positions = state.get("channels")
            if not isinstance(positions, dict):
                positions = state["channels"] = {}
            for gone in set(positions) - set(self.channels):
                del positions[gone]  # a channel removed from the config: forget its position
            checkpoints = Checkpoints(state, cursor)
            channels: dict[str, _Channel] = {}
            yield from self._retry(api, me, state, channels, checkpoints)
            for channel_id in self.channels:
                channel = channels.get(channel_id) or self._channel(api, channel_id)
                yield from self._poll_channel(api, me, channel, state, checkpoints)

    def list_ids(self) -> Iterator[str]:
        with self._client() as api:
            me = self._me(api)
            ids = [
                f"{channel}:{message['ts']}"
                for channel in self.channels
                for message in self._threads(api, me, channel, oldest=None, limit=IDS_PAGE_LIMIT)
            ]
        yield from ids  # only once every channel was listed: a half listing would prune too much

    # -- one channel ----------------------------------------------------------------------

    def _poll_channel(
        self, api: ApiClient, me: _Me, channel: _Channel, state: dict[str, Any], checkpoints: Checkpoints
    ) -> Iterator[tuple[Batch, str]]:
        positions: dict[str, Any] = state["channels"]
        saved = positions.get(channel.id)
        saved = saved if isinstance(saved, dict) else {}
        stamp = acl_fingerprint(channel.acl)
        position = Position.from_json(saved.get("position")) if saved.get("acl") == stamp else Position()
        oldest = ts_minus(position.since, self.lookback_days * 86400) if position.since else None
        threads = [
            message
            for message in self._threads(api, me, channel.id, oldest=oldest, limit=PAGE_LIMIT)
            if position.is_new(activity(message), str(message["ts"]), key=ts_key)
        ]
        threads.sort(key=lambda message: ts_key(activity(message)))
        for start in range(0, len(threads), BATCH_SIZE):
            batch: Batch = []
            for message in threads[start : start + BATCH_SIZE]:
                item = self._thread(api, me, channel, message)
                note_outcome(state, f"{channel.id}:{message['ts']}", item)
                if item is not None:
                    batch.append(item)
                position = position.advanced(activity(message), str(message["ts"]))
            positions[channel.id] = {"acl": stamp, "position": position.to_json()}
            yield from checkpoints.emit(batch)
        positions[channel.id] = {"acl": stamp, "position": position.to_json()}
        yield from checkpoints.emit([])

    def _threads(
        self, api: ApiClient, me: _Me, channel: str, *, oldest: str | None, limit: int
    ) -> list[dict]:
        """The channel's thread starters (top-level messages worth indexing), newest first."""
        params: dict[str, str | int] = {"channel": channel, "limit": limit}
        if oldest:
            params["oldest"] = oldest
        found: list[dict[str, Any]] = []
        for page in self._pages(api, "conversations.history", params, channel=channel):
            for message in page.get("messages") or []:
                if isinstance(message, dict) and self._starts_thread(message, me):
                    found.append(message)
        return found

    def _starts_thread(self, message: dict[str, Any], me: _Me) -> bool:
        ts = message.get("ts")
        if not isinstance(ts, str) or message.get("thread_ts", ts) != ts:
            return False  # a reply also sent to the channel: it belongs to its thread
        replies = int(message.get("reply_count") or 0)
        if replies < self.min_replies or message.get("subtype") in _NOISE:
            return False
        if message.get("subtype") == "tombstone" and not replies:
            return False  # deleted, and nothing left under it
        return not self._is_mine(message, me)

    def _is_mine(self, message: dict[str, Any], me: _Me) -> bool:
        """Archivist's own answers: indexing them would make it cite itself."""
        return bool(message.get("user") and message.get("user") == me.user_id) or bool(
            me.bot_id and message.get("bot_id") == me.bot_id
        )

    def _thread(
        self, api: ApiClient, me: _Me, channel: _Channel, parent: dict[str, Any]
    ) -> Document | LoadFailure | None:
        ts = str(parent["ts"])
        messages = [parent]
        if int(parent.get("reply_count") or 0) > 0:
            try:
                messages = []
                params: dict[str, str | int] = {"channel": channel.id, "ts": ts, "limit": PAGE_LIMIT}
                for page in self._pages(api, "conversations.replies", params, channel=channel.id):
                    messages += [m for m in page.get("messages") or [] if isinstance(m, dict)]
            except SlackApiError as exc:
                if exc.error == "thread_not_found":
                    return None  # deleted since it was listed
                if exc.error in _TOKEN_ERRORS or exc.error in (
                    "not_in_channel",
                    "channel_not_found",
                    "missing_scope",
                ):
                    raise
                return LoadFailure(
                    f"{channel.id}:{ts}", self.name, str(exc).removeprefix(f"source {self.name!r}: ")
                )
        # The thread's first message as replies returns it is the freshest view of the parent.
        parent = next((m for m in messages if m.get("ts") == ts), parent)
        lines = []
        for message in messages:
            if (
                message.get("subtype") in _NOISE
                or self._is_mine(message, me)
                or message.get("subtype") == "tombstone"
            ):
                continue
            text = plain_text(str(message.get("text") or ""), lambda user: self._user_name(api, user)).strip()
            files = [
                str(f.get("name") or f.get("title") or "")
                for f in message.get("files") or []
                if isinstance(f, dict)
            ]
            if files:
                text += "".join(f"\n[file: {name}]" for name in files if name)
            if not text.strip():
                continue
            when = ts_time(str(message.get("ts", "0"))).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"**{self._author(api, message)}** ({when}):\n{text.strip()}")
        if not lines:
            return None
        first = plain_text(str(parent.get("text") or ""), lambda user: self._user_name(api, user)).strip()
        first = first.splitlines()[0] if first else "(a thread)"
        title = first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"
        stamp = activity(parent)
        return Document(
            id=f"{channel.id}:{ts}",
            source=self.name,
            title=f"#{channel.name}: {title}",
            text="\n\n".join(lines),
            url=f"{me.team_url}archives/{channel.id}/p{ts.replace('.', '')}",
            version=stamp,
            updated_at=ts_time(stamp),
            acl=channel.acl,
            mime_type="text/plain",
        )

    def _retry(
        self,
        api: ApiClient,
        me: _Me,
        state: dict[str, Any],
        channels: dict[str, _Channel],
        checkpoints: Checkpoints,
    ) -> Iterator[tuple[Batch, str]]:
        pending = retries(state)
        for start in range(0, len(pending), BATCH_SIZE):
            batch: Batch = []
            for item_id in pending[start : start + BATCH_SIZE]:
                channel_id, _, ts = item_id.partition(":")
                item: Document | LoadFailure | None = None
                if channel_id in self.channels:
                    channel = channels.get(channel_id) or self._channel(api, channel_id)
                    channels[channel_id] = channel
                    item = self._thread(api, me, channel, {"ts": ts, "reply_count": 1})
                note_outcome(state, item_id, item)
                if item is not None:
                    batch.append(item)
            yield from checkpoints.emit(batch)

    # -- Slack calls ----------------------------------------------------------------------

    def _client(self) -> ApiClient:
        token = token_from_env(
            self.name, self.token_env, "the bot token (xoxb-...) from your Slack app's OAuth page"
        )
        base = os.environ.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        return ApiClient(
            self.name,
            "Slack",
            base,
            headers={"Authorization": f"Bearer {token}"},
            credential_hint=f"check {self.token_env}",
            sleep=self.sleep,
        )

    def _call(
        self, api: ApiClient, method: str, params: dict[str, str | int], *, channel: str = ""
    ) -> dict[str, Any]:
        answer = api.request("POST", f"/{method}", data=params).json()
        if isinstance(answer, dict) and answer.get("ok"):
            return answer
        error = str(answer.get("error") if isinstance(answer, dict) else "") or "unknown_error"
        where = f"source {self.name!r}: Slack"
        if error in _TOKEN_ERRORS:
            msg = (
                f"{where} refused the token in {self.token_env} ({error}): set it to the bot token "
                "(xoxb-...) from your Slack app's OAuth & Permissions page"
            )
        elif error == "not_in_channel":
            msg = (
                f"{where}: the bot is not a member of channel {channel}; invite it there (/invite @Archivist)"
            )
        elif error == "channel_not_found":
            msg = f"{where}: channel {channel} does not exist, or it is private and the bot was not invited"
        elif error == "missing_scope":
            needed = answer.get("needed", "?") if isinstance(answer, dict) else "?"
            msg = (
                f"{where}: the token in {self.token_env} lacks the scope {needed} for {method}; add it under "
                "OAuth & Permissions and reinstall the app"
            )
        else:
            msg = f"{where} {method} failed: {error}"
        raise SlackApiError(msg, error)

    def _pages(
        self, api: ApiClient, method: str, params: dict[str, str | int], *, channel: str = ""
    ) -> Iterator[dict[str, Any]]:
        query = dict(params)
        while True:
            page = self._call(api, method, query, channel=channel)
            yield page
            following = (page.get("response_metadata") or {}).get("next_cursor")
            if not following:
                return
            query["cursor"] = following

    def _me(self, api: ApiClient) -> _Me:
        """auth.test: checks the token first, and names the workspace and the bot itself."""
        answer = self._call(api, "auth.test", {})
        url = str(answer.get("url") or "https://slack.com/")
        return _Me(
            url if url.endswith("/") else url + "/",
            str(answer.get("user_id", "")),
            str(answer.get("bot_id", "")),
        )

    def _channel(self, api: ApiClient, channel_id: str) -> _Channel:
        info = (
            self._call(api, "conversations.info", {"channel": channel_id}, channel=channel_id).get("channel")
            or {}
        )
        if info.get("is_private") or info.get("is_im") or info.get("is_mpim"):
            members: set[str] = set()
            params: dict[str, str | int] = {"channel": channel_id, "limit": PAGE_LIMIT}
            for page in self._pages(api, "conversations.members", params, channel=channel_id):
                members |= {f"slack:user:{member}" for member in page.get("members") or []}
            acl = Acl(public=False, principals=frozenset({*members, f"slack:channel:{channel_id}"}))
        else:
            acl = Acl.everyone()
        acl = with_grants(acl, self.grants.public, self.grants.principals)
        return _Channel(channel_id, str(info.get("name") or channel_id), acl)

    def _user_name(self, api: ApiClient, user: str) -> str:
        if user not in self._names:
            self._names[user] = user
            if self._names_readable:
                try:
                    found = self._call(api, "users.info", {"user": user}).get("user") or {}
                    profile = found.get("profile") or {}
                    name = profile.get("display_name") or profile.get("real_name") or found.get("real_name")
                    self._names[user] = str(name or found.get("name") or user)
                except SlackApiError as exc:
                    if exc.error in _TOKEN_ERRORS:
                        raise
                    if exc.error == "missing_scope":
                        self._names_readable = False
                        log.warning(
                            "%s: no users:read scope; threads show user ids instead of names", self.name
                        )
        return self._names[user]

    def _author(self, api: ApiClient, message: dict[str, Any]) -> str:
        if message.get("user"):
            return self._user_name(api, str(message["user"]))
        profile = message.get("bot_profile") or {}
        return str(message.get("username") or profile.get("name") or "a bot")
