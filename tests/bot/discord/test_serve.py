"""`archivist serve discord`: token and intent problems say what to do."""

from __future__ import annotations

import discord
import pytest

from bot.discord.client import ArchivistBot, default_intents, serve_discord
from core.errors import ConfigError


def test_missing_token_is_named(app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        serve_discord(app)


def test_disabled_message_content_intent_explains_how_to_enable_it(
    app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "token")

    async def refused(self: ArchivistBot, token: str, *, reconnect: bool = True) -> None:
        raise discord.PrivilegedIntentsRequired(None)  # what discord.py raises on close code 4014

    monkeypatch.setattr(ArchivistBot, "start", refused)
    with pytest.raises(ConfigError) as error:
        serve_discord(app)
    assert "Privileged Gateway Intents" in str(error.value) and "Message Content Intent" in str(error.value)


def test_intents_are_only_what_the_bot_uses() -> None:
    intents = default_intents()
    assert intents.guilds and intents.guild_messages and intents.dm_messages and intents.message_content
    assert not intents.members and not intents.presences
