"""The message shortcut "Ask Archivist about this message" and the App Home tab."""

from __future__ import annotations

import json
import time

import pytest

from bot.slack.ask import ASK_SHORTCUT
from bot.slack.home import SYNC_ALL
from tests.bot.slack.conftest import Harness, start_harness
from tests.bot.slack.mock_web_api import TEAM_ID, MockSlack, wait_until

pytestmark = pytest.mark.asyncio

QUESTION = "How many vacation days do employees in the Netherlands get?"


def finals(mock: MockSlack, channel: str):
    return mock.seen(
        lambda c: (
            c.params.get("channel") == channel
            and "archivist_vote_up" in json.dumps(c.params.get("blocks") or [])
        )
    )


def shortcut(mock: MockSlack, message: dict, *, user: str = "UREADER") -> dict:
    return {
        "type": "message_action",
        "callback_id": ASK_SHORTCUT,
        "trigger_id": "1337.42.shortcut",
        "user": {"id": user, "username": "reader", "team_id": TEAM_ID},
        "channel": {"id": "CGENERAL", "name": "general"},
        "message_ts": message["ts"],
        "message": message,
        "response_url": mock.response_url("shortcut"),
    }


async def test_message_shortcut_answers_the_message_in_its_thread_once(slack: Harness) -> None:
    reply = {
        "type": "message",
        "user": "UOTHER",
        "text": QUESTION,
        "ts": "80.000002",
        "thread_ts": "80.000001",
    }
    await slack.send.interaction(shortcut(slack.mock, reply))
    [final] = await wait_until(lambda: finals(slack.mock, "CGENERAL"))
    assert "The documents say so" in final.text()
    assert slack.mock.posted()[0].params["thread_ts"] == "80.000001"  # the message's own thread

    await slack.send.interaction(shortcut(slack.mock, reply, user="USECOND"))
    [told] = await wait_until(lambda: slack.mock.of("response_url"))
    assert "already" in told.text() and told.params["response_type"] == "ephemeral"
    assert len(finals(slack.mock, "CGENERAL")) == 1


@pytest.mark.parametrize("streaming", [True, False])
async def test_shortcut_where_archivist_is_no_member_tells_the_presser_privately(
    slack: Harness, streaming: bool
) -> None:
    slack.mock.streaming = streaming
    slack.mock.not_member.add("CGENERAL")
    message = {"type": "message", "user": "UOTHER", "text": QUESTION, "ts": "81.000001"}
    await slack.send.interaction(shortcut(slack.mock, message))
    [told] = await wait_until(lambda: slack.mock.seen(lambda c: c.method == "response_url"))
    assert "invite me" in told.text() and told.params["response_type"] == "ephemeral"
    if streaming:  # a refusal about the channel does not turn streaming off for the workspace
        slack.mock.not_member.clear()
        await slack.send.interaction(shortcut(slack.mock, {**message, "ts": "81.000002"}))
        await wait_until(lambda: slack.mock.seen(lambda c: c.method == "chat.stopStream"))


def home_opened(user: str) -> dict:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": f"D{user[1:]}",
        "tab": "home",
        "event_ts": "1.0",
    }


def home_views(mock: MockSlack, user: str) -> list[str]:
    return [
        json.dumps(c.params["view"])
        for c in mock.seen(lambda c: c.method == "views.publish")
        if c.params["user_id"] == user
    ]


async def test_home_tab_shows_a_member_what_they_can_ask_about(slack: Harness) -> None:
    await slack.send.event(home_opened("UREADER"))
    [view] = await wait_until(lambda: home_views(slack.mock, "UREADER"))
    assert "What you can ask about" in view and "handbook" in view and "synced 0 min ago" in view
    assert SYNC_ALL not in view and "Sync status" not in view


@pytest.fixture
def admin_app(make_remote_app):
    return make_remote_app('\n[slack]\nadmins = ["UADMIN"]\n', sync=())


def home_button(user: str) -> dict:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": TEAM_ID},
        "trigger_id": "12345.98765.home",
        "container": {"type": "view", "view_id": "V0HOME"},
        "view": {"id": "V0HOME", "type": "home"},
        "actions": [
            {
                "action_id": SYNC_ALL,
                "block_id": "b1",
                "value": "all",
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }


async def test_home_tab_lets_an_admin_see_and_start_a_sync(admin_app, mock_slack) -> None:
    harness = await start_harness(admin_app, mock_slack)
    try:
        await harness.send.event(home_opened("UADMIN"))
        [view] = await wait_until(lambda: home_views(mock_slack, "UADMIN"))
        assert "Sync status" in view and "never synced" in view and SYNC_ALL in view

        await harness.send.interaction(home_button("UADMIN"))
        summary = await wait_until(lambda: mock_slack.seen(lambda c: "Sync summary" in c.text()), timeout=300)
        views = await wait_until(
            lambda: len(home_views(mock_slack, "UADMIN")) >= 2 and home_views(mock_slack, "UADMIN")
        )
    finally:
        await harness.client.close()
    assert "handbook" in summary[0].text() and summary[0].params["channel"] == "DADMIN"
    assert "never synced" not in views[-1]  # the tab shows the sync that just ran


async def test_a_forged_home_sync_button_from_a_member_starts_nothing(admin_app, mock_slack) -> None:
    harness = await start_harness(admin_app, mock_slack)
    try:
        await harness.send.interaction(home_button("UREADER"))
        [refusal] = await wait_until(lambda: mock_slack.seen(lambda c: "only Archivist admins" in c.text()))
    finally:
        await harness.client.close()
    assert refusal.params["channel"] == "UREADER"
    assert not mock_slack.seen(lambda c: "Syncing" in c.text())
