"""Slash commands are registered with Discord only when they changed, and never stop the bot."""

from __future__ import annotations

import logging

import discord
import pytest
from discord import app_commands

from core.settings import DiscordSettings
from tests.bot.discord.harness import APPLICATION_ID, CommandsApi


@pytest.fixture
def commands_api(discord_env) -> CommandsApi:
    api = CommandsApi()
    api.install(discord_env.bot)
    discord_env.bot._connection.application_id = APPLICATION_ID  # known after login
    return api


@app_commands.command(name="extra", description="A command added in a new release.")
async def _extra(interaction: discord.Interaction) -> None:
    raise AssertionError("never run")


@pytest.mark.asyncio
async def test_commands_are_registered_once_then_only_when_they_change(discord_env, commands_api) -> None:
    bot = discord_env.bot
    assert await bot.register_commands()
    [(guild, payload)] = commands_api.syncs
    assert guild is None
    assert {"ask", "forget", "sources", "sync", "sync-status", "Ask Archivist"} <= {
        c["name"] for c in payload
    }

    assert await bot.register_commands()  # the next start: the same tree
    assert len(commands_api.syncs) == 1

    bot.tree.add_command(_extra)  # a new release
    assert await bot.register_commands()
    assert len(commands_api.syncs) == 2 and "extra" in {c["name"] for c in commands_api.syncs[-1][1]}


@pytest.mark.asyncio
async def test_a_dev_guild_gets_the_commands_at_once(discord_env, commands_api) -> None:
    guild = discord_env.guild.id
    discord_env.app.settings = discord_env.app.settings.model_copy(
        update={"discord": DiscordSettings(dev_guild=str(guild))}
    )
    assert await discord_env.bot.register_commands()
    [(synced_to, payload)] = commands_api.syncs
    assert synced_to == guild and "ask" in {c["name"] for c in payload}


@pytest.mark.asyncio
async def test_a_refused_registration_is_logged_once_and_the_bot_runs_on(
    discord_env, commands_api, caplog: pytest.LogCaptureFixture
) -> None:
    guild = discord_env.guild.id
    commands_api.refused.add(guild)
    discord_env.app.settings = discord_env.app.settings.model_copy(
        update={"discord": DiscordSettings(dev_guild=str(guild))}
    )
    with caplog.at_level(logging.WARNING, logger="bot.discord"):
        assert not await discord_env.bot.register_commands()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "applications.commands" in warning
    commands_api.refused.clear()  # fixed: the next start registers them
    assert await discord_env.bot.register_commands()
    assert len(commands_api.syncs) == 1


def _use_dev_guild(discord_env, guild: int | None) -> None:
    discord_env.app.settings = discord_env.app.settings.model_copy(
        update={"discord": DiscordSettings(dev_guild=str(guild) if guild else None)}
    )


@pytest.mark.asyncio
async def test_switching_between_global_and_a_dev_guild_never_lists_a_command_twice(
    discord_env, commands_api
) -> None:
    guild = discord_env.guild.id
    assert await discord_env.bot.register_commands()  # global first
    once = commands_api.listed_in(guild)
    assert "ask" in once and len(once) == len(set(once))

    _use_dev_guild(discord_env, guild)
    assert await discord_env.bot.register_commands()
    assert commands_api.registered[None] == []  # the global commands are withdrawn
    assert commands_api.listed_in(guild) == once  # each command listed once, not twice
    assert {c.name for c in discord_env.bot.tree.get_commands()} >= {"ask"}  # the tree itself is intact

    _use_dev_guild(discord_env, None)
    assert await discord_env.bot.register_commands()
    assert commands_api.registered[guild] == [] and commands_api.listed_in(guild) == once

    sent = len(commands_api.syncs)
    assert await discord_env.bot.register_commands()  # nothing changed: nothing sent
    assert len(commands_api.syncs) == sent


@pytest.mark.asyncio
async def test_a_dev_guild_that_refuses_the_withdrawal_is_emptied_at_the_next_start(
    discord_env, commands_api, caplog: pytest.LogCaptureFixture
) -> None:
    guild = discord_env.guild.id
    _use_dev_guild(discord_env, guild)
    assert await discord_env.bot.register_commands()
    commands_api.refused.add(guild)  # the app lost the scope in that server

    _use_dev_guild(discord_env, None)
    with caplog.at_level(logging.WARNING, logger="bot.discord"):
        assert await discord_env.bot.register_commands()  # global registration still succeeded
    assert "could not remove the slash commands in server" in caplog.text
    assert "ask" in commands_api.registered[guild]  # still there: Discord refused

    commands_api.refused.clear()
    assert await discord_env.bot.register_commands()  # the next start tries again
    assert commands_api.registered[guild] == []
    assert sorted(commands_api.listed_in(guild)) == sorted(set(commands_api.listed_in(guild)))


@pytest.mark.asyncio
async def test_a_hand_edited_state_file_never_stops_the_bot_or_empties_a_stranger_scope(
    discord_env, commands_api
) -> None:
    from bot.discord.registration import STATE_FILE

    state = discord_env.app.settings.data_dir / STATE_FILE
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(f'{{"{APPLICATION_ID}:not-a-server": "x", "other-app:global": "y"}}')
    assert await discord_env.bot.register_commands()
    assert [guild for guild, _ in commands_api.syncs] == [None]  # registered globally, nothing else touched
