"""The narrow, typed surface the chat frontends use: Slack and Discord see this, not ``App``.

Everything a bot may ask of the core is here: stream an answer, forget a conversation,
record feedback, read the sources and their last syncs, run a sync with progress, and
(through ``identities``) learn who a chat user is in the sources or file a link request.
Keeping it small means a change inside the core (a new store, a new model lineup)
cannot break a frontend, and a frontend cannot reach into state it should not touch.

Blocking work (Redis, the store, syncs) is the caller's to move off its event loop,
except :meth:`CoreAPI.sync`, which runs the sync in a thread of its own and reports
progress back on the caller's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.answering.answers import Answer, Done, Question, Token
from core.answering.feedback import AnswerRecord
from core.answering.identities import IdentityMap
from core.sync.engine import Progress
from core.sync.service import SyncOutcome
from core.sync.status import SyncReport

if TYPE_CHECKING:
    import redis

    from core.app import App
    from core.settings import Settings

# Syncs take minutes; they get threads of their own so answers and acks never queue behind them.
_SYNC_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="archivist-sync")
PROGRESS_INTERVAL_S = 3.0

__all__ = ["CoreAPI", "Progress", "SourceInfo", "SyncOutcome", "SyncRun", "describe_progress"]

ProgressView = Callable[[Mapping[str, Progress | None]], Awaitable[object]]


def describe_progress(progress: Progress | None) -> str:
    """Where one source's sync stands, in words every frontend can show."""
    if progress is None:
        return "starting…"
    if progress.stage == "listing":
        return "listing documents…"
    if progress.total:
        return f"{progress.stage} {progress.done}/{progress.total} documents…"
    return f"{progress.stage} ({progress.done} documents so far)…"


@dataclass(frozen=True)
class SourceInfo:
    """One configured source as an admin sees it."""

    name: str
    kind: str
    description: str
    chunks: int


@dataclass(frozen=True)
class SyncRun:
    outcomes: list[SyncOutcome]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)


class CoreAPI:
    def __init__(self, app: App) -> None:
        self._app = app
        # Who each chat user is in the sources; a DM's question reads with those principals too.
        self.identities = IdentityMap(lambda: app.redis)
        # Sources syncing from this process now, with their latest progress (None: starting).
        self._running: dict[str, Progress | None] = {}

    @property
    def settings(self) -> Settings:
        return self._app.settings

    def redis(self) -> redis.Redis:
        """For a frontend's own small state (followed threads, deduplication); raises
        ``ServiceUnavailable`` when Redis is down."""
        return self._app.redis

    def warm_up(self) -> None:
        """Load the models now rather than on the first question."""
        self._app.assistant  # noqa: B018 - building it is the point

    # -- answering -----------------------------------------------------------

    def stream(self, question: Question) -> AsyncIterator[Token | Done]:
        return self._app.assistant.astream(self.identities.expand(question))

    async def answer(
        self, question: Question, on_token: Callable[[str], Awaitable[object]] | None = None
    ) -> Answer:
        """The final answer; ``on_token`` is awaited with each piece of text as it arrives."""
        answer: Answer | None = None
        async for event in self.stream(question):
            if isinstance(event, Token) and on_token is not None:
                await on_token(event.text)
            elif isinstance(event, Done):
                answer = event.answer
        if answer is None:
            msg = "the answer stream ended without an answer"
            raise RuntimeError(msg)
        return answer

    def forget(self, question: Question) -> None:
        self._app.assistant.forget(question)

    # -- feedback ------------------------------------------------------------

    def record_answer(self, answer: Answer, question: str, *, platform: str, user: str, channel: str) -> None:
        self._app.feedback.record_answer(answer, question, platform=platform, user=user, channel=channel)

    def vote(self, answer_id: str, user: str, value: int) -> None:
        self._app.feedback.vote(answer_id, user, value)

    def comment(self, answer_id: str, user: str, text: str) -> None:
        self._app.feedback.comment(answer_id, user, text)

    def answer_record(self, answer_id: str) -> AnswerRecord | None:
        return self._app.feedback.answer(answer_id)

    # -- sources and syncs ---------------------------------------------------

    def source_names(self) -> list[str]:
        return self._app.sync_service.names

    def resolve_sources(self, names: Sequence[str]) -> list[str]:
        """``["all"]`` or ``[]`` mean every source; an unknown name raises ``UnknownSourceError``."""
        return self._app.sync_service.resolve(names)

    def source_info(self, name: str) -> SourceInfo:
        connector = self._app.connector(name)
        return SourceInfo(name, connector.kind, connector.describe(), self._app.store.count(name))

    def open_sources(self, principals: frozenset[str]) -> list[str]:
        """Sources whose settings open them to ``principals`` (public, or granted one of them).
        Documents that carry their own grants may open more; this is what is open to all of it."""
        return [
            name
            for name, source in self._app.settings.connectors.items()
            if source.public or principals & set(source.principals)
        ]

    def last_report(self, name: str) -> SyncReport | None:
        return self._app.sync_service.last_report(name)

    def running_syncs(self) -> dict[str, Progress | None]:
        """Syncs this process runs now, with their latest progress."""
        return dict(self._running)

    async def sync(
        self,
        names: Sequence[str],
        *,
        full: bool = False,
        show: ProgressView | None = None,
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> SyncRun:
        """Sync ``names`` in a worker thread; every ``interval_s`` while it runs, ``show`` is awaited
        with the progress of each source, when it changed. One source failing does not stop the rest."""
        started = time.monotonic()
        names = list(names)
        for name in names:
            self._running[name] = None
        loop = asyncio.get_running_loop()

        def on_progress(progress: Progress) -> None:  # called in the sync thread
            loop.call_soon_threadsafe(self._running.__setitem__, progress.source, progress)

        service = self._app.sync_service
        work = loop.run_in_executor(
            _SYNC_THREADS, lambda: service.sync_many(names, full=full, progress=on_progress)
        )
        shown: dict[str, Progress | None] = {}
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=interval_s)
                now = {name: self._running.get(name) for name in names}
                if show is not None and not work.done() and now != shown:
                    await show(now)
                    shown = now
            return SyncRun(work.result(), time.monotonic() - started)
        finally:
            for name in names:
                self._running.pop(name, None)
