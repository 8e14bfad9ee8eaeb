"""/link: a Discord user asks to read as their work account; an admin approves.

Discord gives bots no email address, so nothing here is taken on the asker's word: ``/link``
only files a request (``IdentityMap.request_link``). It grants nothing until an admin runs
``/link-approve`` (or ``archivist identities approve``), which turns it into an admin link.
Every reply is ephemeral: who asked to be whom is nobody else's business.
"""

from __future__ import annotations

import asyncio
import re

import discord
from discord import app_commands

from bot.discord.render import no_mentions, split_message
from bot.discord.sync import is_admin

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
NOT_ADMIN = "Sorry, only admins can answer link requests."
_USER = re.compile(r"^(?:discord:user:|<@!?)?(\d{1,20})>?$")


def _chat(user: discord.abc.User) -> str:
    return f"discord:user:{user.id}"


def _is_admin(interaction: discord.Interaction) -> bool:
    core = interaction.client.core  # type: ignore[attr-defined]
    permissions = interaction.permissions if interaction.guild_id else None
    return is_admin(core.settings.discord, interaction.user, permissions)


def _identities(interaction: discord.Interaction):  # noqa: ANN202 - core's IdentityMap
    return interaction.client.core.identities  # type: ignore[attr-defined]


async def _admin_deferred(interaction: discord.Interaction) -> bool:
    """Admins get a private "thinking…" to fill; anyone else is told no, and False comes back."""
    if not _is_admin(interaction):
        await interaction.response.send_message(NOT_ADMIN, ephemeral=True, allowed_mentions=no_mentions())
        return False
    await interaction.response.defer(ephemeral=True, thinking=True)
    return True


async def _private(interaction: discord.Interaction, text: str) -> None:
    for part in split_message(text):
        await interaction.followup.send(part, ephemeral=True, allowed_mentions=no_mentions())


@app_commands.command(
    name="link", description="Ask an admin to let you read what your work account may read."
)
@app_commands.describe(email="Your work email address (as in Google Drive or Confluence)")
async def link(interaction: discord.Interaction, email: str) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)  # before any Redis I/O
    principal = await asyncio.to_thread(_identities(interaction).request_link, _chat(interaction.user), email)
    await _private(
        interaction,
        f"Asked the admins to link you to `{principal}`. Until one approves, I answer you from what "
        "you can read here; nothing changes on your word alone.",
    )


async def _request_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    if not _is_admin(interaction):
        return []
    requests = await asyncio.to_thread(_identities(interaction).link_requests)
    choices = []
    for request in requests:
        label = f"{request.chat} → {request.principal}"
        if current.lower() in label.lower():
            choices.append(app_commands.Choice(name=label[:100], value=request.chat))
    return choices[:MAX_CHOICES]


def _requester(text: str) -> str:
    match = _USER.match(text.strip())
    return f"discord:user:{match[1]}" if match else text.strip()


@app_commands.command(name="link-requests", description="Admins: link requests waiting for an answer.")
async def link_requests(interaction: discord.Interaction) -> None:
    if not await _admin_deferred(interaction):
        return
    requests = await asyncio.to_thread(_identities(interaction).link_requests)
    lines = [
        f"• <@{r.chat.rsplit(':', 1)[1]}> (`{r.chat}`) asks to read as `{r.principal}`" for r in requests
    ]
    await _private(
        interaction, "\n".join(["**Link requests**", *lines]) if lines else "No link requests wait."
    )


@app_commands.command(name="link-approve", description="Admins: approve a user's link request.")
@app_commands.describe(request="The requester (pick from the list, or a user id or mention)")
@app_commands.autocomplete(request=_request_choices)
async def link_approve(interaction: discord.Interaction, request: str) -> None:
    if not await _admin_deferred(interaction):
        return
    chat = _requester(request)
    principal = await asyncio.to_thread(
        _identities(interaction).approve_link, chat, by=_chat(interaction.user)
    )
    text = (
        f"`{chat}` now reads as `{principal}` in DMs."
        if principal
        else f"No link request waits from `{chat}`."
    )
    await _private(interaction, text)


@app_commands.command(name="link-decline", description="Admins: decline a user's link request.")
@app_commands.describe(request="The requester (pick from the list, or a user id or mention)")
@app_commands.autocomplete(request=_request_choices)
async def link_decline(interaction: discord.Interaction, request: str) -> None:
    if not await _admin_deferred(interaction):
        return
    chat = _requester(request)
    declined = await asyncio.to_thread(_identities(interaction).decline_link, chat)
    await _private(
        interaction, f"Declined `{chat}`'s request." if declined else f"No link request waits from `{chat}`."
    )


COMMANDS = (link, link_requests, link_approve, link_decline)
