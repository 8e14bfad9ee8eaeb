"""Discord's /sync-status says when a source's last sync stopped on a passing outage, and when it retries."""

from __future__ import annotations

from datetime import datetime

import discord
import pytest

from tests.bot.discord.harness import slash
from tests.bot.slack.test_status_retry import stopped_by_an_outage


@pytest.mark.asyncio
async def test_sync_status_shows_the_outage_and_the_retry_time(make_discord, remote_model_app) -> None:
    env = await make_discord(remote_model_app)
    retry = stopped_by_an_outage(remote_model_app, 3600)
    await slash(
        env.bot,
        env.screen,
        "sync-status",
        channel=env.channel,
        member=env.alice,
        permissions=discord.Permissions(manage_guild=True),
    )
    [status] = env.screen.visible()
    assert status.ephemeral and "stopped by a passing outage" in status.content
    assert f"retrying at {datetime.fromtimestamp(retry):%H:%M}" in status.content
