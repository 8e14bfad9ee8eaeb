"""One question answered into a Slack conversation, from placeholder to feedback buttons.

The stream of answer events from the core becomes a placeholder that fills in,
then the rendered answer. The answer is recorded for feedback before it is
shown, so its buttons work the moment they appear. Any failure replaces the
placeholder with a short, honest message: never silence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocking
from bot.slack.claims import FollowedThreads
from bot.slack.failures import log_failure, user_message
from bot.slack.pacing import RateBudget
from bot.slack.render import SlackMessage, notice
from bot.slack.streaming import UPDATE_INTERVAL_S, StreamedReply, StreamingReply
from core.answering.answers import Answer, Question
from core.errors import ArchivistError

if TYPE_CHECKING:
    from core.api import CoreAPI

PLATFORM = "slack"
# chat.startStream errors that say nothing about streaming being offered: about this conversation
# or the token. Any other refusal means the workspace lacks streaming, and edits are used instead.
_NOT_ABOUT_STREAMING = frozenset(
    {
        "ratelimited",
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "restricted_action",
        "invalid_auth",
        "token_revoked",
        "account_inactive",
    }
)
Notify = Callable[[SlackMessage], Awaitable[object]]
log = logging.getLogger("archivist.slack")


class Answerer:
    def __init__(
        self, core: CoreAPI, threads: FollowedThreads, *, interval_s: float = UPDATE_INTERVAL_S
    ) -> None:
        self._core = core
        self._threads = threads
        self._interval_s = interval_s
        self.budget = RateBudget()  # this process's share of each workspace's rate limits
        self._no_streaming: set[str] = set()  # workspaces that refused chat.startStream

    async def generate(
        self, question: Question, on_token: Callable[[str], Awaitable[object]] | None = None
    ) -> Answer:
        """The final answer; ``on_token`` is awaited with each piece as it arrives."""
        return await self._core.answer(question, on_token)

    async def record(self, answer: Answer, question: str, *, user: str, channel: str) -> None:
        """Keep the answer for 👍/👎; a feedback store that is down must not cost the answer."""
        try:
            await blocking.quick(
                self._core.record_answer,
                answer,
                question,
                platform=PLATFORM,
                user=user,
                channel=channel,
            )
        except ArchivistError as exc:
            log_failure(exc, "recording the answer for feedback")

    async def into_thread(
        self,
        client: AsyncWebClient,
        question: Question,
        *,
        team: str,
        channel: str,
        thread_ts: str | None,
        user: str,
        follow: bool,
        privately: Notify | None = None,
    ) -> None:
        """Answer in ``channel`` (in ``thread_ts`` if given), streaming. A failure is told in the
        conversation, or through ``privately`` when Archivist cannot post there."""
        reply = StreamingReply(
            client, channel, thread_ts, team=team, budget=self.budget, interval_s=self._interval_s
        )
        try:
            reply = await self._start(client, reply, user=user)
            answer = await self.generate(question, reply.add)
            await self.record(answer, question.text, user=user, channel=reply.channel)
            if follow and thread_ts:
                await self._threads.follow(team, reply.channel, thread_ts)
            await reply.finish(answer)
        except Exception as exc:  # noqa: BLE001 - the boundary: logged, then told to the asker
            log_failure(exc, f"answering in {channel}")
            await self._tell(reply, exc, privately)

    async def _start(self, client: AsyncWebClient, fallback: StreamingReply, *, user: str) -> StreamingReply:
        """Slack's streaming methods in a thread where the workspace has them, else a placeholder."""
        team, thread_ts = fallback.team, fallback.thread_ts
        if thread_ts and team not in self._no_streaming:
            streamed = StreamedReply(
                client,
                fallback.channel,
                thread_ts,
                user=user,
                team=team,
                budget=self.budget,
                interval_s=self._interval_s,
            )
            try:
                await streamed.start()
                return streamed
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else None
                if error in _NOT_ABOUT_STREAMING:
                    raise
                # Not offered here (older plans, GovSlack, missing feature): edits it is, from now on.
                self._no_streaming.add(team)
                log.info(
                    "workspace %s refused chat.startStream (%s); streaming with chat.update", team, error
                )
        await fallback.start()
        return fallback

    @staticmethod
    async def _tell(reply: StreamingReply, exc: BaseException, privately: Notify | None) -> None:
        message = notice(user_message(exc))
        try:
            await reply.fail(message)
            return
        except Exception as second:  # noqa: BLE001 - cannot post here: the private line, if any, is left
            log_failure(second, "reporting a failure in Slack")
        if privately is not None:
            try:
                await privately(message)
            except Exception as third:  # noqa: BLE001 - Slack itself is failing; the log is all that is left
                log_failure(third, "reporting a failure privately in Slack")
