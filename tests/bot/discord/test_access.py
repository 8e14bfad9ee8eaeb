"""Channel policy and DM principals decide what an answer may cite."""

from __future__ import annotations

import logging

import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend

from core.answering.access import ChannelPolicy
from core.documents import Acl, Document
from core.settings import DiscordSettings
from core.sync.chunking import ChunkingOptions, chunk_document
from tests.bot.discord.harness import say, slash

QUESTION = "What is the Bluefin acquisition offer?"
SECRET = "The acquisition target is codenamed Bluefin; the board approved the offer."
PRESS = "Press release: we are in talks about an acquisition offer for Bluefin."


def _index(
    app, principals: frozenset[str] = frozenset(), public: bool = False, *, press: bool = False
) -> None:
    acl = Acl(public=public, principals=principals)
    documents = [
        Document(id="board/mna.md", source="board", title="Bluefin M&A", text=f"# M&A\n\n{SECRET}", acl=acl)
    ]
    if press:  # a public document on the same subject
        documents.append(
            Document(
                id="news/bluefin.md",
                source="news",
                title="Bluefin press release",
                text=f"# Bluefin\n\n{PRESS}",
                acl=Acl(public=True),
            )
        )
    chunks = [chunk for document in documents for chunk in chunk_document(document, ChunkingOptions())]
    app.store.upsert(chunks, app.embedder.embed_documents([c.search_text() for c in chunks]))
    app.store.finish_sync()


@pytest.mark.asyncio
async def test_private_source_is_cited_only_where_granted(make_discord, remote_model_app) -> None:
    env = await make_discord(remote_model_app)
    role = backend.make_role("board", env.guild)
    await dpytest.add_role(env.alice, role)
    _index(remote_model_app, frozenset({f"discord:role:{role.id}"}))

    await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
    [in_channel] = env.screen.texts(env.channel.id)
    assert "Bluefin M&A" not in in_channel  # a channel reads only what everyone there may read

    dm = await env.alice.create_dm()
    await say(QUESTION, channel=dm, member=env.alice)
    [in_dm] = env.screen.texts(dm.id)
    assert "Bluefin M&A" in in_dm  # Alice holds the role the document is granted to


@pytest.mark.asyncio
async def test_channel_policy_limits_sources(make_discord, remote_model_app) -> None:
    _index(remote_model_app, public=True)
    env = await make_discord(remote_model_app)
    # The first channel may read only the handbook; the second has no entry: every source.
    env.bot.policy = ChannelPolicy.from_settings(
        DiscordSettings(channel_sources={str(env.channel.id): ["handbook"]})
    )

    await say(f"{env.mention} {QUESTION}", channel=env.channel, member=env.alice)
    await say(f"{env.mention} {QUESTION}", channel=env.other_channel, member=env.alice)

    [restricted] = env.screen.texts(env.channel.id)
    [open_channel] = env.screen.texts(env.other_channel.id)
    assert "Bluefin M&A" not in restricted
    assert "Bluefin M&A" in open_channel


@pytest.mark.asyncio
async def test_dm_roles_are_fetched_when_the_member_is_not_cached(make_discord, remote_model_app) -> None:
    env = await make_discord(remote_model_app)
    role = backend.make_role("board", env.guild)
    await dpytest.add_role(env.alice, role)
    _index(remote_model_app, frozenset({f"discord:role:{role.id}"}))
    # Without the members intent discord.py has not cached Alice; only Discord knows her roles.
    env.rest_members.uncache(env.alice)
    assert env.guild.get_member(env.alice.id) is None

    dm = await env.alice.create_dm()
    await say(QUESTION, channel=dm, member=env.alice)
    await slash(env.bot, env.screen, "ask", channel=dm, member=env.alice, question=QUESTION)

    answers = env.screen.texts(dm.id)
    assert len(answers) == 2
    assert all("Bluefin M&A" in answer for answer in answers)  # the message and /ask both
    assert env.rest_members.fetches == [(env.guild.id, env.alice.id)]  # remembered between questions


@pytest.mark.asyncio
async def test_dm_from_someone_in_no_shared_server_reads_only_public_sources(
    make_discord, remote_model_app
) -> None:
    env = await make_discord(remote_model_app)
    role = backend.make_role("board", env.guild)
    await dpytest.add_role(env.alice, role)
    _index(remote_model_app, frozenset({f"discord:role:{role.id}"}), press=True)
    stranger = backend.make_user("carol", "0003")

    dm = await stranger.create_dm()
    await say(QUESTION, channel=dm, member=stranger)

    [answer] = env.screen.texts(dm.id)
    assert "Bluefin press release" in answer
    assert "Bluefin M&A" not in answer
    assert env.rest_members.fetches == [(env.guild.id, stranger.id)]  # Discord: Unknown Member


@pytest.mark.asyncio
async def test_a_server_refusing_member_lookups_is_skipped_with_one_warning(
    make_discord, remote_model_app, caplog: pytest.LogCaptureFixture
) -> None:
    env = await make_discord(remote_model_app)
    role = backend.make_role("board", env.guild)
    await dpytest.add_role(env.alice, role)
    _index(remote_model_app, frozenset({f"discord:role:{role.id}"}), press=True)
    env.rest_members.uncache(env.alice)
    env.rest_members.refused.add(env.guild.id)

    dm = await env.alice.create_dm()
    with caplog.at_level(logging.WARNING, logger="bot.discord.context"):
        await say(QUESTION, channel=dm, member=env.alice)
        await say(QUESTION, channel=dm, member=env.alice)

    answers = env.screen.texts(dm.id)
    assert len(answers) == 2
    assert all("Bluefin press release" in a and "Bluefin M&A" not in a for a in answers)
    warnings = [r for r in caplog.records if r.name == "bot.discord.context"]
    assert len(warnings) == 1
    assert str(env.guild.id) in warnings[0].getMessage()
