"""Where answers are posted: a channel (optionally as a reply) or an interaction's followups."""

from __future__ import annotations

import datetime
import logging

import discord

from bot.discord.render import no_mentions

log = logging.getLogger(__name__)

# Discord's JSON error codes for a reply the bot may not make (Opcodes and Status Codes):
# 160002 "Cannot reply without permission to read message history", 50013 Missing Permissions.
CANNOT_REPLY = {160002, 50013}
_told_no_history: set[int] = set()  # channels already named in the log


def _missing_history(channel: discord.abc.Messageable) -> None:
    """Say once per channel that replies need Read Message History, and how to grant it."""
    channel_id = getattr(channel, "id", 0)
    if channel_id in _told_no_history:
        return
    _told_no_history.add(channel_id)
    log.warning(
        "cannot reply to messages in #%s (%s): the bot lacks the Read Message History permission there, "
        "so answers are posted without the reply link. Grant it: Server Settings → Roles (or the channel's "
        "Permissions) → the bot's role → Read Message History",
        getattr(channel, "name", channel_id),
        channel_id,
    )


# Discord invalidates an interaction token 15 minutes after the command; stop using
# it a little earlier so a followup sent at 14:59 does not fail in flight.
INTERACTION_MARGIN = datetime.timedelta(seconds=30)


def _view_kwargs(view: discord.ui.View | None) -> dict[str, object]:
    return {"view": view} if view is not None else {}


class ChannelOutbox:
    """Messages in a channel, thread or DM; the first one replies to ``reply_to``."""

    def __init__(self, channel: discord.abc.Messageable, reply_to: discord.Message | None = None) -> None:
        self.channel = channel
        self._reply_to = reply_to

    async def send(self, text: str, *, view: discord.ui.View | None = None) -> discord.Message:
        reply_to, self._reply_to = self._reply_to, None
        if reply_to is not None:
            try:
                return await reply_to.reply(
                    text,
                    allowed_mentions=no_mentions(),
                    mention_author=False,
                    suppress_embeds=True,
                    **_view_kwargs(view),
                )
            except discord.Forbidden as exc:
                if exc.code not in CANNOT_REPLY:
                    raise
                _missing_history(self.channel)  # then post it as a plain message
        return await self.channel.send(
            text, allowed_mentions=no_mentions(), suppress_embeds=True, **_view_kwargs(view)
        )

    def expired(self) -> bool:
        return False


class InteractionOutbox:
    """Followups of a deferred interaction; once the token has expired, a plain channel
    message, or for an ``ephemeral`` (private) answer a DM to the person who asked."""

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool = False) -> None:
        self._interaction = interaction
        self._ephemeral = ephemeral

    def expired(self) -> bool:
        return discord.utils.utcnow() >= self._interaction.expires_at - INTERACTION_MARGIN

    async def send(self, text: str, *, view: discord.ui.View | None = None) -> discord.abc.Snowflake:
        if not self.expired():
            return await self._interaction.followup.send(
                text,
                allowed_mentions=no_mentions(),
                suppress_embeds=True,
                wait=True,
                ephemeral=self._ephemeral,
                **_view_kwargs(view),
            )
        if self._ephemeral:  # never post a private answer where others can read it
            return await self._interaction.user.send(
                text, allowed_mentions=no_mentions(), suppress_embeds=True, **_view_kwargs(view)
            )
        channel = self._interaction.channel
        if channel is None or not isinstance(channel, discord.abc.Messageable):
            msg = "the interaction expired and its channel is unknown"
            raise RuntimeError(msg)
        return await channel.send(
            text, allowed_mentions=no_mentions(), suppress_embeds=True, **_view_kwargs(view)
        )
