"""Many answers streaming at once stay inside Slack's per-method, per-workspace rate limits.

The Web API stand-in enforces the documented tiers (chat.update Tier 3, the streaming
methods Tier 4, chat.postMessage about one a second per channel) and answers 429 past
them; a well-behaved bot is never served one, and every answer still arrives in full.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.slack.pacing import Limit, RateBudget
from tests.bot.slack.conftest import Harness
from tests.bot.slack.mock_web_api import BOT_USER_ID, wait_until

pytestmark = pytest.mark.asyncio

QUESTION = "How many vacation days do employees in the Netherlands get?"
LAST_WORDS = "That is the whole policy in short [1]."
# Several sentences streamed in small pieces with a pause between them: about five seconds each.
REPLY = (
    "Employees in the Netherlands get their vacation days as the handbook describes [1]. "
    "Requests go to your manager through the HR portal before the holiday starts. "
    "Unused days carry over into the following year within the usual limits. "
    "Public holidays are not counted against the yearly allowance. " + LAST_WORDS
)
ANSWERS = 12


def mention(ts: str, channel: str) -> dict:
    return {
        "type": "app_mention",
        "user": "UASKER",
        "text": f"<@{BOT_USER_ID}> {QUESTION}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }


def slow_model(openai_server) -> None:
    openai_server.reply = REPLY
    openai_server.chunk_chars = 8
    openai_server.chunk_delay_s = 0.12


async def test_twelve_answers_streamed_with_slacks_streaming_methods_all_arrive_without_a_429(
    slack: Harness, openai_server
) -> None:
    slack.mock.streaming = True
    slow_model(openai_server)
    await asyncio.gather(*(slack.send.event(mention(f"900.{i:06d}", "CGENERAL")) for i in range(ANSWERS)))

    stopped = await wait_until(
        lambda: (
            len(slack.mock.seen(lambda c: c.method == "chat.stopStream")) == ANSWERS
            and slack.mock.seen(lambda c: c.method == "chat.stopStream")
        ),
        timeout=180,
    )
    for stop in stopped:
        shown = slack.mock.shown(stop.params["ts"])
        assert "Employees in the Netherlands" in shown and LAST_WORDS in shown
        assert "*Sources*" in shown and "Helpful" in shown
    assert slack.mock.seen(lambda c: c.method == "chat.appendStream")  # the words arrived as written
    assert slack.mock.rate_limited() == []
    assert slack.mock.posted() == []  # no placeholders: the stream is the message


async def test_twelve_answers_edited_with_chat_update_all_arrive_without_a_429(
    slack: Harness, openai_server
) -> None:
    """A workspace without the streaming methods: throttled chat.update, budgeted per workspace."""
    slow_model(openai_server)
    channels = ["CGENERAL", "CHR", "CENG", "CSALES"]
    await asyncio.gather(
        *(slack.send.event(mention(f"910.{i:06d}", channels[i % 4])) for i in range(ANSWERS))
    )

    def finals():
        return slack.mock.seen(lambda c: c.method == "chat.update" and bool(c.params.get("blocks")))

    done = await wait_until(lambda: len(finals()) == ANSWERS and finals(), timeout=180)
    for final in done:
        shown = slack.mock.shown(final.params["ts"])
        assert "Employees in the Netherlands" in shown and LAST_WORDS in shown and "*Sources*" in shown
    partial = slack.mock.seen(lambda c: c.method == "chat.update" and not c.params.get("blocks"))
    assert partial, "answers should still fill in as they are written"
    assert slack.mock.rate_limited() == []


async def test_progress_edits_leave_room_for_the_final_answers_owed() -> None:
    now = [0.0]
    budget = RateBudget(clock=lambda: now[0])
    limit = Limit(capacity=3, per_second=1.0)
    budget.owe(("chat.update", "T1"), 2)  # two answers in flight, each owed a final edit
    assert budget.optional(("chat.update", "T1"), limit)  # 3 tokens: one may go to progress
    assert not budget.optional(("chat.update", "T1"), limit)  # the last two are the finals'
    await budget.take(("chat.update", "T1"), limit)
    await budget.take(("chat.update", "T1"), limit)
    assert budget.optional(("chat.update", "T2"), limit)  # another workspace has a budget of its own
