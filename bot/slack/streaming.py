"""An answer appearing as it is written, within Slack's rate limits.

Two ways, chosen per workspace by :class:`bot.slack.answering.Answerer`:

* :class:`StreamedReply` uses Slack's streaming methods (``chat.startStream``,
  ``chat.appendStream``, ``chat.stopStream``; Tier 4) where the workspace offers
  them and the answer goes into a thread: the words arrive as appended text, the
  sources and buttons as blocks when the stream stops.
* :class:`StreamingReply` posts a placeholder and edits it with ``chat.update``
  (Tier 3, about 50 a minute per workspace): elsewhere, or when streaming is refused.

Both draw every call from the workspace's shared :class:`bot.slack.pacing.RateBudget`:
progress is skipped when the budget is low; the final answer waits for its turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.pacing import POST, STREAM, UPDATE, RateBudget, post_key, stream_key, update_key
from bot.slack.render import (
    PLACEHOLDER,
    SlackMessage,
    answer_messages,
    answer_tail,
    pack,
    preview,
)
from bot.slack.safety import neutralize
from core.answering.answers import Answer

# About one edit a second, as Slack's guidance for streamed edits suggests.
UPDATE_INTERVAL_S = 1.0
# A streamed message's text stays well under the ~12,000 characters Slack accepts in one
# message; a longer answer is finished as ordinary messages instead.
STREAM_TEXT_CHARS = 10_000


class StreamingReply:
    """A placeholder, edited as the answer grows, then replaced by the rendered answer."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        *,
        team: str = "-",
        budget: RateBudget | None = None,
        interval_s: float = UPDATE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.team = team
        self._budget = budget or RateBudget(clock)
        self._interval_s = interval_s
        self._clock = clock
        self.ts: str | None = None  # the placeholder's timestamp, once posted
        self._text = ""
        self._shown = ""
        self._last_push = 0.0
        self._owed: tuple[str, ...] | None = None  # the budget a final call is owed from

    async def start(self) -> None:
        await self._budget.take(post_key(self.team, self.channel), POST)
        response = await self._client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=PLACEHOLDER, unfurl_links=False
        )
        self.channel = str(response["channel"])  # a DM posted to a user id lands in a D… channel
        self.ts = str(response["ts"])
        self._last_push = self._clock()
        self._owe(update_key(self.team))  # the final edit

    async def add(self, piece: str) -> None:
        self._text += piece
        if (
            self.ts
            and self._clock() - self._last_push >= self._interval_s
            and self._budget.optional(update_key(self.team), UPDATE)
        ):
            await self._push()

    async def _push(self) -> None:
        shown = preview(self._text)
        if shown != self._shown:
            await self._client.chat_update(channel=self.channel, ts=str(self.ts), text=shown)
            self._shown = shown
        self._last_push = self._clock()

    async def finish(self, answer: Answer) -> None:
        await self._replace(answer_messages(answer))

    async def fail(self, message: SlackMessage) -> None:
        """Replace the placeholder (or post, if there is none yet) with a failure notice."""
        await self._replace([message])

    async def _replace(self, messages: list[SlackMessage]) -> None:
        first, *rest = messages
        if self.ts:
            self._release()
            await self._budget.take(update_key(self.team), UPDATE)
            await self._client.chat_update(channel=self.channel, ts=str(self.ts), **first.as_kwargs())
        else:
            await self._post(first)
        for message in rest:
            await self._post(message)

    def _owe(self, key: tuple[str, ...]) -> None:
        """This answer will need one call from ``key``'s budget: progress must leave it one."""
        self._budget.owe(key, 1)
        self._owed = key

    def _release(self) -> None:
        if self._owed:
            self._budget.owe(self._owed, -1)
            self._owed = None

    async def _post(self, message: SlackMessage) -> None:
        await self._budget.take(post_key(self.team, self.channel), POST)
        await self._client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, unfurl_links=False, **message.as_kwargs()
        )


class StreamedReply(StreamingReply):
    """Slack's own streaming: appended text, then sources and buttons when it stops."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        user: str,
        team: str,
        budget: RateBudget,
        interval_s: float = UPDATE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            client, channel, thread_ts, team=team, budget=budget, interval_s=interval_s, clock=clock
        )
        self._user = user
        self._sent = ""  # text appended so far
        self._stopped = False

    async def start(self) -> None:
        """Raises ``SlackApiError`` when the workspace refuses streaming (the caller falls back)."""
        await self._budget.take(stream_key(self.team), STREAM)
        response = await self._client.chat_startStream(
            channel=self.channel,
            thread_ts=str(self.thread_ts),
            recipient_user_id=self._user or None,
            recipient_team_id=self.team if self.team != "-" else None,
        )
        self.channel = str(response["channel"])
        self.ts = str(response["ts"])
        self._last_push = self._clock()
        self._owe(stream_key(self.team))  # chat.stopStream

    async def add(self, piece: str) -> None:
        self._text += piece
        if (
            self.ts
            and self._clock() - self._last_push >= self._interval_s
            and len(self._text) <= STREAM_TEXT_CHARS
            and self._budget.optional(stream_key(self.team), STREAM)
        ):
            await self._append()

    async def _append(self) -> None:
        delta = self._text[len(self._sent) :]
        if delta:
            await self._client.chat_appendStream(
                channel=self.channel, ts=str(self.ts), markdown_text=neutralize(delta)
            )
            self._sent += delta
        self._last_push = self._clock()

    async def _stop(self, markdown_text: str | None, blocks: list[dict[str, object]] | None) -> None:
        self._release()
        await self._budget.take(stream_key(self.team), STREAM)
        await self._client.chat_stopStream(
            channel=self.channel, ts=str(self.ts), markdown_text=markdown_text, blocks=blocks
        )
        self._stopped = True

    async def finish(self, answer: Answer) -> None:
        if answer.text.strip() == self._text.strip() and len(self._text) <= STREAM_TEXT_CHARS:
            # The words are all there: the rest of the text, then sources and buttons under them.
            first, *rest = pack(answer_tail(answer))
            delta = self._text[len(self._sent) :]
            await self._stop(neutralize(delta) if delta else None, first.blocks)
            for message in rest:
                await self._post(message)
            return
        # The final answer differs from what streamed (too long, or rewritten when checked):
        # stop the stream and put the rendered answer in its place.
        await self._stop(None, None)
        first, *rest = answer_messages(answer)
        await self._budget.take(update_key(self.team), UPDATE)
        await self._client.chat_update(channel=self.channel, ts=str(self.ts), **first.as_kwargs())
        for message in rest:
            await self._post(message)

    async def fail(self, message: SlackMessage) -> None:
        if self.ts and not self._stopped:
            await self._stop(f"\n\n{message.text}", None)
        else:
            await self._post(message)
