"""Slack credentials, from the environment only (secrets never live in the config file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import ConfigError

_HINT = {
    "SLACK_BOT_TOKEN": "the bot token (xoxb-...) from your Slack app's OAuth & Permissions page",
    "SLACK_SIGNING_SECRET": (
        "the signing secret from your Slack app's Basic Information page (needed with --http)"
    ),
    "SLACK_APP_TOKEN": "an app-level token (xapp-...) with connections:write (needed for Socket Mode)",
}


@dataclass(frozen=True)
class SlackCredentials:
    bot_token: str
    signing_secret: str = ""
    app_token: str = ""
    api_url: str = ""  # Web API base URL; empty means Slack's own (https://slack.com/api/)

    @classmethod
    def from_env(cls, *, socket: bool, environ: Mapping[str, str] | None = None) -> SlackCredentials:
        env = os.environ if environ is None else environ
        needed = ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN" if socket else "SLACK_SIGNING_SECRET"]
        for name in needed:
            if not env.get(name):
                msg = f"{name} is not set: export {_HINT[name]}"
                raise ConfigError(msg)
        return cls(
            bot_token=env["SLACK_BOT_TOKEN"],
            signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            app_token=env.get("SLACK_APP_TOKEN", ""),
            api_url=api_base_url(env.get("SLACK_API_URL", "")),
        )


def api_base_url(url: str) -> str:
    """slack_sdk joins method names onto the base URL, so it must end with '/'."""
    url = url.strip()
    return url if not url or url.endswith("/") else url + "/"
