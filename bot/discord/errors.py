"""The Discord adapter's one error boundary: any failure becomes one honest sentence.

Event handlers, slash commands and buttons all end here; nothing fails silently.
Errors a person can act on (``ArchivistError``) are worded by core's one table
(``core.errors.user_message``); anything else is logged with its traceback and
told as an internal error.
"""

from __future__ import annotations

import logging

import discord

from bot.discord.outbox import ChannelOutbox
from bot.discord.render import no_mentions
from core.errors import ArchivistError, user_message

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """A short message for the person who asked; log what they cannot see."""
    if isinstance(exc, ArchivistError):
        return user_message(exc)
    if isinstance(exc, discord.Forbidden):
        log.warning("Discord refused an action: %s", exc)
        return "Discord didn't let me do that here; I may be missing a permission in this channel."
    log.error("unexpected error in the Discord adapter", exc_info=exc)
    return "Something went wrong on my side and I couldn't finish. The error has been logged."


async def tell_channel(
    channel: discord.abc.Messageable, exc: BaseException, reply_to: discord.Message | None = None
) -> None:
    await ChannelOutbox(channel, reply_to=reply_to).send(f"⚠️ {describe(exc)}")


async def tell_interaction(interaction: discord.Interaction, exc: BaseException) -> None:
    """Answer the interaction with the error, ephemeral, however far it had got.

    After a public defer the first followup would fill the public "thinking…" message
    (and take its visibility), so that message is deleted first and the error follows
    as a message only the person who asked can see.
    """
    text = f"⚠️ {describe(exc)}"
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=no_mentions())
    elif not interaction.is_expired():
        await _drop_public_placeholder(interaction)
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=no_mentions())
    elif isinstance(interaction.channel, discord.abc.Messageable):
        await interaction.channel.send(text, allowed_mentions=no_mentions())


async def _drop_public_placeholder(interaction: discord.Interaction) -> None:
    """Delete the original response if it is still a public "thinking…" message."""
    if interaction.response.type is not discord.InteractionResponseType.deferred_channel_message:
        return
    try:
        original = await interaction.original_response()
        if original.flags.loading and not original.flags.ephemeral:
            await interaction.delete_original_response()
    except discord.HTTPException as error:  # gone already, or Discord refused: the error still follows
        log.info("could not clear the deferred response before an error: %s", error)
