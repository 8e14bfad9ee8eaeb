"""Slack fixtures: the real Bolt app behind its real aiohttp endpoint, Slack's Web API
stood in for by a local server (mock_web_api.py), the core with a scripted chat model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.slack.app import Tuning, build_slack_app
from bot.slack.credentials import SlackCredentials
from bot.slack.server import build_web_app
from core.app import App
from tests.bot.slack.mock_web_api import BOT_TOKEN, MockSlack
from tests.bot.slack.signed import SIGNING_SECRET, SlackSender


@pytest.fixture
def mock_slack() -> Iterator[MockSlack]:
    mock = MockSlack().start()
    yield mock
    mock.stop()


@dataclass
class Harness:
    core: App
    mock: MockSlack
    send: SlackSender
    client: TestClient


async def start_harness(
    core: App, mock: MockSlack, tuning: Tuning = Tuning(progress_interval_s=0.2)
) -> Harness:
    credentials = SlackCredentials(BOT_TOKEN, SIGNING_SECRET, api_url=mock.api_url)
    bolt = build_slack_app(core, credentials, tuning=tuning)
    client = TestClient(TestServer(build_web_app(bolt)))
    await client.start_server()
    return Harness(core, mock, SlackSender(client, mock.response_url()), client)


@pytest_asyncio.fixture
async def slack(remote_model_app: App, mock_slack: MockSlack) -> AsyncIterator[Harness]:
    harness = await start_harness(remote_model_app, mock_slack)
    yield harness
    await harness.client.close()
