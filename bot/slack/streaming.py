"""An answer appearing as it is written: a placeholder at once, then throttled edits.

Slack rate-limits ``chat.update`` (Tier 3, about 50 a minute per workspace), so
the growing text is pushed at most once per ``interval_s``; the final edit puts
the rendered blocks in place, and further parts of a long answer follow in the
same thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.render import PLACEHOLDER, SlackMessage, preview

# About one edit a second, as Slack's guidance for streamed edits suggests.
UPDATE_INTERVAL_S = 1.0


class StreamingReply:
    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        *,
        interval_s: float = UPDATE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self._interval_s = interval_s
        self._clock = clock
        self.ts: str | None = None  # the placeholder's timestamp, once posted
        self._text = ""
        self._shown = ""
        self._last_push = 0.0

    async def start(self) -> None:
        response = await self._client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=PLACEHOLDER, unfurl_links=False
        )
        self.channel = str(response["channel"])  # a DM posted to a user id lands in a D… channel
        self.ts = str(response["ts"])
        self._last_push = self._clock()

    async def add(self, piece: str) -> None:
        self._text += piece
        if self.ts and self._clock() - self._last_push >= self._interval_s:
            await self._push()

    async def _push(self) -> None:
        shown = preview(self._text)
        if shown != self._shown:
            await self._client.chat_update(channel=self.channel, ts=self.ts, text=shown)
            self._shown = shown
        self._last_push = self._clock()

    async def finish(self, messages: list[SlackMessage]) -> None:
        first, *rest = messages
        if self.ts:
            await self._client.chat_update(channel=self.channel, ts=self.ts, **first.as_kwargs())
        else:
            await self._post(first)
        for message in rest:
            await self._post(message)

    async def fail(self, message: SlackMessage) -> None:
        """Replace the placeholder (or post, if there is none yet) with a failure notice."""
        if self.ts:
            await self._client.chat_update(channel=self.channel, ts=self.ts, **message.as_kwargs())
        else:
            await self._post(message)

    async def _post(self, message: SlackMessage) -> None:
        await self._client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, unfurl_links=False, **message.as_kwargs()
        )
