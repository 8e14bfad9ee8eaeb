"""Slash commands through discord.py's CommandTree and its interaction webhook calls."""

from __future__ import annotations

import datetime

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend

from core.settings import DiscordSettings
from tests.bot.discord.harness import slash

QUESTION = "How many vacation days do employees in the Netherlands get?"
DEFERRED = 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: Discord shows "Archivist is thinking…"


def _asked(openai_server, text: str) -> bool:
    return any(text in str(m.get("content", "")) for m in openai_server.requests[-1]["body"]["messages"])


@pytest.mark.asyncio
async def test_ask_is_deferred_at_once_then_answered_in_a_followup(discord_env, openai_server) -> None:
    await slash(
        discord_env.bot,
        discord_env.screen,
        "ask",
        channel=discord_env.channel,
        member=discord_env.alice,
        question=QUESTION,
    )

    assert [c["type"] for c in discord_env.screen.callbacks] == [DEFERRED]
    [answer] = discord_env.screen.visible()
    assert answer.via == "followup" and not answer.ephemeral
    assert answer.content.startswith(openai_server.reply) and "**Sources**" in answer.content
    assert answer.custom_ids() and answer.allowed_mentions["parse"] == []


@pytest.mark.asyncio
async def test_ask_past_the_interaction_window_answers_with_a_channel_message(
    discord_env, openai_server
) -> None:
    await slash(
        discord_env.bot,
        discord_env.screen,
        "ask",
        channel=discord_env.channel,
        member=discord_env.alice,
        age=datetime.timedelta(minutes=16),
        question=QUESTION,
    )
    # The expired token can no longer fill the "thinking" placeholder; the answer is a channel message.
    [answer] = [m for m in discord_env.screen.visible(discord_env.channel.id) if not m.thinking]
    assert answer.via == "channel" and answer.content.startswith(openai_server.reply)


@pytest.mark.asyncio
async def test_forget_clears_this_conversation(discord_env, openai_server) -> None:
    env = discord_env
    await slash(env.bot, env.screen, "ask", channel=env.channel, member=env.alice, question=QUESTION)
    await slash(env.bot, env.screen, "ask", channel=env.channel, member=env.alice, question="And in Austin?")
    assert _asked(openai_server, QUESTION)  # remembered

    await slash(env.bot, env.screen, "forget", channel=env.channel, member=env.alice)
    [confirmation] = [m for m in env.screen.visible() if m.ephemeral]
    assert "forgotten" in confirmation.content

    await slash(
        env.bot, env.screen, "ask", channel=env.channel, member=env.alice, question="How do I request leave?"
    )
    assert not _asked(openai_server, QUESTION) and not _asked(openai_server, "And in Austin?")


@pytest.mark.asyncio
async def test_sync_is_refused_politely_to_non_admins(discord_env) -> None:
    before = discord_env.app.sync_service.last_report("handbook")
    await slash(
        discord_env.bot,
        discord_env.screen,
        "sync",
        channel=discord_env.channel,
        member=discord_env.alice,
        source="all",
    )
    [refusal] = discord_env.screen.visible()
    assert refusal.ephemeral and "only admins" in refusal.content.lower()
    assert (
        discord_env.app.sync_service.last_report("handbook").finished_at == before.finished_at
    )  # nothing ran
    await slash(
        discord_env.bot,
        discord_env.screen,
        "sync-status",
        channel=discord_env.channel,
        member=discord_env.alice,
    )
    assert "only admins" in discord_env.screen.visible()[-1].content.lower()


@pytest.mark.asyncio
async def test_manage_server_admin_syncs_with_a_summary(discord_env, kb) -> None:
    (kb / "people" / "bike-to-work.md").write_text(
        "# Bike to work\n\nEmployees may lease a bike through payroll.\n"
    )
    await slash(
        discord_env.bot,
        discord_env.screen,
        "sync",
        channel=discord_env.channel,
        member=discord_env.alice,
        permissions=discord.Permissions(manage_guild=True),
        source="handbook",
    )
    [summary] = discord_env.screen.visible()
    assert "handbook" in summary.content and "1 added" in summary.content
    assert (
        "0 deleted" in summary.content
        and "0 failed" in summary.content
        and "Sync finished in" in summary.content
    )


@pytest.mark.asyncio
async def test_configured_admin_role_may_sync_and_see_status(make_discord, remote_model_app) -> None:
    env = await make_discord(remote_model_app)
    role = backend.make_role("doc-admins", env.guild)
    await dpytest.add_role(env.bob, role)
    remote_model_app.settings = remote_model_app.settings.model_copy(
        update={"discord": DiscordSettings(admin_roles=[str(role.id)])}
    )

    await slash(
        env.bot, env.screen, "sync-status", channel=env.channel, member=env.guild.get_member(env.bob.id)
    )
    [status] = env.screen.visible()
    assert "handbook" in status.content and "last sync" in status.content


@pytest.mark.asyncio
async def test_unknown_source_is_named(discord_env) -> None:
    await slash(
        discord_env.bot,
        discord_env.screen,
        "sync",
        channel=discord_env.channel,
        member=discord_env.alice,
        permissions=discord.Permissions(manage_guild=True),
        source="wiki",
    )
    [message] = discord_env.screen.visible()
    assert message.ephemeral and "wiki" in message.content and "handbook" in message.content


@pytest.mark.asyncio
async def test_sources_lists_what_this_channel_reads(discord_env) -> None:
    await slash(
        discord_env.bot, discord_env.screen, "sources", channel=discord_env.channel, member=discord_env.alice
    )
    [listing] = discord_env.screen.visible()
    assert listing.ephemeral and "**handbook**" in listing.content and "synced" in listing.content


# -- Discord's 3-second window, with a slow Redis --------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("command", "seen"), [("forget", "forgotten"), ("sources", "handbook"), ("sync-status", "handbook")]
)
async def test_commands_answer_within_the_window_while_redis_is_slow(
    discord_env, slow_redis, command, seen
) -> None:
    env = discord_env
    slow_redis()
    await slash(
        env.bot,
        env.screen,
        command,
        channel=env.channel,
        member=env.alice,
        permissions=discord.Permissions(manage_guild=True),
    )
    assert env.screen.refused_callbacks == []  # Discord accepted the first response in time
    [reply] = env.screen.visible()
    assert reply.ephemeral and seen in reply.content and not reply.thinking


@pytest.mark.asyncio
async def test_an_ask_that_fails_tells_only_the_asker(discord_env, openai_server) -> None:
    openai_server.fail_with = 500
    await slash(
        discord_env.bot,
        discord_env.screen,
        "ask",
        channel=discord_env.channel,
        member=discord_env.alice,
        question=QUESTION,
    )
    # The public "thinking…" message is gone; the error is for the asker's eyes only.
    [error] = discord_env.screen.visible()
    assert error.ephemeral and error.content.startswith("⚠️") and "try again" in error.content.lower()
