"""Slack's AI-app surface ("Agents & AI Apps"): Archivist in the split view beside any channel.

Built on bolt-python's ``AsyncAssistant``. When a person opens a thread with Archivist
(``assistant_thread_started``) they get suggested prompts: ``[slack] suggested_prompts``,
or one per configured source. Each question in the thread shows a status
(``assistant.threads.setStatus``: "Searching the handbook…") while the answer is made,
then the answer streams into the thread with its sources and feedback buttons; the
thread's title is the first question.

Access: the channel the person was viewing (the thread context's ``channel_id``, kept
in Redis as it changes) scopes the question as a question in that channel would be:
only what everyone there may read. With no channel in view it is a DM: what the asker
may read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAssistant
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from slack_bolt.context.get_thread_context.async_get_thread_context import AsyncGetThreadContext
from slack_bolt.context.save_thread_context.async_save_thread_context import AsyncSaveThreadContext
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_status.async_set_status import AsyncSetStatus
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocking
from bot.slack.answering import Answerer
from bot.slack.claims import Once
from bot.slack.failures import log_failure
from core.answering.answers import Question
from core.errors import ArchivistError

if TYPE_CHECKING:
    from bot.slack.ask import AskHandlers
    from core.api import CoreAPI

log = logging.getLogger("archivist.slack")

GREETING = "Hi! Ask me anything about your team's documents; I'll answer with sources."
MAX_PROMPTS = 4  # Slack shows up to four suggested prompts
TITLE_CHARS = 80


def default_prompts(sources: list[str]) -> list[dict[str, str]]:
    """One prompt per configured source, then a general one."""
    prompts = [
        {"title": f"What is in {name}?", "message": f"What kinds of things does {name} cover?"}
        for name in sources[: MAX_PROMPTS - 1]
    ]
    prompts.append({"title": "What can you help with?", "message": "What can I ask you about?"})
    return prompts


def status_text(question: Question) -> str:
    """What Archivist is doing, named by the sources it may read here."""
    if question.sources is None:
        return "Searching the documents…"
    if not question.sources:
        return "Looking for something I may share here…"
    return f"Searching {', '.join(sorted(question.sources))}…"


class RedisThreadContexts(AsyncAssistantThreadContextStore):
    """Which channel each assistant thread is beside, in Redis (shared by every process)."""

    def __init__(self, core: CoreAPI, ttl_s: int) -> None:
        self._core = core
        self._ttl_s = ttl_s

    @staticmethod
    def _key(channel_id: str, thread_ts: str) -> str:
        return f"archivist:slack:assistant:context:{channel_id}:{thread_ts}"

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        payload = json.dumps(context)
        await blocking.quick(
            lambda: self._core.redis().set(self._key(channel_id, thread_ts), payload, ex=self._ttl_s)
        )

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        try:
            raw = await blocking.quick(lambda: self._core.redis().get(self._key(channel_id, thread_ts)))
        except ArchivistError as exc:  # no context: the question is scoped as a DM, the narrower case
            log_failure(exc, "reading the assistant thread's context")
            return None
        if not raw:
            return None
        context = json.loads(raw)
        return (
            AssistantThreadContext(context)
            if isinstance(context, dict) and context.get("channel_id")
            else None
        )


class AssistantHandlers:
    def __init__(self, core: CoreAPI, answerer: Answerer, ask: AskHandlers, titled: Once) -> None:
        self._core = core
        self._answerer = answerer
        self._ask = ask
        self._titled = titled  # threads whose title is set (the first question names it)
        self._contexts = RedisThreadContexts(core, core.settings.redis.history_ttl_s)

    def build(self) -> AsyncAssistant:
        assistant = AsyncAssistant(
            thread_context_store=self._contexts, logger=logging.getLogger("archivist.slack.bolt")
        )
        assistant.thread_started(self.on_started)
        assistant.user_message(self.on_message)
        return assistant

    def prompts(self) -> list[dict[str, str]]:
        configured = self._core.settings.slack.suggested_prompts
        if configured:
            return [{"title": p[:75], "message": p} for p in configured[:MAX_PROMPTS]]
        return default_prompts(self._core.source_names())

    async def on_started(
        self,
        payload: dict[str, Any],
        say: AsyncSay,
        set_suggested_prompts: AsyncSetSuggestedPrompts,
        save_thread_context: AsyncSaveThreadContext,
    ) -> None:
        context = (payload.get("assistant_thread") or {}).get("context") or {}
        try:
            if context.get("channel_id"):
                await save_thread_context(context)
            await say(GREETING)
            await set_suggested_prompts(prompts=self.prompts(), title="Try asking")
        except Exception as exc:  # noqa: BLE001 - the boundary for a new assistant thread
            log_failure(exc, "opening an assistant thread")

    async def on_message(
        self,
        payload: dict[str, Any],
        body: dict[str, Any],
        context: Any,
        client: AsyncWebClient,
        set_status: AsyncSetStatus,
        set_title: AsyncSetTitle,
        get_thread_context: AsyncGetThreadContext,
    ) -> None:
        channel, thread_ts = payload["channel"], payload["thread_ts"]
        user, text = payload.get("user", ""), (payload.get("text") or "").strip()
        team = body.get("team_id") or context.team_id or "-"
        if not text:
            return
        beside = await get_thread_context()
        viewing = beside.channel_id if beside is not None else ""
        # In view of a channel: what everyone there may read. Otherwise, as a DM.
        scope_channel = viewing if viewing and not viewing.startswith("D") else channel
        question = await self._ask.scoped_question(
            client, text, team=team, channel=scope_channel, user=user, thread=thread_ts
        )
        # The conversation is this assistant thread, whichever channel is in view.
        if question.conversation is not None:
            question = replace(
                question, conversation=replace(question.conversation, channel=channel, thread=thread_ts)
            )
        try:
            if await self._titled.claim(f"{team}:{channel}:{thread_ts}"):
                await set_title(" ".join(text.split())[:TITLE_CHARS])
            await set_status(status_text(question))
        except Exception as exc:  # noqa: BLE001 - cosmetics: the answer matters more
            log_failure(exc, "setting the assistant thread's title and status")
        await self._answerer.into_thread(
            client, question, team=team, channel=channel, thread_ts=thread_ts, user=user, follow=False
        )
