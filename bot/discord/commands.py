"""Slash commands: /ask (``private`` for an answer only the asker sees), /forget, /sources,
for admins /sync and /sync-status; and the "Ask Archivist" message command.

Every command gives Discord its first response (often a defer) before any Redis, store or
model work: Discord drops an interaction not answered within 3 seconds.

Errors raised here reach ``ArchivistTree.on_error`` (the boundary in ``errors``).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

import discord
from discord import app_commands

from bot.discord import linking
from bot.discord.answer import answer_question
from bot.discord.context import Conversations, build_question, dm_principals
from bot.discord.errors import tell_interaction
from bot.discord.outbox import InteractionOutbox
from bot.discord.render import no_mentions, split_message
from bot.discord.streaming import StreamedReply
from bot.discord.sync import PROGRESS_INTERVAL_S, is_admin, progress_text, report_line, summary
from core.api import Progress

if TYPE_CHECKING:
    from core.answering.access import ChannelPolicy
    from core.api import CoreAPI

MAX_AUTOCOMPLETE = 25  # Discord shows at most 25 choices
ASK_ABOUT_MESSAGE = "Ask Archivist"  # the message command, under Apps in a message's menu
NOT_ADMIN = (
    "Sorry, only admins can run syncs: you need the Manage Server permission "
    "or a role an admin listed in the bot's configuration."
)


class ArchivistTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await tell_interaction(interaction, original)


class CommandHost(Protocol):
    """What the commands need of the client they run in (``client.ArchivistBot``); named here
    so that this module does not import the client that imports it."""

    core: CoreAPI
    policy: ChannelPolicy
    conversations: Conversations
    edit_interval_s: float


def _bot(interaction: discord.Interaction) -> CommandHost:
    return interaction.client  # type: ignore[return-value]


def conversation_thread(interaction: discord.Interaction) -> str:
    """The conversation /ask continues and /forget clears here (see ``context``)."""
    if interaction.guild_id is None:
        return ""
    if isinstance(interaction.channel, discord.Thread):
        return str(interaction.channel.id)
    return f"ask-{interaction.user.id}"


def _question(  # noqa: ANN202 - a Question
    interaction: discord.Interaction, text: str, groups: Iterable[str] = (), thread: str | None = None
):
    return build_question(
        text,
        user=interaction.user,
        channel=interaction.channel,  # type: ignore[arg-type]
        guild=interaction.guild,
        thread=conversation_thread(interaction) if thread is None else thread,
        policy=_bot(interaction).policy,
        groups=groups,
    )


async def _answer(
    interaction: discord.Interaction,
    text: str,
    *,
    thread: str,
    private: bool = False,
    preface: str = "",
) -> None:
    """Answer ``text`` in the (already deferred) interaction's followups."""
    bot = _bot(interaction)
    # In a DM the asker's roles in shared servers decide too; /forget needs only the conversation.
    groups = await dm_principals(bot, interaction.user) if interaction.guild is None else ()
    asked = _question(interaction, text, groups, thread)
    outbox = InteractionOutbox(interaction, ephemeral=private)
    _, messages = await answer_question(
        bot.core,
        asked,
        outbox,
        user=str(interaction.user.id),
        channel=str(interaction.channel_id),
        reply=StreamedReply(outbox, interval_s=bot.edit_interval_s),
        preface=preface,
    )
    if not private:  # nobody can reply to a message only one person sees
        for message in messages:
            bot.conversations.remember(message.id, thread)


@app_commands.command(name="ask", description="Ask a question about the team's documents.")
@app_commands.describe(question="What you want to know", private="Only you see the answer")
async def ask(interaction: discord.Interaction, question: str, private: bool = False) -> None:
    # Discord waits 3 s for a response; answering takes longer, so defer first.
    await interaction.response.defer(ephemeral=private, thinking=True)
    await _answer(interaction, question, thread=conversation_thread(interaction), private=private)


NO_TEXT = "That message has no text I can answer; pick a message with a question in it."


@app_commands.context_menu(name=ASK_ABOUT_MESSAGE)
async def ask_about_message(interaction: discord.Interaction, message: discord.Message) -> None:
    """Apps → Ask Archivist on any message: answer what it says, below it, for everyone there."""
    text = message.content.strip()
    if not text:
        await interaction.response.send_message(NO_TEXT, ephemeral=True, allowed_mentions=no_mentions())
        return
    await interaction.response.defer(thinking=True)
    if interaction.guild_id is None:
        thread = ""
    elif isinstance(interaction.channel, discord.Thread):
        thread = str(interaction.channel.id)
    else:
        # A conversation rooted at the message, as a mention of it would be: replies continue it.
        thread = str(message.id)
    await _answer(interaction, text, thread=thread, preface=f"-# About {message.jump_url}")


@app_commands.command(name="forget", description="Clear what I remember of this conversation.")
async def forget(interaction: discord.Interaction) -> None:
    # Discord waits 3 s for the first response; Redis or a cold model may take longer.
    await interaction.response.defer(ephemeral=True, thinking=True)
    bot = _bot(interaction)
    await asyncio.to_thread(bot.core.forget, _question(interaction, "forget"))
    await interaction.followup.send(
        "Done: I've forgotten this conversation. The next question starts fresh.",
        ephemeral=True,
        allowed_mentions=no_mentions(),
    )


async def _send_private(interaction: discord.Interaction, text: str) -> None:
    """``text`` to the person who ran the (ephemerally deferred) command, in as many messages as needed."""
    for part in split_message(text):
        await interaction.followup.send(part, ephemeral=True, allowed_mentions=no_mentions())


def _when(timestamp: float) -> str:
    return discord.utils.format_dt(datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC), "R")


@app_commands.command(
    name="sources", description="List the sources I answer from and when they were last synced."
)
async def sources(interaction: discord.Interaction) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)  # before any Redis I/O
    bot = _bot(interaction)
    readable = None
    if interaction.guild_id is not None:
        channel = interaction.channel
        parent = channel.parent_id if isinstance(channel, discord.Thread) else interaction.channel_id
        readable = bot.policy.sources_for(str(parent))
    lines = []
    for name in bot.core.source_names():
        if readable is not None and name not in readable:
            continue
        report = await asyncio.to_thread(bot.core.last_report, name)
        if report is None:
            status = "never synced"
        elif report.error:
            status = f"last sync failed {_when(report.finished_at)}: {report.error}"
        else:
            status = f"synced {_when(report.finished_at)}: {report_line(report)}"
        lines.append(f"• **{name}**: {status}")
    text = "\n".join(lines) if lines else "No sources are available in this channel."
    await _send_private(interaction, f"**Sources**\n{text}")


async def _source_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    names = ["all", *_bot(interaction).core.source_names()]
    matching = [name for name in names if current.lower() in name.lower()]
    return [app_commands.Choice(name=name, value=name) for name in matching[:MAX_AUTOCOMPLETE]]


@app_commands.command(name="sync", description="Admins: sync a source (or all) now.")
@app_commands.describe(
    source="A source name, or 'all'", full="Re-index every document, not only changed ones"
)
@app_commands.autocomplete(source=_source_choices)
async def sync(interaction: discord.Interaction, source: str, full: bool = False) -> None:
    bot = _bot(interaction)
    if not is_admin(
        bot.core.settings.discord, interaction.user, interaction.permissions if interaction.guild_id else None
    ):
        await interaction.response.send_message(NOT_ADMIN, ephemeral=True, allowed_mentions=no_mentions())
        return
    names = bot.core.resolve_sources([source.strip()])  # unknown names fail here, before any work
    await interaction.response.defer(thinking=True)
    busy = [name for name in names if name in bot.core.running_syncs()]
    if busy:
        await interaction.followup.send(
            f"A sync of {', '.join(busy)} is already running; see /sync-status.",
            allowed_mentions=no_mentions(),
        )
        return
    outbox = InteractionOutbox(interaction)
    progress = await outbox.send(f"⏳ Syncing {', '.join(names)}…")

    async def show(now: Mapping[str, Progress | None]) -> None:
        if not outbox.expired():
            await progress.edit(content=progress_text(now), allowed_mentions=no_mentions())

    run = await bot.core.sync(names, full=full, show=show, interval_s=PROGRESS_INTERVAL_S)
    final = summary(run.outcomes, run.elapsed_s)
    for index, part in enumerate(split_message(final)):
        if index == 0 and not outbox.expired():
            await progress.edit(content=part, allowed_mentions=no_mentions())
        else:
            await outbox.send(part)


@app_commands.command(
    name="sync-status", description="Admins: what each source's last sync did, and syncs running now."
)
async def sync_status(interaction: discord.Interaction) -> None:
    bot = _bot(interaction)
    if not is_admin(
        bot.core.settings.discord, interaction.user, interaction.permissions if interaction.guild_id else None
    ):
        await interaction.response.send_message(NOT_ADMIN, ephemeral=True, allowed_mentions=no_mentions())
        return
    await interaction.response.defer(ephemeral=True, thinking=True)  # before any Redis I/O
    running = bot.core.running_syncs()
    lines = []
    for name in bot.core.source_names():
        report = await asyncio.to_thread(bot.core.last_report, name)
        last = (
            "never synced"
            if report is None
            else f"last sync {_when(report.finished_at)}: {report_line(report)}"
        )
        if report is not None and report.error:
            interval = bot.core.settings.connectors[name].interval_s
            last += f" ({report.stop_text(interval, datetime.datetime.now().timestamp())})"
        lines.append(progress_text({name: running[name]}) if name in running else f"• **{name}**: {last}")
    text = "\n".join(lines) if lines else "No sources are configured."
    await _send_private(interaction, f"**Sync status**\n{text}")


def register(tree: app_commands.CommandTree) -> None:
    for command in (ask, forget, sources, sync, sync_status, ask_about_message, *linking.COMMANDS):
        tree.add_command(command)
