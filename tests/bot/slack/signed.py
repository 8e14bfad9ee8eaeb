"""Requests as Slack sends them: signed with the signing secret (v0 HMAC-SHA256).

https://api.slack.com/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from tests.bot.slack.mock_web_api import BOT_USER_ID, TEAM_ID

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
_EVENT_IDS = itertools.count(1)


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: str, content_type: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
    }


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0ARCHIVIST",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_EVENT_IDS):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}
        ],
    }


class SlackSender:
    """Posts to the real Bolt endpoint the way Slack does."""

    def __init__(self, client: TestClient, response_url: str) -> None:
        self.client = client
        self.response_url = response_url

    async def raw(self, body: str, content_type: str, headers: dict[str, str] | None = None, **sign: Any):
        all_headers = {**signed_headers(body, content_type, **sign), **(headers or {})}
        return await self.client.post("/slack/events", data=body.encode(), headers=all_headers)

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, headers: dict[str, str] | None = None
    ):
        response = await self.raw(json.dumps(event_body(event, event_id)), "application/json", headers)
        assert response.status == 200, await response.text()
        return response

    async def command(self, command: str, text: str, *, user: str = "UASKER", channel: str = "CGENERAL"):
        form = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": "asker",
            "command": command,
            "text": text,
            "api_app_id": "A0ARCHIVIST",
            "response_url": self.response_url,
            "trigger_id": "1337.42.abc",
        }
        response = await self.raw(urlencode(form), "application/x-www-form-urlencoded")
        assert response.status == 200, await response.text()
        return response

    async def interaction(self, payload: dict[str, Any]):
        payload = {
            "team": {"id": TEAM_ID, "domain": "test"},
            "api_app_id": "A0ARCHIVIST",
            "token": "legacy",
            **payload,
        }
        response = await self.raw(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )
        assert response.status == 200, await response.text()
        return response


def block_action(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str,
    thread_ts: str | None,
    response_url: str,
    ephemeral: bool = False,
) -> dict[str, Any]:
    message = {
        "type": "message",
        "ts": message_ts,
        "text": "answer",
        **({"thread_ts": thread_ts} if thread_ts else {}),
    }
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "voter", "team_id": TEAM_ID},
        "trigger_id": "12345.98765.abcd",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        },
        "channel": {"id": channel, "name": "general"},
        **({} if ephemeral else {"message": message}),
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "archivist_feedback",
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
