"""Where answers are posted: a channel (optionally as a reply) or an interaction's followups."""

from __future__ import annotations

import datetime

import discord

from bot.discord.render import no_mentions

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
            return await reply_to.reply(
                text,
                allowed_mentions=no_mentions(),
                mention_author=False,
                suppress_embeds=True,
                **_view_kwargs(view),
            )
        return await self.channel.send(
            text, allowed_mentions=no_mentions(), suppress_embeds=True, **_view_kwargs(view)
        )

    def expired(self) -> bool:
        return False


class InteractionOutbox:
    """Followups of a deferred interaction; a plain channel message once the token has expired."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self._interaction = interaction

    def expired(self) -> bool:
        return discord.utils.utcnow() >= self._interaction.expires_at - INTERACTION_MARGIN

    async def send(self, text: str, *, view: discord.ui.View | None = None) -> discord.abc.Snowflake:
        if not self.expired():
            return await self._interaction.followup.send(
                text, allowed_mentions=no_mentions(), suppress_embeds=True, wait=True, **_view_kwargs(view)
            )
        channel = self._interaction.channel
        if channel is None or not isinstance(channel, discord.abc.Messageable):
            msg = "the interaction expired and its channel is unknown"
            raise RuntimeError(msg)
        return await channel.send(
            text, allowed_mentions=no_mentions(), suppress_embeds=True, **_view_kwargs(view)
        )
