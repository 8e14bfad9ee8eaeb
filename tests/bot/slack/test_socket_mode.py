"""Socket Mode against a local WebSocket server speaking Slack's envelope format."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from bot.slack.app import build_slack_app
from bot.slack.credentials import SlackCredentials
from tests.bot.slack.mock_web_api import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, TEAM_ID, wait_until
from tests.bot.slack.signed import event_body

QUESTION = "How many vacation days do employees in the Netherlands get?"


class SocketSlack:
    """Sends envelopes to whichever connection is open; records the acks it gets back."""

    def __init__(self) -> None:
        self.connections = 0
        self.acks: list[dict] = []
        self.current = None

    async def handler(self, websocket) -> None:
        self.connections += 1
        self.current = websocket
        await websocket.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A0ARCHIVIST"},
                    "debug_info": {"host": "local"},
                }
            )
        )
        try:
            async for raw in websocket:
                self.acks.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass

    async def send(self, envelope: dict) -> None:
        await self.current.send(json.dumps(envelope))


@pytest.mark.asyncio
async def test_socket_mode_events_commands_and_reconnect(remote_model_app, mock_slack) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    slack = SocketSlack()
    server = await websockets.serve(slack.handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mock_slack.socket_url = f"ws://127.0.0.1:{port}/link"
    bolt = build_slack_app(
        remote_model_app, SlackCredentials(BOT_TOKEN, app_token=APP_TOKEN, api_url=mock_slack.api_url)
    )
    handler = AsyncSocketModeHandler(bolt, APP_TOKEN, ping_interval=30)
    try:
        await handler.connect_async()
        await wait_until(lambda: slack.connections == 1)
        mention = {
            "type": "app_mention",
            "user": "UASKER",
            "text": f"<@{BOT_USER_ID}> {QUESTION}",
            "ts": "1.000001",
            "channel": "CGENERAL",
            "event_ts": "1.000001",
        }
        await slack.send(
            {
                "envelope_id": "env-1",
                "type": "events_api",
                "accepts_response_payload": False,
                "payload": event_body(mention),
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        await wait_until(lambda: any(a.get("envelope_id") == "env-1" for a in slack.acks))
        [final] = await wait_until(
            lambda: mock_slack.seen(lambda c: "archivist_vote_up" in json.dumps(c.params.get("blocks") or []))
        )
        assert "The documents say so" in final.text()

        await slack.send(
            {"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "local"}}
        )
        await wait_until(lambda: slack.connections == 2, timeout=60)
        assert len(mock_slack.of("apps.connections.open")) >= 2

        command = {
            "token": "x",
            "team_id": TEAM_ID,
            "channel_id": "CGENERAL",
            "user_id": "UNOBODY",
            "command": "/archivist",
            "text": "status",
            "response_url": mock_slack.response_url(),
            "trigger_id": "1.2.3",
            "api_app_id": "A0ARCHIVIST",
        }
        await slack.send(
            {
                "envelope_id": "env-2",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": command,
            }
        )
        [refusal] = await wait_until(lambda: mock_slack.of("response_url"))
        assert "only Archivist admins" in refusal.params["text"]
        assert any(a.get("envelope_id") == "env-2" for a in slack.acks)

        action = {
            "type": "block_actions",
            "user": {"id": "UVOTER"},
            "team": {"id": TEAM_ID},
            "trigger_id": "1.2.3",
            "response_url": mock_slack.response_url("r2"),
            "container": {
                "type": "message",
                "channel_id": "CGENERAL",
                "message_ts": final.params["ts"],
                "is_ephemeral": False,
            },
            "channel": {"id": "CGENERAL"},
            "message": {"ts": final.params["ts"], "thread_ts": "1.000001"},
            "actions": [
                {
                    "action_id": "archivist_vote_up",
                    "value": next(b for b in final.params["blocks"] if b["type"] == "actions")["elements"][0][
                        "value"
                    ],
                    "type": "button",
                }
            ],
        }
        await slack.send(
            {
                "envelope_id": "env-3",
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": action,
            }
        )
        await wait_until(lambda: list(remote_model_app.feedback.all()))
        assert any(a.get("envelope_id") == "env-3" for a in slack.acks)
    finally:
        await handler.close_async()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
