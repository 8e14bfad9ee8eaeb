"""Being a good citizen: signatures checked, retries dropped, 429s retried, failures told."""

from __future__ import annotations

import json
import time

import pytest

from tests.bot.slack.conftest import start_harness
from tests.bot.slack.mock_web_api import BOT_USER_ID, wait_until
from tests.bot.slack.signed import event_body

pytestmark = pytest.mark.asyncio
QUESTION = "How many vacation days do employees in the Netherlands get?"


def mention(ts: str) -> dict:
    return {
        "type": "app_mention",
        "user": "UASKER",
        "text": f"<@{BOT_USER_ID}> {QUESTION}",
        "ts": ts,
        "channel": "CGENERAL",
        "event_ts": ts,
    }


def finals(mock):
    return mock.seen(lambda c: "archivist_vote_up" in json.dumps(c.params.get("blocks") or []))


async def test_url_verification_is_answered(slack) -> None:
    body = json.dumps(
        {
            "token": "x",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    response = await slack.send.raw(body, "application/json")
    assert response.status == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in await response.text()


async def test_forged_signature_and_stale_timestamp_are_rejected(slack) -> None:
    body = json.dumps(event_body(mention("1.000001")))
    forged = await slack.send.raw(body, "application/json", secret="not-the-secret")
    stale = await slack.send.raw(body, "application/json", timestamp=int(time.time()) - 10 * 60)
    assert forged.status == 401 and stale.status == 401
    # A signed copy is accepted, which shows the two above failed on their signatures alone.
    await slack.send.raw(body, "application/json")
    await wait_until(lambda: finals(slack.mock))
    assert len(slack.mock.posted()) == 1


async def test_slack_retry_of_a_taken_event_is_dropped(slack) -> None:
    await slack.send.event(mention("2.000001"), event_id="EvRETRY1")
    await slack.send.event(
        mention("2.000001"),
        event_id="EvRETRY1",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    await wait_until(lambda: finals(slack.mock))
    await slack.send.event(mention("2.000009"))  # a later event: the retry had its chance to be handled
    await wait_until(lambda: len(finals(slack.mock)) == 2)
    assert [p.params["thread_ts"] for p in slack.mock.posted()] == ["2.000001", "2.000009"]


async def test_two_processes_answer_an_event_once(slack, remote_model_app, mock_slack) -> None:
    other = await start_harness(remote_model_app, mock_slack)  # a second Bolt app on the same Redis
    try:
        await slack.send.event(mention("3.000001"), event_id="EvTWICE1")
        await other.send.event(mention("3.000001"), event_id="EvTWICE1")
        await wait_until(lambda: finals(mock_slack))
        await other.send.event(mention("3.000009"))
        await wait_until(lambda: len(finals(mock_slack)) == 2)
    finally:
        await other.client.close()
    assert [p.params["thread_ts"] for p in mock_slack.posted()] == ["3.000001", "3.000009"]


async def test_rate_limited_calls_are_retried_and_the_answer_arrives(slack) -> None:
    slack.mock.rate_limit_next("chat.postMessage")
    slack.mock.rate_limit_next("chat.update")
    await slack.send.event(mention("4.000001"))
    [final] = await wait_until(lambda: finals(slack.mock), timeout=120)
    assert "The documents say so" in final.text()
    assert [c.status for c in slack.mock.of("chat.postMessage")] == [429, 200]
    assert slack.mock.of("chat.update")[0].status == 429


async def test_a_failing_model_becomes_a_short_message_in_the_thread(slack, openai_server) -> None:
    openai_server.fail_with = 500
    await slack.send.event(mention("5.000001"))
    [told] = await wait_until(
        lambda: slack.mock.seen(lambda c: c.method == "chat.update" and ":warning:" in c.text())
    )
    assert told.params["ts"] == slack.mock.posted()[0].params.get("ts", told.params["ts"])
    assert len(told.text()) < 400 and "Traceback" not in told.text()
