"""A real ArchivistBot over a real App, driven by dpytest (see harness.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
import pytest_asyncio
from discord.webhook.async_ import AsyncWebhookAdapter
from redis.connection import AbstractConnection

from bot.discord import feedback
from bot.discord.client import ArchivistBot, default_intents
from core.app import App
from core.settings import DiscordSettings
from tests.bot.discord.harness import FakeWebhookAdapter, RestMembers, Screen, install


@dataclass
class Discord:
    """One guild with two text channels and two members, plus what users see."""

    bot: ArchivistBot
    screen: Screen
    app: App
    rest_members: RestMembers

    @property
    def config(self) -> dpytest.RunnerConfig:
        return dpytest.get_config()

    @property
    def guild(self) -> discord.Guild:
        return self.config.guilds[0]

    @property
    def channel(self) -> discord.TextChannel:
        return self.config.guilds[0].text_channels[0]

    @property
    def other_channel(self) -> discord.TextChannel:
        return self.config.guilds[0].text_channels[1]

    @property
    def alice(self) -> discord.Member:
        return self.config.members[0]

    @property
    def bob(self) -> discord.Member:
        return self.config.members[1]

    @property
    def mention(self) -> str:
        return f"<@{self.bot.user.id}>"


@pytest_asyncio.fixture
async def make_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    bots: list[ArchivistBot] = []

    async def make(app: App, **discord_settings: Any) -> Discord:
        app.settings = app.settings.model_copy(update={"discord": DiscordSettings(**discord_settings)})
        # dpytest keeps its members in discord.py's member cache, which needs the members intent.
        intents = default_intents()
        intents.members = True
        bot = ArchivistBot(app, sync_commands=False, intents=intents)
        await bot._async_setup_hook()
        dpytest.configure(bot, text_channels=2, voice_channels=0, members=["alice", "bob"])
        # dpytest replaces the connection state: reattach what discord.py set up on the old one.
        bot._connection._command_tree = bot.tree
        bot._connection.loop = asyncio.get_running_loop()  # used by channel.typing()
        feedback.register(bot)
        screen = Screen()
        install(bot, screen)
        rest_members = RestMembers()
        rest_members.install(bot)
        fake = FakeWebhookAdapter(bot, screen)
        monkeypatch.setattr(
            AsyncWebhookAdapter,
            "request",
            lambda adapter, route, session=None, **kw: fake.request(adapter, route, session, **kw),
        )
        bots.append(bot)
        return Discord(bot, screen, app, rest_members)

    yield make
    await dpytest.empty_queue()  # dpytest's fake gateway cannot be closed; its queues are emptied


@pytest_asyncio.fixture
async def discord_env(make_discord: Callable[..., Any], remote_model_app: App) -> Discord:
    return await make_discord(remote_model_app)


SLOW_REDIS_S = 3.5  # longer than Discord's 3 s for an initial response


@pytest.fixture
def slow_redis(monkeypatch: pytest.MonkeyPatch):
    """Redis stalls: every command sent in the next SLOW_REDIS_S seconds waits until they are over."""
    original = AbstractConnection.send_packed_command

    def stall() -> None:
        until = time.monotonic() + SLOW_REDIS_S

        def slowly(self, command, check_health=True):  # noqa: ANN001, ANN202 - redis-py's signature
            time.sleep(max(0.0, until - time.monotonic()))
            return original(self, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", slowly)

    return stall
