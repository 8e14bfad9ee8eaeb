"""Channel policy: an answer never cites a document the people present may not read."""

from __future__ import annotations

import json

import pytest

from tests.bot.slack.conftest import start_harness
from tests.bot.slack.mock_web_api import BOT_USER_ID, wait_until

SECRET_FACT = "The server room vault combination is kept by the facilities lead, Marguerite Okonkwo."
QUESTION = "Who keeps the server room vault combination?"


@pytest.fixture
def vault_app(tmp_path, make_remote_app):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "vault.md").write_text(f"# Server room vault\n\n{SECRET_FACT}\n", encoding="utf-8")
    grants = '["slack:channel:CVAULT", "slack:user:UALICE"]'
    vault_source = f'\n[connectors.vault]\ntype = "filesystem"\npath = "vault"\nprincipals = {grants}\n'
    return make_remote_app(vault_source, sync=("handbook", "vault"))


def sources_of(mock, channel: str) -> str:
    finals = mock.seen(
        lambda c: (
            c.params.get("channel") == channel
            and "archivist_vote_up" in json.dumps(c.params.get("blocks") or [])
        )
    )
    return finals[-1].text() if finals else ""


@pytest.mark.asyncio
async def test_private_source_is_cited_only_where_granted(vault_app, mock_slack, openai_server) -> None:
    harness = await start_harness(vault_app, mock_slack)
    try:
        for channel, ts in (("CGENERAL", "1.000001"), ("CVAULT", "1.000002")):
            await harness.send.event(
                {
                    "type": "app_mention",
                    "user": "UALICE",
                    "text": f"<@{BOT_USER_ID}> {QUESTION}",
                    "ts": ts,
                    "channel": channel,
                    "event_ts": ts,
                }
            )
            await wait_until(lambda channel=channel: sources_of(mock_slack, channel))
            prompt = (
                json.dumps(openai_server.requests[-1]["body"]["messages"]) if openai_server.requests else ""
            )
            if channel == "CGENERAL":
                general_prompt = prompt
        await harness.send.event(
            {
                "type": "message",
                "user": "UALICE",
                "text": QUESTION,
                "ts": "1.000003",
                "channel": "DALICE",
                "channel_type": "im",
                "event_ts": "1.000003",
            }
        )
        await wait_until(lambda: sources_of(mock_slack, "DALICE"))
    finally:
        await harness.client.close()
    # In #general nobody granted the vault: its document is neither cited nor shown to the model,
    # even though the asker (Alice) may read it herself.
    assert "Server room vault" not in sources_of(mock_slack, "CGENERAL")
    assert "Okonkwo" not in general_prompt
    # Where it is granted (the channel, or Alice's DM), the same question cites it.
    assert "Server room vault" in sources_of(mock_slack, "CVAULT")
    assert "Server room vault" in sources_of(mock_slack, "DALICE")
