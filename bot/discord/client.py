"""The Discord bot: which messages it answers, and ``serve_discord`` (``archivist serve discord``).

It answers when mentioned in a channel, on every DM, on replies to its answers, in
threads it started and new posts in the forums listed in ``[discord] forum_channels``;
it ignores itself and (by default) other bots.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re

from core.extras import MissingExtra, is_missing  # before the optional packages it explains

try:
    import discord
except ImportError as exc:
    if is_missing(exc, "discord"):
        raise MissingExtra("discord") from exc
    raise

from bot.discord import commands, feedback
from bot.discord.answer import answer_question
from bot.discord.context import Conversations, DmRoles, build_question, dm_principals, referenced_message
from bot.discord.errors import tell_channel
from bot.discord.outbox import ChannelOutbox
from bot.discord.registration import register_commands
from bot.discord.render import no_mentions
from bot.discord.streaming import EDIT_INTERVAL_S, StreamedReply
from core.answering.access import ChannelPolicy
from core.api import CoreAPI
from core.app import App
from core.errors import ConfigError

log = logging.getLogger(__name__)

THREAD_NAME_CHARS = 90  # Discord allows 100; keep room for the ellipsis
MESSAGE_CONTENT_HELP = (
    "Discord refused the connection: the bot needs the privileged Message Content intent to read questions.\n"
    "Enable it: https://discord.com/developers/applications → your app → Bot → Privileged Gateway Intents → "
    "turn on 'Message Content Intent' → Save Changes. Then run `archivist serve discord` again."
)
EMPTY_QUESTION = "Ask me something after the mention, e.g. “@Archivist how do I request vacation?”"


def default_intents() -> discord.Intents:
    """Only what the bot uses: guilds, channel and DM messages, and their text."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True  # privileged: enabled in the Developer Portal
    return wanted


class ArchivistBot(discord.Client):
    def __init__(
        self,
        app: App,
        *,
        edit_interval_s: float = EDIT_INTERVAL_S,
        sync_commands: bool = True,
        intents: discord.Intents | None = None,
    ) -> None:
        super().__init__(intents=intents or default_intents(), allowed_mentions=no_mentions())
        self.core = CoreAPI(app)
        self.policy = ChannelPolicy.from_settings(app.settings.discord)
        self.conversations = Conversations()
        self.dm_roles = DmRoles()  # a DM asker's roles in shared servers, see dm_principals
        self.edit_interval_s = edit_interval_s
        self._told_no_threads: set[int] = set()  # channels already named in the log
        self._sync_commands = sync_commands
        self.tree = commands.ArchivistTree(self)
        commands.register(self.tree)

    async def setup_hook(self) -> None:
        feedback.register(self)
        if self._sync_commands:
            await self.register_commands()
            # Load the models now, not on the first question.
            asyncio.get_running_loop().run_in_executor(None, self.core.warm_up)

    async def register_commands(self) -> bool:
        """Send the slash commands to Discord when they changed (see ``registration``); never fatal."""
        settings = self.core.settings
        return await register_commands(
            self.tree, data_dir=settings.data_dir, dev_guild=settings.discord.dev_guild
        )

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d server(s)", self.user, len(self.guilds))

    # -- messages ------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        if not await self._addressed(message):
            return
        try:
            await self._answer(message)
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure is told, see errors.describe
            try:
                await tell_channel(message.channel, exc, reply_to=message)
            except discord.HTTPException:
                log.exception("could not tell %s about a failure", message.channel)

    async def _addressed(self, message: discord.Message) -> bool:
        """Is this message for the bot? Never its own, never other bots' unless configured."""
        me = self.user
        if me is None or message.author.id == me.id:
            return False
        if message.author.bot and self.core.settings.discord.ignore_bots:
            return False
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return False
        if message.guild is None:
            return True
        if self._forum_post(message):
            return True
        if any(user.id == me.id for user in message.mentions):
            return True
        channel = message.channel
        if isinstance(channel, discord.Thread) and channel.owner_id == me.id:
            return True
        if message.reference is not None:
            parent = await referenced_message(message)
            return parent is not None and parent.author.id == me.id
        return False

    def _forum_post(self, message: discord.Message) -> bool:
        """The opening message of a new post in a forum listed in ``[discord] forum_channels``."""
        channel = message.channel
        return (
            isinstance(channel, discord.Thread)
            and isinstance(channel.parent, discord.ForumChannel)
            and message.id == channel.id  # a post's starter message shares the thread's id
            and str(channel.parent_id) in self.core.settings.discord.forum_channels
        )

    def _question_text(self, message: discord.Message) -> str:
        assert self.user is not None
        text = re.sub(rf"<@!?{self.user.id}>", "", message.content).strip()
        if self._forum_post(message):
            assert isinstance(message.channel, discord.Thread)
            title = message.channel.name.strip()  # a post's title is often the question itself
            text = f"{title}\n{text}" if title and title not in text else text
        return text

    async def _answer(self, message: discord.Message) -> None:
        text = self._question_text(message)
        if not text:
            await message.reply(EMPTY_QUESTION, allowed_mentions=no_mentions(), mention_author=False)
            return
        thread = await self.conversations.thread_for(message)
        # In a forum post the answer follows the post in its own thread; elsewhere it replies.
        outbox = ChannelOutbox(message.channel, reply_to=None if self._forum_post(message) else message)
        if self._starts_thread(message):
            try:
                created = await message.create_thread(name=_thread_name(text))
            except discord.Forbidden as exc:
                self._no_threads(message.channel, exc)  # the answer is an inline reply instead
            else:
                outbox, thread = ChannelOutbox(created), str(created.id)
        async with outbox.channel.typing():
            # In a DM the asker's roles in shared servers decide what may be cited (may ask Discord).
            groups = await dm_principals(self, message.author) if message.guild is None else ()
            question = build_question(
                text,
                user=message.author,
                channel=message.channel,
                guild=message.guild,
                thread=thread,
                policy=self.policy,
                groups=groups,
            )
            _, sent = await answer_question(
                self.core,
                question,
                outbox,
                user=str(message.author.id),
                channel=str(message.channel.id),
                reply=StreamedReply(outbox, interval_s=self.edit_interval_s),
            )
        for posted in sent:
            self.conversations.remember(posted.id, thread)

    def _no_threads(self, channel: discord.abc.Messageable, exc: discord.Forbidden) -> None:
        channel_id = getattr(channel, "id", 0)
        if channel_id in self._told_no_threads:
            return
        self._told_no_threads.add(channel_id)
        log.warning(
            "cannot start a thread in #%s (%s): %s; answering inline instead. To answer in threads, grant "
            "the bot's role Create Public Threads (and Send Messages in Threads) in that channel",
            getattr(channel, "name", channel_id),
            channel_id,
            exc,
        )

    def _starts_thread(self, message: discord.Message) -> bool:
        """A new question in a plain text channel, when threads are configured for it."""
        settings = self.core.settings.discord
        wanted = settings.reply_in_thread or str(message.channel.id) in settings.reply_in_thread_channels
        return wanted and isinstance(message.channel, discord.TextChannel) and message.reference is None


def _thread_name(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= THREAD_NAME_CHARS else line[: THREAD_NAME_CHARS - 1].rstrip() + "…"


def serve_discord(app: App) -> None:
    """Connect with DISCORD_TOKEN and answer until interrupted (blocking)."""
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        msg = (
            "DISCORD_TOKEN is not set: copy the bot token from https://discord.com/developers/applications "
            "→ your app → Bot → Reset Token, then `export DISCORD_TOKEN=...`"
        )
        raise ConfigError(msg)
    bot = ArchivistBot(app)
    try:
        bot.run(token, log_handler=None)  # the CLI has configured logging already
    except discord.PrivilegedIntentsRequired as exc:
        raise ConfigError(MESSAGE_CONTENT_HELP) from exc
    except discord.LoginFailure as exc:
        msg = (
            "Discord rejected DISCORD_TOKEN; reset the token in the Developer Portal "
            "(your app → Bot) and try again"
        )
        raise ConfigError(msg) from exc
