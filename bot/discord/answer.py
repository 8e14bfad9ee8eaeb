"""Answer one question into an outbox: stream, render, record for feedback, add buttons."""

from __future__ import annotations

import asyncio
import logging

from bot.discord.feedback import feedback_view
from bot.discord.render import render_answer, split_message
from bot.discord.streaming import Outbox, Sent, StreamedReply
from core.answering.answers import Answer, Done, Question, Token
from core.api import CoreAPI
from core.errors import ServiceUnavailable

log = logging.getLogger(__name__)


async def answer_question(
    core: CoreAPI,
    question: Question,
    outbox: Outbox,
    *,
    user: str,
    channel: str,
    reply: StreamedReply | None = None,
    preface: str = "",
) -> tuple[Answer, list[Sent]]:
    """Stream the answer to ``question`` into ``outbox``; return it with the messages posted.

    ``preface`` is a line shown above the answer (e.g. which message it answers).
    """
    reply = reply or StreamedReply(outbox)
    streamed = f"{preface}\n" if preface else ""
    answer: Answer | None = None
    async for event in core.stream(question):
        if isinstance(event, Token):
            streamed += event.text
            await reply.update(streamed)
        elif isinstance(event, Done):
            answer = event.answer
    if answer is None:
        msg = "the answer stream ended without an answer"
        raise RuntimeError(msg)
    view = None
    try:
        await asyncio.to_thread(
            core.record_answer, answer, question.text, platform="discord", user=user, channel=channel
        )
        view = feedback_view(answer.id)
    except ServiceUnavailable as exc:
        # The answer matters more than the buttons: post it without them.
        log.warning("answer %s posted without feedback buttons: %s", answer.id, exc)
    rendered = render_answer(answer)
    messages = await reply.finish(split_message(f"{preface}\n{rendered}" if preface else rendered), view)
    return answer, messages
