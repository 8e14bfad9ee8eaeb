"""From a Discord place to a Question: who asks, what may be read there, which conversation.

Conversations are keyed ``discord / guild id (or "dm") / channel id / thread``:

- in a thread, the thread's id (its policy is the parent channel's);
- for a mention or a reply chain in a channel, the id of the chain's first message;
- for ``/ask`` in a channel, one conversation per user (``ask-USER``);
- in a DM, one conversation per DM channel.

Channel questions read only what everyone in the channel may read (``channel_question``);
DMs read what the asker may read: their user id and the role ids they hold in the
servers the bot shares with them (``direct_question``); those roles come from the
member cache or, without the members intent, from Discord's REST API (``DmRoles``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

import discord

from core.answering.access import ChannelPolicy, channel_question, direct_question, principal
from core.answering.answers import Question

log = logging.getLogger(__name__)

PLATFORM = "discord"
DM_WORKSPACE = "dm"
# A reply chain is followed at most this far back; longer chains start a new conversation.
MAX_CHAIN_HOPS = 50
# Answer message -> conversation it belongs to; bounded so a long-running bot stays small.
MAX_REMEMBERED_ANSWERS = 20_000
# A DM user's roles fetched over REST are reused this long, for at most this many (guild, user) pairs.
DM_ROLES_TTL_S = 300.0
DM_ROLES_MAX_ENTRIES = 10_000


def member_roles(member: discord.Member) -> frozenset[str]:
    """``discord:role:ID`` for each role ``member`` holds (not @everyone)."""
    return frozenset(
        principal(PLATFORM, "role", str(role.id)) for role in member.roles if not role.is_default()
    )


class DmRoles:
    """The roles a DM user holds in the servers the bot shares with them.

    Without the privileged members intent discord.py's member cache rarely holds a DM
    user's membership, so a member missing from the cache is fetched over REST; what
    REST answers (roles, or not a member) is remembered for ``ttl_s`` so a conversation
    does not cost a REST call per guild per message. A guild that refuses the lookup is
    skipped, with one warning per guild.
    """

    def __init__(
        self, *, ttl_s: float = DM_ROLES_TTL_S, max_entries: int = DM_ROLES_MAX_ENTRIES, concurrency: int = 8
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.concurrency = concurrency
        # (guild id, user id) -> (when fetched, roles or None when not a member)
        self._fetched: OrderedDict[tuple[int, int], tuple[float, frozenset[str] | None]] = OrderedDict()
        self._warned: set[int] = set()

    async def principals(self, client: discord.Client, user: discord.abc.User) -> list[str]:
        """``discord:role:ID`` for each role ``user`` holds in any guild the bot is in."""
        guilds = [guild for guild in client.guilds if not guild.unavailable]
        limit = asyncio.Semaphore(self.concurrency)

        async def one(guild: discord.Guild) -> frozenset[str]:
            async with limit:
                return await self._roles_in(guild, user.id) or frozenset()

        found = await asyncio.gather(*(one(guild) for guild in guilds))
        return sorted(frozenset().union(*found))

    async def _roles_in(self, guild: discord.Guild, user_id: int) -> frozenset[str] | None:
        member = guild.get_member(user_id)
        if member is not None:
            return member_roles(member)
        key = (guild.id, user_id)
        cached = self._fetched.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            roles: frozenset[str] | None = member_roles(await guild.fetch_member(user_id))
        except discord.NotFound:
            roles = None  # not a member of this guild
        except discord.HTTPException as exc:  # Forbidden included: skip the guild, do not remember
            if guild.id not in self._warned:
                self._warned.add(guild.id)
                log.warning(
                    "could not look up DM members in server %s (%s): roles held there are ignored in DMs: %s",
                    guild.name,
                    guild.id,
                    exc,
                )
            return None
        self._remember(key, roles)
        return roles

    def _remember(self, key: tuple[int, int], roles: frozenset[str] | None) -> None:
        self._fetched[key] = (time.monotonic(), roles)
        self._fetched.move_to_end(key)
        while len(self._fetched) > self.max_entries:
            self._fetched.popitem(last=False)


async def dm_principals(client: discord.Client, user: discord.abc.User) -> list[str]:
    """The role principals of a DM asker, through ``client.dm_roles`` when it has one."""
    roles = getattr(client, "dm_roles", None)
    if not isinstance(roles, DmRoles):
        roles = DmRoles()
    return await roles.principals(client, user)


def policy_channel(channel: discord.abc.Messageable) -> str:
    """The channel whose policy applies: a thread reads what its parent channel may read."""
    if isinstance(channel, discord.Thread):
        return str(channel.parent_id)
    return str(getattr(channel, "id", ""))


def build_question(
    text: str,
    *,
    user: discord.abc.User,
    channel: discord.abc.Messageable,
    guild: discord.Guild | None,
    thread: str,
    policy: ChannelPolicy,
    groups: Iterable[str] = (),
) -> Question:
    """A DM reads what ``user`` and ``groups`` (see ``dm_principals``) may read; a channel, its policy."""
    if guild is None:
        return direct_question(
            text,
            platform=PLATFORM,
            workspace=DM_WORKSPACE,
            user=str(user.id),
            channel=str(getattr(channel, "id", "")),
            thread=thread,
            groups=groups,
        )
    return channel_question(
        text,
        platform=PLATFORM,
        workspace=str(guild.id),
        channel=policy_channel(channel),
        thread=thread,
        policy=policy,
    )


class Conversations:
    """Which conversation a message continues: threads, reply chains, the bot's own answers."""

    def __init__(self) -> None:
        self._answers: OrderedDict[int, str] = OrderedDict()

    def remember(self, message_id: int, thread: str) -> None:
        """Replies to ``message_id`` (one of the bot's answers) continue ``thread``."""
        self._answers[message_id] = thread
        self._answers.move_to_end(message_id)
        while len(self._answers) > MAX_REMEMBERED_ANSWERS:
            self._answers.popitem(last=False)

    def known(self, message_id: int) -> str | None:
        return self._answers.get(message_id)

    async def thread_for(self, message: discord.Message) -> str:
        """The conversation key ``message`` belongs to (see the module docstring)."""
        if message.guild is None:
            return ""
        if isinstance(message.channel, discord.Thread):
            return str(message.channel.id)
        current = message
        for _ in range(MAX_CHAIN_HOPS):
            reference = current.reference
            if reference is None or reference.message_id is None:
                break
            remembered = self.known(reference.message_id)
            if remembered is not None:
                return remembered
            parent = await referenced_message(current)
            if parent is None:
                return str(reference.message_id)
            current = parent
        return str(current.id)


async def referenced_message(message: discord.Message) -> discord.Message | None:
    """The message ``message`` replies to: from the event, the cache, or Discord."""
    reference = message.reference
    if reference is None or reference.message_id is None:
        return None
    if isinstance(reference.resolved, discord.Message):
        return reference.resolved
    if isinstance(reference.cached_message, discord.Message):
        return reference.cached_message
    if reference.channel_id != message.channel.id:
        return None
    try:
        return await message.channel.fetch_message(reference.message_id)
    except (discord.NotFound, discord.Forbidden):
        return None  # deleted or unreadable: the chain starts at the reply
