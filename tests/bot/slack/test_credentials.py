"""Credentials come from the environment; a missing one is named."""

from __future__ import annotations

import pytest

from bot.slack.credentials import SlackCredentials
from core.errors import ConfigError
from tests.bot.slack.signed import SIGNING_SECRET


def test_missing_credentials_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        SlackCredentials.from_env(socket=True, environ={"SLACK_BOT_TOKEN": "xoxb-1"})
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackCredentials.from_env(socket=False, environ={"SLACK_BOT_TOKEN": "xoxb-1"})
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackCredentials.from_env(socket=False, environ={"SLACK_SIGNING_SECRET": SIGNING_SECRET})
    found = SlackCredentials.from_env(
        socket=False,
        environ={
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
        },
    )
    assert found.api_url == "http://127.0.0.1:9/api/"
