"""Driving the real bot through discord.py with dpytest, plus what dpytest 0.7 lacks.

dpytest fakes Discord's REST API inside discord.py's ``HTTPClient`` and feeds gateway
events into the real ``ConnectionState``. Version 0.7 has no interactions, no
threads and no message replies, so this module adds them the same way, at the
wire level:

- ``Screen`` records what a Discord user would see: every message the bot posts
  or edits (content, buttons, allowed mentions, flags), including interaction
  responses and followups, and which messages were deleted.
- Interactions go through discord.py's own webhook adapter; only its HTTP
  ``request`` is replaced (``FakeWebhookAdapter``), answering as Discord's API does,
  including "Invalid Webhook Token" for a token older than 15 minutes.
- ``RestMembers`` answers "get guild member" (what ``guild.fetch_member`` asks), so a
  member can live only on Discord's side, as it does without the members intent.
- Gateway payloads for slash commands, button clicks, modal submits, replies and
  threads are fed to ``ConnectionState.parse_*`` exactly like the gateway would.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.ext.test as dpytest
from discord.ext.test import backend, factories
from discord.webhook.async_ import AsyncWebhookAdapter

APPLICATION_ID = 424242424242424242
INITIAL_RESPONSE_S = 3.0  # Receiving and Responding: "you must send an initial response within 3 seconds"
_WAITED_TASKS = (
    "discord.py:",
    "CommandTree-invoker",
    "discord-ui-dynamic-item",
    "discord-ui-view-dispatch",
    "discord-ui-modal",
)
_tokens = itertools.count(1)


async def settle() -> None:
    """Wait until every event handler, command and button callback has finished."""
    while True:
        current = asyncio.current_task()
        pending = [
            task
            for task in asyncio.all_tasks()
            if task is not current and not task.done() and task.get_name().startswith(_WAITED_TASKS)
        ]
        pending += [
            t
            for t in asyncio.all_tasks()
            if t is not current and not t.done() and _coro_name(t) == "_run_event"
        ]
        if not pending:
            return
        await asyncio.wait(pending)


def _coro_name(task: asyncio.Task) -> str:
    return getattr(task.get_coro(), "__name__", "")


@dataclass
class Shown:
    """One message as users see it now."""

    id: int
    channel_id: int
    content: str
    components: list[dict[str, Any]] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    flags: int = 0
    via: str = "channel"  # "channel", "followup" or "response"
    reference: int | None = None
    deleted: bool = False
    edits: int = 0
    thinking: bool = False  # a deferred response's "Archivist is thinking…" placeholder

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)

    def custom_ids(self) -> list[str]:
        return [
            item["custom_id"]
            for row in self.components
            for item in row.get("components", [])
            if "custom_id" in item
        ]


class Screen:
    def __init__(self) -> None:
        self.messages: dict[int, Shown] = {}
        self.callbacks: list[dict[str, Any]] = []  # interaction responses, in order
        self.interactions: dict[str, dict[str, Any]] = {}  # token -> the interaction payload
        self.expired_tokens: set[str] = set()
        self.received: dict[str, float] = {}  # token -> when the bot got it (time.monotonic)
        self.originals: dict[str, int] = {}  # token -> the interaction's original response message
        self.refused_callbacks: list[dict[str, Any]] = []  # responses Discord rejected, with why
        self.no_threads: set[int] = set()  # channels where the bot lacks Create Public Threads
        self.no_history: set[int] = set()  # channels where the bot lacks Read Message History

    def visible(self, channel: int | None = None) -> list[Shown]:
        return [
            m
            for m in self.messages.values()
            if not m.deleted and (channel is None or m.channel_id == channel)
        ]

    def texts(self, channel: int | None = None) -> list[str]:
        return [m.content for m in self.visible(channel)]

    def record(
        self,
        message_id: int,
        channel_id: int,
        payload: dict[str, Any],
        via: str,
        reference: int | None = None,
    ) -> Shown:
        shown = self.messages.get(message_id)
        if shown is None:
            shown = self.messages[message_id] = Shown(
                message_id, channel_id, "", via=via, reference=reference
            )
        else:
            shown.edits += 1
        if "content" in payload and payload["content"] is not None:
            shown.content = payload["content"]
        if "components" in payload:
            shown.components = payload["components"] or []
        if "allowed_mentions" in payload:
            shown.allowed_mentions = payload["allowed_mentions"]
        shown.flags = payload.get("flags", shown.flags) or 0
        return shown


def install(bot: discord.Client, screen: Screen) -> None:
    """Record the bot's channel messages; dpytest reads its caller's locals, so keep their names."""
    http = bot.http
    send, edit, delete = http.send_message, http.edit_message, http.delete_message

    async def send_message(channel_id: int, *, params: Any) -> Any:
        channel = sys._getframe(1).f_locals.get("channel")  # noqa: F841 - read by dpytest
        reference = (params.payload.get("message_reference") or {}).get("message_id")
        if reference and channel_id in screen.no_history:
            # JSON Error Codes (Opcodes and Status Codes): 160002 "Cannot reply without permission
            # to read message history": a reply needs Read Message History.
            raise discord.Forbidden(
                _Response(403, "Forbidden"),
                {"code": 160002, "message": "Cannot reply without permission to read message history"},
            )
        data = await send(channel_id, params=params)
        screen.record(
            int(data["id"]), channel_id, params.payload, "channel", int(reference) if reference else None
        )
        return data

    async def edit_message(channel_id: int, message_id: int, **fields: Any) -> Any:
        self = sys._getframe(1).f_locals.get("self")  # noqa: F841 - read by dpytest
        data = await edit(channel_id, message_id, **fields)
        screen.record(message_id, channel_id, fields["params"].payload, "channel")
        return data

    async def delete_message(channel_id: int, message_id: int, *, reason: str | None = None) -> None:
        self = sys._getframe(1).f_locals.get("self")  # noqa: F841 - read by dpytest
        await delete(channel_id, message_id, reason=reason)
        screen.messages[message_id].deleted = True

    async def start_thread_with_message(
        channel_id: int, message_id: int, *, name: str, **options: Any
    ) -> Any:
        if channel_id in screen.no_threads:
            # Start Thread from Message (Channel resource): needs Create Public Threads, else
            # 403 with JSON error code 50013 Missing Permissions.
            raise discord.Forbidden(
                _Response(403, "Forbidden"), {"code": 50013, "message": "Missing Permissions"}
            )
        channel = bot.get_channel(channel_id)
        data = thread_payload(channel.guild, channel_id, message_id, bot.user.id, name)
        bot._connection.parse_thread_create(data)
        return data

    http.send_message = send_message
    http.edit_message = edit_message
    http.delete_message = delete_message
    http.start_thread_with_message = start_thread_with_message


class CommandsApi:
    """Discord's bulk-overwrite endpoints for application commands, as ``CommandTree.sync`` calls them.

    Each accepted call is recorded as (guild id or None, payload); a guild in ``refused``
    answers like a server the app was added to without the applications.commands scope.
    """

    def __init__(self) -> None:
        self.syncs: list[tuple[int | None, list[dict[str, Any]]]] = []
        self.refused: set[int] = set()
        self.registered: dict[int | None, list[str]] = {}  # scope -> command names Discord keeps

    def listed_in(self, guild_id: int) -> list[str]:
        """The commands a member of the server sees: global and the server's own, side by side.

        Application Commands (Registering a Command): global and guild commands are separate;
        a command registered in both appears twice in that server.
        """
        return sorted(self.registered.get(None, []) + self.registered.get(guild_id, []))

    def install(self, bot: discord.Client) -> None:
        async def global_commands(application_id: int, payload: list[dict[str, Any]]) -> Any:
            return self._overwrite(application_id, None, payload)

        async def guild_commands(application_id: int, guild_id: int, payload: list[dict[str, Any]]) -> Any:
            if guild_id in self.refused:
                # Application Commands (Authorizing Your Application): without the applications.commands
                # scope in a server, registering commands there fails with 50001 Missing Access.
                raise discord.Forbidden(
                    _Response(403, "Forbidden"), {"code": 50001, "message": "Missing Access"}
                )
            return self._overwrite(application_id, guild_id, payload)

        tree = getattr(bot, "tree", None)
        # The tree keeps the HTTP client it was built with; dpytest gives the bot another one.
        for http in {id(bot.http): bot.http, id(tree._http): tree._http}.values() if tree else [bot.http]:
            http.bulk_upsert_global_commands = global_commands
            http.bulk_upsert_guild_commands = guild_commands

    def _overwrite(self, application_id: int, guild_id: int | None, payload: list[dict[str, Any]]) -> Any:
        self.syncs.append((guild_id, payload))
        self.registered[guild_id] = [command["name"] for command in payload]  # bulk overwrite replaces all
        return [
            {
                **command,
                # Application Command Object: description is "" for USER and MESSAGE commands.
                "description": command.get("description", ""),
                "id": str(factories.make_id()),
                "application_id": str(application_id),
                "version": "1",
                **({"guild_id": str(guild_id)} if guild_id else {}),
            }
            for command in payload
        ]


class RestMembers:
    """Discord's ``GET /guilds/{guild}/members/{user}``, for members discord.py has not cached.

    dpytest 0.7 answers it from the member cache only (and crashes on a miss); this answers
    like Discord: the member (from the cache, or one ``uncache`` moved out of it), else
    404 Unknown Member, or 403 for a guild in ``refused``.
    """

    def __init__(self) -> None:
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        self.refused: set[int] = set()
        self.fetches: list[tuple[int, int]] = []  # (guild id, user id), in order

    def uncache(self, member: discord.Member) -> None:
        """Only Discord knows ``member`` now: drop it from discord.py's cache, keep it over REST."""
        payload = _member_payload(member, discord.Permissions.none())
        del payload["permissions"]  # only interactions carry it
        self.members[(member.guild.id, member.id)] = payload
        member.guild._remove_member(member)

    def install(self, bot: discord.Client) -> None:
        async def get_member(guild_id: int, member_id: int) -> Any:
            self.fetches.append((guild_id, member_id))
            if guild_id in self.refused:
                raise discord.Forbidden(
                    _Response(403, "Forbidden"), {"code": 50001, "message": "Missing Access"}
                )
            payload = self.members.get((guild_id, member_id))
            if payload is None:
                guild = bot.get_guild(guild_id)
                cached = guild.get_member(member_id) if guild else None
                if cached is None:
                    raise discord.NotFound(
                        _Response(404, "Not Found"), {"code": 10007, "message": "Unknown Member"}
                    )
                payload = _member_payload(cached, discord.Permissions.none())
                del payload["permissions"]
            return payload

        bot.http.get_member = get_member


def thread_payload(
    guild: discord.Guild, parent_id: int, thread_id: int, owner_id: int, name: str
) -> dict[str, Any]:
    now = discord.utils.utcnow().isoformat()
    return {
        "id": str(thread_id),  # a thread started from a message has the message's id
        "guild_id": str(guild.id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "type": discord.ChannelType.public_thread.value,
        "message_count": 0,
        "member_count": 1,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": now,
            "locked": False,
        },
        "newly_created": True,
    }


def make_thread(
    bot: discord.Client, channel: discord.TextChannel, owner_id: int, name: str = "a thread"
) -> discord.Thread:
    thread_id = factories.make_id()
    bot._connection.parse_thread_create(thread_payload(channel.guild, channel.id, thread_id, owner_id, name))
    return channel.guild.get_thread(thread_id)


class FakeWebhookAdapter:
    """Discord's interaction and webhook endpoints, as ``AsyncWebhookAdapter.request`` sees them."""

    def __init__(self, bot: discord.Client, screen: Screen) -> None:
        self.bot = bot
        self.screen = screen

    async def request(
        self, adapter: AsyncWebhookAdapter, route: Any, session: Any = None, **kwargs: Any
    ) -> Any:
        payload = kwargs.get("payload") or {}
        path = route.url.split("/api/v10", 1)[-1]
        if match := re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", path):
            return self._callback(match[1], match[2], payload)
        match = re.fullmatch(r"/webhooks/(\d+)/([^/]+)(?:/messages/([^/]+))?", path)
        if match is None:
            raise AssertionError(f"unexpected webhook call {route.method} {path}")
        token, message = match[2], match[3]
        if token in self.screen.expired_tokens:
            raise discord.HTTPException(
                _Response(401, "Unauthorized"), {"code": 50027, "message": "Invalid Webhook Token"}
            )
        channel_id = int(self.screen.interactions[token]["channel_id"])
        if message == "@original":
            message = str(self._original(token))
        placeholder = self._placeholder(token)
        if route.method == "POST" and placeholder is not None:
            # Receiving and Responding (Create Followup Message): the first followup after a deferred
            # response replaces the "thinking" message and keeps the defer's flags (ephemeral or not).
            shown = self.screen.record(
                placeholder.id, channel_id, {**payload, "flags": placeholder.flags}, "followup"
            )
            shown.thinking = False
        elif route.method == "POST":
            shown = self.screen.record(factories.make_id(), channel_id, payload, "followup")
        elif route.method == "PATCH":
            shown = self.screen.record(int(message), channel_id, payload, "followup")
            shown.thinking = False
        elif route.method == "DELETE":
            self.screen.messages[int(message)].deleted = True
            return None
        else:
            shown = self.screen.messages[int(message)]
        return message_payload(self.bot, shown)

    def _callback(self, interaction_id: str, token: str, payload: dict[str, Any]) -> Any:
        response = {"type": payload.get("type"), "data": payload.get("data") or {}, "token": token}
        received = self.screen.received.get(token, time.monotonic())
        if time.monotonic() - received > INITIAL_RESPONSE_S:
            # Receiving and Responding: the initial response must come within 3 seconds, else the
            # token is invalidated and the callback fails with 10062 Unknown interaction.
            self.screen.refused_callbacks.append({**response, "code": 10062})
            raise discord.NotFound(
                _Response(404, "Not Found"), {"code": 10062, "message": "Unknown interaction"}
            )
        if any(c["token"] == token for c in self.screen.callbacks):
            # Receiving and Responding: an interaction takes exactly one initial response.
            self.screen.refused_callbacks.append({**response, "code": 40060})
            raise discord.HTTPException(
                _Response(400, "Bad Request"),
                {"code": 40060, "message": "Interaction has already been acknowledged."},
            )
        self.screen.callbacks.append(response)
        data = response["data"]
        interaction = self.screen.interactions.get(token, {})
        channel_id = int(interaction.get("channel_id", 0))
        if response["type"] == 4:  # a message as the response itself
            shown = self.screen.record(factories.make_id(), channel_id, data, "response")
            self.screen.originals[token] = shown.id
        elif response["type"] == 5:  # deferred: users see "Archivist is thinking…" until a followup
            shown = self.screen.record(
                factories.make_id(), channel_id, {"flags": data.get("flags", 0)}, "followup"
            )
            shown.thinking = True
            self.screen.originals[token] = shown.id
        return {"interaction": {"id": interaction_id, "type": interaction.get("type", 2)}}

    def _original(self, token: str) -> int:
        return self.screen.originals.get(token) or factories.make_id()

    def _placeholder(self, token: str) -> Shown | None:
        original = self.screen.originals.get(token)
        shown = self.screen.messages.get(original) if original is not None else None
        return shown if shown is not None and shown.thinking and not shown.deleted else None


@dataclass
class _Response:
    status: int
    reason: str


def message_payload(bot: discord.Client, shown: Shown) -> dict[str, Any]:
    return {
        "id": str(shown.id),
        "channel_id": str(shown.channel_id),
        "author": factories.dict_from_user(bot.user),
        "content": shown.content,
        "timestamp": discord.utils.snowflake_time(shown.id).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        # Message flags: LOADING (1 << 7) while a deferred response is "thinking".
        "flags": shown.flags | (128 if shown.thinking else 0),
        "components": shown.components,
        "application_id": str(APPLICATION_ID),
    }


def _member_payload(member: discord.Member, permissions: discord.Permissions) -> dict[str, Any]:
    return {
        "user": factories.dict_from_user(member._user),
        "roles": [str(role.id) for role in member.roles if not role.is_default()],
        "joined_at": discord.utils.utcnow().isoformat(),
        "deaf": False,
        "mute": False,
        "nick": None,
        "flags": 0,
        "permissions": str(permissions.value),
    }


def interaction_payload(
    screen: Screen,
    kind: int,
    data: dict[str, Any],
    *,
    channel: discord.abc.Messageable,
    member: discord.Member,
    permissions: discord.Permissions | None = None,
    age: datetime.timedelta = datetime.timedelta(0),
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    created = discord.utils.utcnow() - age
    token = f"token-{next(_tokens)}"
    payload: dict[str, Any] = {
        "id": str(discord.utils.time_snowflake(created)),
        "application_id": str(APPLICATION_ID),
        "type": kind,
        "token": token,
        "version": 1,
        "data": data,
        "channel_id": str(channel.id),
        "locale": "en-US",
        "app_permissions": "0",
        "attachment_size_limit": 8 * 1024 * 1024,
        "entitlements": [],
        "authorizing_integration_owners": {},
    }
    if isinstance(channel, discord.DMChannel):
        payload["channel"] = {
            "id": str(channel.id),
            "type": 1,
            "recipients": [factories.dict_from_user(member._user)],
        }
        payload["user"] = factories.dict_from_user(member._user)
    else:
        payload["guild_id"] = str(channel.guild.id)
        payload["channel"] = {"id": str(channel.id), "type": channel.type.value}
        payload["member"] = _member_payload(member, permissions or discord.Permissions.none())
    if message is not None:
        payload["message"] = message
    screen.interactions[token] = payload
    screen.received[token] = time.monotonic()
    if age >= datetime.timedelta(minutes=15):
        screen.expired_tokens.add(token)
    return payload


async def slash(
    bot: discord.Client,
    screen: Screen,
    name: str,
    *,
    channel: discord.abc.Messageable,
    member: discord.Member,
    permissions: discord.Permissions | None = None,
    age: datetime.timedelta = datetime.timedelta(0),
    **options: Any,
) -> dict[str, Any]:
    """A user runs /name option=value... ; returns the interaction payload once handled."""
    typed = [
        {"name": key, "type": 5 if isinstance(value, bool) else 3, "value": value}
        for key, value in options.items()
    ]
    data = {"id": "1", "name": name, "type": 1, "options": typed}
    payload = interaction_payload(
        screen, 2, data, channel=channel, member=member, permissions=permissions, age=age
    )
    bot._connection.parse_interaction_create(payload)
    await settle()
    return payload


async def click(
    bot: discord.Client,
    screen: Screen,
    shown: Shown,
    custom_id: str,
    *,
    member: discord.Member,
    channel: Any = None,
) -> dict[str, Any]:
    channel = channel or bot.get_channel(shown.channel_id) or member.guild.get_thread(shown.channel_id)
    data = {"custom_id": custom_id, "component_type": 2}
    payload = interaction_payload(
        screen, 3, data, channel=channel, member=member, message=message_payload(bot, shown)
    )
    bot._connection.parse_interaction_create(payload)
    await settle()
    return payload


async def submit_modal(
    bot: discord.Client,
    screen: Screen,
    modal: dict[str, Any],
    value: str,
    *,
    channel: Any,
    member: discord.Member,
) -> None:
    """Fill in every text input of the modal the bot opened with ``value`` and submit it."""
    rows = [
        {
            "type": 1,
            "components": [
                {"type": 4, "custom_id": item["custom_id"], "value": value} for item in row["components"]
            ],
        }
        for row in modal["components"]
    ]
    data = {"custom_id": modal["custom_id"], "components": rows}
    payload = interaction_payload(screen, 5, data, channel=channel, member=member)
    bot._connection.parse_interaction_create(payload)
    await settle()


async def say(content: str, *, channel: Any, member: Any, reply_to: int | None = None) -> discord.Message:
    """A user posts a message (optionally as a Discord reply) and the bot handles it."""
    if reply_to is None:
        message = await dpytest.message(content, channel=channel, member=member)
        await settle()
        return message
    guild = getattr(channel, "guild", None)
    stored = backend._cur_config.messages.get(channel.id, [])
    target = next((m for m in stored if int(m["id"]) == reply_to), None)
    data = factories.make_message_dict(
        channel,
        member,
        content=content,
        mentions=backend.find_user_mentions(content, guild),
        type=discord.MessageType.reply.value,
        guild_id=guild.id if guild else None,
    )
    data["message_reference"] = {"message_id": str(reply_to), "channel_id": str(channel.id)}
    if target is not None:
        data["referenced_message"] = target
    state = backend.get_state()
    state.parse_message_create(data)
    backend._cur_config.messages.setdefault(channel.id, []).append(data)
    await settle()
    return state._get_message(data["id"])


async def context_menu(
    bot: discord.Client,
    screen: Screen,
    name: str,
    target: discord.Message,
    *,
    member: discord.Member,
    channel: Any = None,
) -> dict[str, Any]:
    """A user picks Apps → ``name`` on ``target`` (a message command); returns the payload once handled."""
    channel = channel or target.channel
    stored = backend._cur_config.messages.get(channel.id, [])
    message = next((m for m in stored if int(m["id"]) == target.id), None)
    if message is None:
        message = factories.make_message_dict(
            channel, target.author, id_num=target.id, content=target.content
        )
    # Application Commands (Message Commands): the target's id is data.target_id and the message
    # itself comes in data.resolved.messages, content included.
    data = {
        "id": "2",
        "name": name,
        "type": 3,
        "target_id": str(target.id),
        "resolved": {"messages": {str(target.id): message}},
    }
    payload = interaction_payload(screen, 2, data, channel=channel, member=member)
    bot._connection.parse_interaction_create(payload)
    await settle()
    return payload


def make_forum(bot: discord.Client, guild: discord.Guild, name: str = "help") -> discord.ForumChannel:
    """A forum channel (type 15) in ``guild``, as the gateway's CHANNEL_CREATE announces it."""
    forum_id = factories.make_id()
    bot._connection.parse_channel_create(
        {
            "id": str(forum_id),
            "guild_id": str(guild.id),
            "type": discord.ChannelType.forum.value,
            "name": name,
            "position": len(guild.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "available_tags": [],
            "default_reaction_emoji": None,
            "default_sort_order": None,
            "default_forum_layout": 0,
            "flags": 0,
        }
    )
    forum = guild.get_channel(forum_id)
    assert isinstance(forum, discord.ForumChannel)
    return forum


async def forum_post(
    bot: discord.Client, forum: discord.ForumChannel, member: discord.Member, title: str, content: str
) -> discord.Thread:
    """``member`` opens a post in ``forum``: a thread, then its starter message, which shares its id."""
    thread_id = factories.make_id()
    # Forums (Channel resource): a post is a thread in the forum; its first message has the thread's id.
    bot._connection.parse_thread_create(thread_payload(forum.guild, forum.id, thread_id, member.id, title))
    thread = forum.guild.get_thread(thread_id)
    data = factories.make_message_dict(
        thread, member, id_num=thread_id, content=content, guild_id=forum.guild.id
    )
    state = backend.get_state()
    state.parse_message_create(data)
    backend._cur_config.messages.setdefault(thread_id, []).append(data)
    await settle()
    return thread
