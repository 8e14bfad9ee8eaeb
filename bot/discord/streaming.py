"""An answer that grows in place: throttled edits while tokens arrive, one final edit.

The first piece of text is sent at once; after that the messages are edited at
most once per ``EDIT_INTERVAL_S``. Text past 2,000 characters flows into extra
messages. ``finish`` shows the final, rendered answer (which may differ from the
streamed tokens: citations checked, sources added), deleting messages it no longer
needs, and puts the feedback buttons on the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import discord

from bot.discord.render import no_mentions, split_message

log = logging.getLogger(__name__)

# Discord rate-limits message edits (about 5 per 5 s per channel); one a second keeps
# streaming smooth without ever hitting the limit, as llmcord does.
EDIT_INTERVAL_S = 1.0
CURSOR = " ▌"


class Sent(Protocol):
    """A message the bot posted: ``discord.Message`` or a followup ``WebhookMessage``."""

    id: int

    async def edit(self, **fields: object) -> object: ...

    async def delete(self) -> None: ...


class Outbox(Protocol):
    """Where an answer goes: a channel, a thread, a reply, an interaction's followups."""

    async def send(self, text: str, *, view: discord.ui.View | None = None) -> Sent: ...

    def expired(self) -> bool:
        """True when messages already sent can no longer be edited (a spent interaction)."""
        ...


class StreamedReply:
    def __init__(
        self,
        outbox: Outbox,
        *,
        interval_s: float = EDIT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._interval_s = interval_s
        self._clock = clock
        self._last_shown = float("-inf")
        self.messages: list[Sent] = []
        self._shown: list[str] = []

    async def update(self, text: str) -> None:
        """The answer so far; shown now if the last edit is old enough, else later."""
        now = self._clock()
        if self.messages and now - self._last_shown < self._interval_s:
            return
        parts = split_message(text)
        if not parts:
            return
        if len(parts[-1]) + len(CURSOR) <= 2000:
            parts[-1] += CURSOR
        await self._show(parts, None)
        self._last_shown = now

    async def finish(self, parts: Sequence[str], view: discord.ui.View | None) -> list[Sent]:
        """Show the final answer; the view goes on the last message only."""
        await self._show(list(parts), view)
        return self.messages

    async def _show(self, parts: list[str], view: discord.ui.View | None) -> None:
        for index, part in enumerate(parts):
            last_view = view if index == len(parts) - 1 else None
            if index >= len(self.messages):
                self.messages.append(await self._outbox.send(part, view=last_view))
                self._shown.append(part)
            elif self._shown[index] != part or last_view is not None:
                await self._edit(index, part, last_view)
        for extra in self.messages[len(parts) :]:
            await extra.delete()
        del self.messages[len(parts) :]
        del self._shown[len(parts) :]

    async def _edit(self, index: int, part: str, view: discord.ui.View | None) -> None:
        fields: dict[str, object] = {"content": part, "allowed_mentions": no_mentions()}
        if view is not None:
            fields["view"] = view
        try:
            await self.messages[index].edit(**fields)
        except discord.HTTPException:
            if not self._outbox.expired():
                raise
            # Past the interaction window the followup can't be edited: post it anew.
            log.info("interaction expired while answering; posting the rest as new messages")
            self.messages[index] = await self._outbox.send(part, view=view)
        self._shown[index] = part
