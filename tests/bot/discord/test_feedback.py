"""👍/👎 buttons on answers, clicked through discord.py's view store."""

from __future__ import annotations

import pytest

from tests.bot.discord.harness import click, say, submit_modal

QUESTION = "How many vacation days do employees in the Netherlands get?"
MODAL = 9  # interaction response type: open a modal


@pytest.mark.asyncio
async def test_thumbs_up_is_stored_with_the_answer(discord_env, openai_server) -> None:
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    [answer] = discord_env.screen.visible()
    up, _ = answer.custom_ids()

    await click(discord_env.bot, discord_env.screen, answer, up, member=discord_env.bob)

    [thanks] = [m for m in discord_env.screen.visible() if m.ephemeral]
    assert "Thanks" in thanks.content
    [stored] = list(discord_env.app.feedback.all())
    assert stored.vote == 1 and stored.user == str(discord_env.bob.id)
    assert stored.record.question == QUESTION and stored.record.answer.startswith(openai_server.reply)
    assert stored.record.platform == "discord" and stored.record.channel == str(discord_env.channel.id)


@pytest.mark.asyncio
async def test_thumbs_down_asks_what_was_wrong_and_stores_the_comment(discord_env) -> None:
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    [answer] = discord_env.screen.visible()
    _, down = answer.custom_ids()

    await click(discord_env.bot, discord_env.screen, answer, down, member=discord_env.alice)
    [opened] = [c for c in discord_env.screen.callbacks if c["type"] == MODAL]
    assert "wrong" in opened["data"]["title"].lower()
    await submit_modal(
        discord_env.bot,
        discord_env.screen,
        opened["data"],
        "It ignored the Rotterdam office.",
        channel=discord_env.channel,
        member=discord_env.alice,
    )

    [stored] = list(discord_env.app.feedback.all())
    assert stored.vote == -1 and stored.comment == "It ignored the Rotterdam office."
    assert any("recorded" in m.content for m in discord_env.screen.visible() if m.ephemeral)


@pytest.mark.asyncio
async def test_buttons_work_after_a_restart(discord_env, make_discord) -> None:
    await say(f"{discord_env.mention} {QUESTION}", channel=discord_env.channel, member=discord_env.alice)
    [answer] = discord_env.screen.visible()
    restarted = await make_discord(
        discord_env.app
    )  # a new bot process: only the registered templates survive
    await click(
        restarted.bot,
        restarted.screen,
        answer,
        answer.custom_ids()[0],
        member=restarted.alice,
        channel=restarted.channel,
    )
    assert [f.vote for f in discord_env.app.feedback.all()] == [1]


@pytest.mark.asyncio
async def test_two_people_can_say_what_was_wrong_with_the_same_answer(discord_env) -> None:
    env = discord_env
    await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
    [answer] = env.screen.visible()
    _, down = answer.custom_ids()

    # Both open the form before either sends it.
    await click(env.bot, env.screen, answer, down, member=env.alice)
    await click(env.bot, env.screen, answer, down, member=env.bob)
    alices, bobs = [c["data"] for c in env.screen.callbacks if c["type"] == MODAL]
    await submit_modal(
        env.bot, env.screen, alices, "Missed Rotterdam.", channel=env.channel, member=env.alice
    )
    await submit_modal(env.bot, env.screen, bobs, "Wrong year.", channel=env.channel, member=env.bob)

    stored = {f.user: (f.vote, f.comment) for f in env.app.feedback.all()}
    assert stored == {
        str(env.alice.id): (-1, "Missed Rotterdam."),
        str(env.bob.id): (-1, "Wrong year."),
    }


@pytest.mark.asyncio
async def test_buttons_answer_within_the_window_while_redis_is_slow(discord_env, slow_redis) -> None:
    env = discord_env
    await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
    [answer] = env.screen.visible()
    up, down = answer.custom_ids()

    slow_redis()
    await click(env.bot, env.screen, answer, up, member=env.bob)
    slow_redis()
    await click(env.bot, env.screen, answer, down, member=env.alice)

    assert env.screen.refused_callbacks == []  # Discord got each first response in time
    assert [c["type"] for c in env.screen.callbacks][-1] == MODAL  # the form opened
    assert any("Thanks" in m.content for m in env.screen.visible() if m.ephemeral)
    assert sorted(f.vote for f in env.app.feedback.all()) == [-1, 1]
