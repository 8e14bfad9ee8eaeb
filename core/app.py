"""The composition root: the one place that turns Settings into live objects.

Everything is built lazily, so `archivist sources` never loads a model and
`archivist ask` never starts what it does not use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from core.answering.assistant import Assistant
from core.answering.feedback import FeedbackStore
from core.answering.history import ConversationHistory
from core.answering.router import Router
from core.errors import ServiceUnavailable, UnknownSourceError
from core.models.chat import ChatModel, build_chat_model
from core.models.embeddings import (
    LocalEmbeddings,
    OnnxEmbeddings,
    RemoteEmbeddings,
    build_embeddings,
    embedder_identity,
)
from core.models.lineup import ModelLineup
from core.models.registry import ModelRegistry
from core.redis_conn import connect
from core.retrieval.reranker import CrossEncoderReranker
from core.retrieval.store.base import VectorStore
from core.settings import Settings
from core.sync.chunking import ChunkingOptions
from core.sync.connector import Connector
from core.sync.registry import build_connector

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from core.sync.job_queue import SyncJobQueue
from core.sync.engine import SyncEngine
from core.sync.service import SyncService
from core.sync.status import SyncStatusStore
from core.sync.worker import Schedule, SyncWorker, inline_dispatch

log = logging.getLogger(__name__)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._unavailable: set[str] = set()  # what _optional has warned about: each reason once

    @cached_property
    def redis(self) -> redis.Redis:
        try:
            return connect(self.settings.redis.url, self.settings.data_dir)
        except (redis.RedisError, OSError) as exc:
            msg = f"cannot start or reach Redis: {exc}"
            raise ServiceUnavailable(msg) from exc

    @cached_property
    def embedder(self) -> LocalEmbeddings | OnnxEmbeddings | RemoteEmbeddings:
        return build_embeddings(self.settings.embeddings, self.settings.data_dir)

    @cached_property
    def weaviate(self) -> WeaviateClient:
        """One checked connection per process, closed when the process exits."""
        import atexit

        from core.retrieval.store.weaviate_connect import connect as connect_weaviate

        client = connect_weaviate(self.settings)
        atexit.register(client.close)
        return client

    @cached_property
    def store(self) -> VectorStore:
        return self.build_store(self.settings.data_dir / "lancedb", self.settings.store.table)

    def build_store(
        self, directory: Path, table: str, dimensions: int | None = None, embedder: str | None = None
    ) -> VectorStore:
        """A store of the configured backend; evaluation builds throwaway ones, possibly for another
        embedder (``dimensions`` and ``embedder`` then describe that one)."""
        if self.settings.store.backend == "weaviate":
            from core.retrieval.store.weaviate_store import WeaviateStore

            store = self.settings.store
            return WeaviateStore(
                self.weaviate,
                table,
                dimensions or self.embedder.dimensions,
                tenant=store.tenant or None,
                vectorizer=store.weaviate_vectorizer or None,
                fusion=store.fusion,
                embedder=embedder if embedder is not None else embedder_identity(self.settings.embeddings),
            )
        from datetime import timedelta

        from core.retrieval.store.lancedb_store import LanceDBStore

        return LanceDBStore(
            directory,
            dimensions or self.embedder.dimensions,
            table,
            embedder if embedder is not None else embedder_identity(self.settings.embeddings),
            keep_versions=timedelta(seconds=self.settings.store.keep_versions_s),
        )

    def chunking_options(self) -> ChunkingOptions:
        chunking = self.settings.chunking
        return ChunkingOptions(max_chars=chunking.max_chars, overlap_chars=chunking.overlap_chars)

    @cached_property
    def models(self) -> dict[str, ChatModel]:
        return {name: build_chat_model(name, entry) for name, entry in self.settings.models.items()}

    @cached_property
    def history(self) -> ConversationHistory:
        settings = self.settings.redis
        return ConversationHistory(
            self.redis, settings.history_turns, settings.history_max_tokens, settings.history_ttl_s
        )

    @cached_property
    def sync_status(self) -> SyncStatusStore:
        return SyncStatusStore(self.redis)

    @cached_property
    def assistant(self) -> Assistant:
        return Assistant(
            self.store,
            self.embedder,
            self.models,
            self._optional(lambda: self.history),
            self.settings.retrieval,
            self.settings.assistant,
            self.model_lineup,
            self.router,
            self.reranker,
        )

    @cached_property
    def reranker(self) -> CrossEncoderReranker | None:
        path = self.settings.retrieval.reranker_path
        return CrossEncoderReranker(Path(path)) if path else None

    @cached_property
    def model_lineup(self) -> ModelLineup:
        """Base and fine-tuned chat models; the promoted registry version is looked up per question."""
        return ModelLineup(
            self.models,
            self.settings.models,
            lambda: self._optional(lambda: self.redis),  # None: the config's models answer
            self.settings.assistant.promotion_check_s,
        )

    @cached_property
    def router(self) -> Router:
        return Router(self.settings.router, self.settings.assistant.default_mode, self.embedder)

    @cached_property
    def sync_engine(self) -> SyncEngine:
        return SyncEngine(
            self.store,
            self.embedder,
            self.chunking_options(),
            self._optional(lambda: self.sync_status),
            self.settings.embeddings.batch_size,
            forget=self._forget_in_memory,
        )

    def _forget_in_memory(self, source: str, document_ids: list[str]) -> None:
        """Deleted or re-granted documents leave conversation memory too."""
        history = self._optional(lambda: self.history)
        if history is not None:
            history.forget_documents(source, document_ids)

    @cached_property
    def sync_service(self) -> SyncService:
        return SyncService(
            list(self.settings.connectors),
            self.connector,
            self.sync_engine,
            self._optional(lambda: self.redis),
            self._optional(lambda: self.sync_status),
            lock_dir=self.settings.data_dir / "locks",
        )

    @cached_property
    def feedback(self) -> FeedbackStore:
        return FeedbackStore(self.redis)

    @cached_property
    def job_queue(self) -> SyncJobQueue:
        from core.sync.job_queue import SyncJobQueue

        try:
            connection = connect(self.settings.redis.url, self.settings.data_dir, decode=False)
        except (redis.RedisError, OSError) as exc:
            msg = f"cannot start or reach Redis for the job queue: {exc}"
            raise ServiceUnavailable(msg) from exc
        return SyncJobQueue(connection)

    def sync_worker(self) -> SyncWorker:
        """The scheduler of `archivist worker`: due syncs run inline or go on the job queue."""
        settings = self.settings.worker
        dispatch = self.job_queue.enqueue if settings.queue == "rq" else inline_dispatch(self.sync_service)
        schedule = Schedule({name: entry.interval_s for name, entry in self.settings.connectors.items()})
        refresh = self._group_refresher()
        return SyncWorker(
            self.sync_service, schedule, dispatch, tick_s=settings.tick_s, refresh_groups=refresh
        )

    def _group_refresher(self) -> Callable[[], int]:
        """Refreshes the identity map's group memberships from every source that can tell."""
        from core.answering.identities import GroupDirectory, IdentityMap

        directories = []  # built once and kept: they cache lookups
        for name in sorted(self.settings.connectors):
            try:
                connector = self.connector(name)
            except Exception as exc:  # noqa: BLE001 - its syncs will say what is wrong
                log.warning("%s: not asked about group memberships (%s)", name, exc)
                continue
            if isinstance(connector, GroupDirectory):
                directories.append(connector)
        identities = IdentityMap(lambda: self.redis)
        return lambda: identities.refresh_groups(directories)

    @cached_property
    def model_registry(self) -> ModelRegistry:
        return ModelRegistry(self.redis)

    def connector(self, name: str) -> Connector:
        if name not in self.settings.connectors:
            known = ", ".join(sorted(self.settings.connectors)) or "none configured"
            msg = f"unknown source {name!r} (configured: {known})"
            raise UnknownSourceError(msg)
        return build_connector(name, self.settings.connectors[name], self.settings.data_dir)

    def _optional(self, build):  # noqa: ANN001, ANN202 - tiny local helper
        """Memory, status and the model registry are conveniences: without Redis, answer and sync anyway.

        One warning per reason: memory, status and the registry all miss the same Redis.
        """
        try:
            return build()
        except ServiceUnavailable as exc:
            if str(exc) not in self._unavailable:
                self._unavailable.add(str(exc))
                log.warning(
                    "%s; going on without conversation memory, sync status and the model registry", exc
                )
            return None
