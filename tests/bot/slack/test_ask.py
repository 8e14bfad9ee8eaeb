"""Asking: @mention, DM, thread follow-up, /ask with sharing, emoji trigger, bots ignored."""

from __future__ import annotations

import json

import pytest

from tests.bot.slack.conftest import Harness
from tests.bot.slack.mock_web_api import BOT_ID, BOT_USER_ID, wait_until
from tests.bot.slack.signed import block_action

pytestmark = pytest.mark.asyncio

QUESTION = "How many vacation days do employees in the Netherlands get?"


def mention(
    text: str, ts: str, *, channel: str = "CGENERAL", thread_ts: str | None = None, user: str = "UASKER"
) -> dict:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    return {**event, "thread_ts": thread_ts} if thread_ts else event


def message(
    text: str, ts: str, *, channel: str, thread_ts: str | None = None, user: str = "UASKER", **extra
) -> dict:
    event = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": "im" if channel.startswith("D") else "channel",
        **extra,
    }
    return {**event, "thread_ts": thread_ts} if thread_ts else event


def final_answers(harness: Harness, channel: str):
    """Answers as people finally see them: placeholders edited to carry feedback buttons."""
    return harness.mock.seen(
        lambda c: (
            c.method in ("chat.update", "chat.postMessage")
            and c.params.get("channel") == channel
            and "archivist_vote_up" in json.dumps(c.params.get("blocks") or [])
        )
    )


async def test_mention_is_answered_in_its_thread_with_sources_and_buttons(
    slack: Harness, openai_server
) -> None:
    await slack.send.event(mention(QUESTION, "100.000001"))

    [final] = await wait_until(lambda: final_answers(slack, "CGENERAL"))
    placeholder = slack.mock.posted()[0]
    assert placeholder.params["thread_ts"] == "100.000001"
    assert final.method == "chat.update" and final.params["ts"] != "100.000001"
    text = final.text()
    assert "The documents say so [1]." in text
    assert "*Sources*" in text and "[1]" in text
    assert "Answered by gpt-test" in text  # which model answered, under the answer
    # The question reached the model as asked, without the mention.
    asked = openai_server.requests[-1]["body"]["messages"][-1]["content"]
    assert QUESTION in asked and BOT_USER_ID not in asked


async def test_dm_is_answered_in_the_dm_not_in_a_thread(slack: Harness) -> None:
    await slack.send.event(message(QUESTION, "200.000001", channel="DASKER"))

    [final] = await wait_until(lambda: final_answers(slack, "DASKER"))
    placeholder = slack.mock.posted()[0]
    assert placeholder.params["channel"] == "DASKER"
    assert not placeholder.params.get("thread_ts")
    assert "The documents say so" in final.text()


async def test_reply_in_a_followed_thread_is_answered_without_a_new_mention(
    slack: Harness, openai_server
) -> None:
    await slack.send.event(mention(QUESTION, "300.000001"))
    await wait_until(lambda: final_answers(slack, "CGENERAL"))

    openai_server.reply = "Twenty-five days, as before [1]."
    await slack.send.event(
        message("And in Austin?", "300.000002", channel="CGENERAL", thread_ts="300.000001")
    )
    answers = await wait_until(
        lambda: len(final_answers(slack, "CGENERAL")) == 2 and final_answers(slack, "CGENERAL")
    )
    assert "Twenty-five days, as before" in answers[1].text()
    assert all(p.params["thread_ts"] == "300.000001" for p in slack.mock.posted())
    # The follow-up carried the conversation: the model saw the first turn.
    last_request = json.dumps(openai_server.requests[-1]["body"]["messages"])
    assert "The documents say so [1]." in last_request


async def test_reply_in_a_thread_archivist_never_answered_is_left_alone(slack: Harness) -> None:
    await slack.send.event(message("Just chatting", "400.000002", channel="CGENERAL", thread_ts="400.000001"))
    # A later mention proves the app was processing events; the chat reply got nothing.
    await slack.send.event(mention(QUESTION, "400.000003"))
    await wait_until(lambda: final_answers(slack, "CGENERAL"))
    assert [p.params["thread_ts"] for p in slack.mock.posted()] == ["400.000003"]


async def test_other_bots_and_own_messages_are_ignored(slack: Harness) -> None:
    await slack.send.event(
        message(QUESTION, "500.000001", channel="DASKER", bot_id="BOTHER", subtype="bot_message")
    )
    await slack.send.event(
        message("my own words", "500.000002", channel="DASKER", user=BOT_USER_ID, bot_id=BOT_ID)
    )
    await slack.send.event(message(QUESTION, "500.000003", channel="DASKER"))
    await wait_until(lambda: final_answers(slack, "DASKER"))
    assert len(slack.mock.posted()) == 1


async def _press_share(slack: Harness, value: str, *, user: str, channel: str = "CGENERAL") -> None:
    """Press "Share in channel" on an ephemeral /ask answer."""
    await slack.send.interaction(
        block_action(
            "archivist_share",
            value,
            user=user,
            channel=channel,
            message_ts="",
            thread_ts=None,
            response_url=slack.mock.response_url("button"),
            ephemeral=True,
        )
    )


@pytest.mark.parametrize("channel", ["CGENERAL", "CNOTMEMBER"])
async def test_slash_ask_answers_ephemerally_and_can_be_shared(slack: Harness, channel: str) -> None:
    """Sharing works where Archivist is no member too (chat.postMessage would fail: not_in_channel)."""
    slack.mock.not_member.add("CNOTMEMBER")
    response = await slack.send.command("/ask", QUESTION, channel=channel)
    assert "Looking that up" in await response.text()

    [reply] = await wait_until(lambda: slack.mock.of("response_url"))
    assert reply.params["response_type"] == "ephemeral"
    assert "The documents say so" in reply.text()
    buttons = [e for b in reply.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    share = next(b for b in buttons if b["action_id"] == "archivist_share")
    assert not slack.mock.posted()  # nobody else saw it

    await _press_share(slack, share["value"], user="UASKER", channel=channel)
    [shared] = await wait_until(
        lambda: slack.mock.seen(lambda c: c.params.get("response_type") == "in_channel")
    )
    assert shared.params["_path"] == "/response/r1"  # the command's own response_url
    assert "The documents say so" in shared.text() and "Shared by <@UASKER>" in shared.text()
    assert await wait_until(
        lambda: [c for c in slack.mock.of("response_url") if c.params.get("delete_original")]
    )
    assert not [c for c in slack.mock.calls if c.error]


async def test_only_the_asker_can_share_an_ask_answer(slack: Harness) -> None:
    """The answer may come from documents only the asker may read: a forged share by anyone else fails."""
    await slack.send.command("/ask", QUESTION)
    [reply] = await wait_until(lambda: slack.mock.of("response_url"))
    buttons = [e for b in reply.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    share = next(b for b in buttons if b["action_id"] == "archivist_share")
    await _press_share(slack, share["value"], user="UOTHER")
    refusals = await wait_until(
        lambda: [c for c in slack.mock.of("response_url") if "Only the person who asked" in c.text()]
    )
    assert refusals and not slack.mock.posted()


async def test_slash_ask_without_text_explains_usage(slack: Harness) -> None:
    response = await slack.send.command("/ask", "   ")
    assert "/ask" in await response.text()


async def test_question_emoji_answers_that_message_in_its_thread(slack: Harness) -> None:
    slack.mock.messages["CGENERAL"] = [
        {"type": "message", "user": "UOTHER", "text": QUESTION, "ts": "600.000001"}
    ]
    reaction = {
        "type": "reaction_added",
        "user": "UREACTOR",
        "reaction": "question",
        "item": {"type": "message", "channel": "CGENERAL", "ts": "600.000001"},
        "event_ts": "600.000009",
    }
    await slack.send.event(reaction)
    [final] = await wait_until(lambda: final_answers(slack, "CGENERAL"))
    assert slack.mock.posted()[0].params["thread_ts"] == "600.000001"
    assert "The documents say so" in final.text()

    # A second person reacting the same way does not get a second answer.
    await slack.send.event({**reaction, "user": "USECOND", "event_ts": "600.000010"})
    await slack.send.event(mention(QUESTION, "600.000020"))
    await wait_until(lambda: len(final_answers(slack, "CGENERAL")) == 2)
    assert [p.params["thread_ts"] for p in slack.mock.posted()] == ["600.000001", "600.000020"]


async def test_question_emoji_on_a_reply_inside_a_thread_is_answered_in_that_thread(slack: Harness) -> None:
    """conversations.replies gives the thread's parent first: the reply must still be found."""
    slack.mock.messages["CGENERAL"] = [
        {
            "type": "message",
            "user": "UOTHER",
            "text": "Planning the trip",
            "ts": "650.000001",
            "thread_ts": "650.000001",
            "reply_count": 2,
        },
        {
            "type": "message",
            "user": "UOTHER",
            "text": QUESTION,
            "ts": "650.000002",
            "thread_ts": "650.000001",
        },
        {
            "type": "message",
            "user": "UTHIRD",
            "text": "good question",
            "ts": "650.000003",
            "thread_ts": "650.000001",
        },
    ]
    await slack.send.event(
        {
            "type": "reaction_added",
            "user": "UREACTOR",
            "reaction": "question",
            "item": {"type": "message", "channel": "CGENERAL", "ts": "650.000002"},
            "event_ts": "650.000009",
        }
    )
    [final] = await wait_until(lambda: final_answers(slack, "CGENERAL"))
    assert slack.mock.posted()[0].params["thread_ts"] == "650.000001"
    assert "The documents say so" in final.text()


async def test_other_emoji_does_nothing(slack: Harness) -> None:
    slack.mock.messages["CGENERAL"] = [
        {"type": "message", "user": "UOTHER", "text": QUESTION, "ts": "700.000001"}
    ]
    await slack.send.event(
        {
            "type": "reaction_added",
            "user": "UREACTOR",
            "reaction": "tada",
            "item": {"type": "message", "channel": "CGENERAL", "ts": "700.000001"},
            "event_ts": "700.1",
        }
    )
    await slack.send.event(mention(QUESTION, "700.000020"))
    await wait_until(lambda: final_answers(slack, "CGENERAL"))
    assert [p.params["thread_ts"] for p in slack.mock.posted()] == ["700.000020"]


@pytest.mark.slow
async def test_mention_answered_by_the_real_local_model(synced_app, mock_slack) -> None:
    from tests.bot.slack.conftest import start_harness

    harness = await start_harness(synced_app, mock_slack)
    try:
        await harness.send.event(mention(QUESTION, "800.000001"))
        [final] = await wait_until(lambda: final_answers(harness, "CGENERAL"), timeout=600)
    finally:
        await harness.client.close()
    assert mock_slack.posted()[0].params["thread_ts"] == "800.000001"
    assert "*Sources*" in final.text() and "pto-policy" in final.text()


async def test_channels_can_require_a_mention_for_follow_ups(remote_model_app, mock_slack) -> None:
    from tests.bot.slack.conftest import start_harness

    slack_settings = remote_model_app.settings.slack.model_copy(update={"no_follow_channels": ["CQUIET"]})
    remote_model_app.settings = remote_model_app.settings.model_copy(update={"slack": slack_settings})
    harness = await start_harness(remote_model_app, mock_slack)
    try:
        await harness.send.event(mention(QUESTION, "500.000001", channel="CQUIET"))
        await wait_until(lambda: final_answers(harness, "CQUIET"))
        await harness.send.event(
            message("And in Austin?", "500.000002", channel="CQUIET", thread_ts="500.000001")
        )
        # A later mention elsewhere proves events were processed; the quiet follow-up got nothing.
        await harness.send.event(mention(QUESTION, "500.000003", channel="CGENERAL"))
        await wait_until(lambda: final_answers(harness, "CGENERAL"))
        assert len(final_answers(harness, "CQUIET")) == 1
    finally:
        await harness.client.close()
