"""/link: a Discord user asks to read as their work account; only an admin's approval grants it."""

from __future__ import annotations

import discord
import pytest

from tests.bot.discord.harness import slash

ADMIN = discord.Permissions(manage_guild=True)


def _said(env) -> list[str]:  # noqa: ANN001
    shown = [m for m in env.screen.visible() if not m.thinking]
    assert all(m.ephemeral for m in shown)  # who asked to be whom is nobody else's business
    return [m.content for m in shown]


async def _as_admin(env, command: str, **options: str) -> None:  # noqa: ANN001
    """Alice, who may manage the server, runs an admin command."""
    await slash(
        env.bot, env.screen, command, channel=env.channel, member=env.alice, permissions=ADMIN, **options
    )


@pytest.mark.asyncio
async def test_a_request_grants_nothing_until_an_admin_approves(discord_env) -> None:
    env, identities = discord_env, discord_env.bot.core.identities
    bob = f"discord:user:{env.bob.id}"

    await slash(env.bot, env.screen, "link", channel=env.channel, member=env.bob, email="Bob@Acme.example")
    assert "Asked the admins" in _said(env)[-1]
    assert identities.principals_of(bob) == frozenset()  # the asker's word alone changes nothing

    await slash(env.bot, env.screen, "link-approve", channel=env.channel, member=env.bob, request=bob)
    assert "only admins" in _said(env)[-1]  # he cannot approve himself
    assert identities.principals_of(bob) == frozenset()

    await _as_admin(env, "link-requests")
    assert "email:bob@acme.example" in _said(env)[-1]

    await _as_admin(env, "link-approve", request=f"<@{env.bob.id}>")
    assert "now reads as `email:bob@acme.example`" in _said(env)[-1]
    assert "google:user:bob@acme.example" in identities.principals_of(bob)
    [linked], _ = identities.show(bob)
    assert linked.by == f"discord:user:{env.alice.id}"  # who approved it is on record
    assert identities.link_requests() == []


@pytest.mark.asyncio
async def test_a_declined_or_bad_request_links_nothing(discord_env) -> None:
    env, identities = discord_env, discord_env.bot.core.identities
    bob = f"discord:user:{env.bob.id}"

    await slash(env.bot, env.screen, "link", channel=env.channel, member=env.bob, email="slack:channel:C1")
    assert "chat principal" in _said(env)[-1]  # told why, in private
    assert identities.link_requests() == []

    await slash(env.bot, env.screen, "link", channel=env.channel, member=env.bob, email="bob@acme.example")
    await _as_admin(env, "link-decline", request=bob)
    assert "Declined" in _said(env)[-1]
    await _as_admin(env, "link-approve", request=bob)
    assert "No link request waits" in _said(env)[-1]
    assert identities.principals_of(bob) == frozenset()
