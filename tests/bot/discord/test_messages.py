"""Mentions, DMs, replies and threads, as a Discord user experiences them."""

from __future__ import annotations

import logging
import re

import pytest

from tests.bot.discord.harness import make_thread, say

QUESTION = "How many vacation days do employees in the Netherlands get?"
FOLLOW_UP = "And how do I request them?"


def _word(i: int) -> str:
    letters = "abcdefghij"
    return "".join(letters[int(d)] for d in str(i)) + "x"


def _asked(openai_server, text: str) -> bool:
    """Did the last request to the model carry ``text`` (question or remembered history)?"""
    messages = openai_server.requests[-1]["body"]["messages"]
    return any(text in str(message.get("content", "")) for message in messages)


@pytest.mark.asyncio
async def test_mention_in_a_channel_gets_a_reply_with_sources_and_feedback_buttons(
    discord_env, openai_server
) -> None:
    openai_server.reply = "Employees in the Netherlands get more vacation days than in Austin [1]."
    question = await say(
        f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice
    )

    [answer] = discord_env.screen.visible(discord_env.channel.id)
    assert answer.reference == question.id  # a Discord reply to the question
    assert answer.content.startswith(
        "Employees in the Netherlands get more vacation days than in Austin [1]."
    )
    assert re.search(r"\*\*Sources\*\*\n1\. .*Vacation", answer.content)
    assert [cid.split(":")[2] for cid in answer.custom_ids()] == ["up", "down"]
    assert _asked(openai_server, QUESTION) and not _asked(
        openai_server, "<@"
    )  # the mention is not part of the question


@pytest.mark.asyncio
async def test_messages_not_addressed_to_the_bot_are_left_alone(discord_env) -> None:
    await say(QUESTION, channel=discord_env.channel, member=discord_env.alice)
    assert discord_env.screen.visible() == []


@pytest.mark.asyncio
async def test_a_bare_mention_gets_a_hint_not_silence(discord_env) -> None:
    await say(discord_env.mention, channel=discord_env.channel, member=discord_env.alice)
    [hint] = discord_env.screen.texts()
    assert "Ask me something" in hint


@pytest.mark.asyncio
async def test_direct_message_is_answered(discord_env, openai_server) -> None:
    dm = await discord_env.alice.create_dm()
    await say(QUESTION, channel=dm, member=discord_env.alice)
    [answer] = discord_env.screen.visible(dm.id)
    assert answer.content.startswith(openai_server.reply)
    assert _asked(openai_server, QUESTION)


@pytest.mark.asyncio
async def test_replying_to_an_answer_continues_the_conversation(discord_env, openai_server) -> None:
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    [first] = discord_env.screen.visible()

    await say(
        FOLLOW_UP, channel=discord_env.channel, member=discord_env.bob, reply_to=first.id
    )  # no mention needed

    assert len(discord_env.screen.visible()) == 2
    assert _asked(openai_server, FOLLOW_UP) and _asked(
        openai_server, QUESTION
    )  # the first turn is remembered


@pytest.mark.asyncio
async def test_a_new_mention_starts_a_new_conversation(discord_env, openai_server) -> None:
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    await say(f"{discord_env.mention} {FOLLOW_UP}", channel=discord_env.channel, member=discord_env.alice)
    assert _asked(openai_server, FOLLOW_UP) and not _asked(openai_server, QUESTION)


@pytest.mark.asyncio
async def test_reply_in_thread_then_follow_ups_in_that_thread(
    make_discord, remote_model_app, openai_server
) -> None:
    env = await make_discord(remote_model_app, reply_in_thread=True)
    question = await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)

    thread = env.guild.get_thread(question.id)
    assert thread is not None and thread.owner_id == env.bot.user.id
    assert env.screen.visible(env.channel.id) == []  # the channel stays clean
    assert len(env.screen.visible(thread.id)) == 1

    await say(FOLLOW_UP, channel=thread, member=env.bob)  # in its own thread, no mention needed
    assert len(env.screen.visible(thread.id)) == 2
    assert _asked(openai_server, QUESTION) and _asked(openai_server, FOLLOW_UP)


@pytest.mark.asyncio
async def test_in_someone_elses_thread_only_mentions_are_answered(discord_env, openai_server) -> None:
    thread = make_thread(discord_env.bot, discord_env.channel, owner_id=discord_env.alice.id)
    await say(QUESTION, channel=thread, member=discord_env.alice)
    assert discord_env.screen.visible(thread.id) == []
    await say(f"{discord_env.mention} {QUESTION}", channel=thread, member=discord_env.alice)
    assert len(discord_env.screen.visible(thread.id)) == 1


@pytest.mark.asyncio
async def test_long_answer_is_split_at_boundaries_never_inside_code_or_words(
    discord_env, openai_server
) -> None:
    # No digits: the core replaces answers whose figures its sources lack.
    prose = " ".join(
        f"Sentence {_word(i)} explains one more detail of the vacation policy." for i in range(40)
    )
    code = (
        "```python\n"
        + "\n".join(f"request_vacation(day='{_word(i)}', approved=True)  # {_word(i)}" for i in range(70))
        + "\n```"
    )
    tail = " ".join(f"Paragraph {_word(i)} adds a closing remark about approvals." for i in range(40))
    openai_server.reply = f"{prose}\n\n{code}\n\n{tail} That is all [1]."
    openai_server.chunk_chars = 400

    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)

    messages = discord_env.screen.texts(discord_env.channel.id)
    assert len(messages) >= 4
    assert all(len(text) <= 2000 for text in messages)
    assert all(text.count("```") % 2 == 0 for text in messages)  # every message renders its code on its own
    for text in messages[:-1]:  # the last one ends with the sources list
        if "```" not in text:
            assert text.rstrip().endswith((".", ")")), text[-60:]  # prose breaks after a sentence
    joined = " ".join(messages)
    for i in range(40):
        assert f"Sentence {_word(i)} explains" in joined
    for i in range(70):
        assert (
            f"request_vacation(day='{_word(i)}', approved=True)  # {_word(i)}" in joined
        )  # no code line was cut
    assert "**Sources**" in messages[-1] and discord_env.screen.visible()[-1].custom_ids()


@pytest.mark.asyncio
async def test_answers_never_ping_anyone(discord_env, openai_server) -> None:
    # (Raw <@id> mentions hold digits, which the core's grounding check rewrites; see test_render.)
    openai_server.reply = "Hey @everyone and @here: vacation requests go to your manager [1]."
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)

    [answer] = discord_env.screen.visible()
    assert answer.allowed_mentions is not None and answer.allowed_mentions["parse"] == []
    assert not answer.allowed_mentions.get("replied_user")  # not even the asker is pinged by the reply
    assert "@everyone" not in answer.content and "@here" not in answer.content
    assert "everyone" in answer.content and "here" in answer.content  # still readable as text


@pytest.mark.asyncio
async def test_other_bots_are_ignored(discord_env) -> None:
    discord_env.bob._user.bot = True
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.bob)
    assert discord_env.screen.visible() == []


@pytest.mark.asyncio
async def test_a_failing_model_gets_an_honest_message(discord_env, openai_server) -> None:
    openai_server.fail_with = 500
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    [message] = discord_env.screen.texts()
    assert message.startswith("⚠️") and "try again" in message.lower()


@pytest.mark.asyncio
async def test_answer_from_the_local_model(make_discord, synced_app) -> None:
    env = await make_discord(synced_app)
    await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
    [answer] = env.screen.visible()
    assert answer.content.strip() and len(answer.content) <= 2000
    assert answer.custom_ids()


@pytest.mark.asyncio
async def test_without_create_public_threads_the_answer_is_an_inline_reply(
    make_discord, remote_model_app, openai_server, caplog: pytest.LogCaptureFixture
) -> None:
    env = await make_discord(remote_model_app, reply_in_thread=True)
    env.screen.no_threads.add(env.channel.id)
    with caplog.at_level(logging.WARNING, logger="bot.discord"):
        question = await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
        await say(f"{env.mention} {FOLLOW_UP}", channel=env.channel, member=env.alice)

    first, second = env.screen.visible(env.channel.id)
    assert first.reference == question.id and first.content.startswith(openai_server.reply)
    assert second.content.startswith(openai_server.reply)
    [warning] = [r.getMessage() for r in caplog.records if "Create Public Threads" in r.getMessage()]


@pytest.mark.asyncio
async def test_without_read_message_history_answers_still_arrive_and_the_log_says_why(
    discord_env, openai_server, caplog: pytest.LogCaptureFixture
) -> None:
    env = discord_env
    env.screen.no_history.add(env.channel.id)
    with caplog.at_level(logging.WARNING, logger="bot.discord"):
        await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
        await say(f"{env.mention} {FOLLOW_UP}", channel=env.channel, member=env.alice)

    answers = env.screen.visible(env.channel.id)
    assert len(answers) == 2 and all(a.content.startswith(openai_server.reply) for a in answers)
    assert all(a.reference is None for a in answers)  # posted without the reply link
    [warning] = [r.getMessage() for r in caplog.records if "Read Message History" in r.getMessage()]


@pytest.mark.asyncio
async def test_the_answer_says_which_model_answered(discord_env, openai_server) -> None:
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    [answer] = discord_env.screen.visible()
    assert answer.content.splitlines()[-1] == "-# Answered by gpt-test"
