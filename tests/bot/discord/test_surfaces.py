"""The other ways to ask: the "Ask Archivist" message command, forum posts, and /ask private."""

from __future__ import annotations

import pytest

from tests.bot.discord.harness import context_menu, forum_post, make_forum, say, slash

QUESTION = "How many vacation days do employees in the Netherlands get?"


def _asked(openai_server, text: str) -> bool:
    return any(text in str(m.get("content", "")) for m in openai_server.requests[-1]["body"]["messages"])


@pytest.mark.asyncio
async def test_ask_archivist_on_a_message_answers_that_message(discord_env, openai_server) -> None:
    env = discord_env
    question = await say(QUESTION, channel=env.channel, member=env.alice)  # no mention: not answered
    assert env.screen.visible() == []

    await context_menu(env.bot, env.screen, "Ask Archivist", question, member=env.bob)

    [answer] = env.screen.visible(env.channel.id)
    assert not answer.ephemeral and not answer.thinking
    assert openai_server.reply in answer.content and "**Sources**" in answer.content
    assert answer.custom_ids()  # feedback buttons
    assert _asked(openai_server, QUESTION)


@pytest.mark.asyncio
async def test_ask_archivist_on_a_message_without_text_says_so_privately(discord_env, openai_server) -> None:
    env = discord_env
    empty = await say("", channel=env.channel, member=env.alice)
    await context_menu(env.bot, env.screen, "Ask Archivist", empty, member=env.bob)
    [reply] = env.screen.visible()
    assert reply.ephemeral and "no text" in reply.content
    assert openai_server.requests == []


@pytest.mark.asyncio
async def test_a_new_forum_post_is_answered_in_its_thread(
    make_discord, remote_model_app, openai_server
) -> None:
    env = await make_discord(remote_model_app)
    forum = make_forum(env.bot, env.guild)
    env.app.settings = env.app.settings.model_copy(
        update={"discord": env.app.settings.discord.model_copy(update={"forum_channels": [str(forum.id)]})}
    )
    post = await forum_post(env.bot, forum, env.alice, "Vacation in the Netherlands", QUESTION)

    [answer] = env.screen.visible(post.id)
    assert answer.content.startswith(openai_server.reply) and answer.custom_ids()
    assert _asked(openai_server, QUESTION) and _asked(openai_server, "Vacation in the Netherlands")

    await say("Thanks, that helps.", channel=post, member=env.alice)  # the conversation, not a new post
    assert len(env.screen.visible(post.id)) == 1


@pytest.mark.asyncio
async def test_posts_in_other_forums_are_left_alone(discord_env, openai_server) -> None:
    forum = make_forum(discord_env.bot, discord_env.guild)
    post = await forum_post(discord_env.bot, forum, discord_env.alice, "Vacation", QUESTION)
    assert discord_env.screen.visible(post.id) == []


@pytest.mark.asyncio
async def test_ask_private_answers_only_the_asker(discord_env, openai_server) -> None:
    env = discord_env
    await slash(
        env.bot, env.screen, "ask", channel=env.channel, member=env.alice, question=QUESTION, private=True
    )
    [answer] = env.screen.visible()
    assert (
        answer.ephemeral
        and answer.content.startswith(openai_server.reply)
        and "**Sources**" in answer.content
    )
