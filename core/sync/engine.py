"""The sync engine: bring the index in line with what a source holds now.

List what exists → re-read only new or changed documents → chunk → embed in
batches → replace their chunks → delete what vanished → record a report.
Unchanged documents cost no parsing and no embedding.

The stages overlap: while one batch is embedded (in a worker thread; the model's kernels
release the GIL), the next is read, parsed and chunked and the previous one written, so
a sync runs close to the embedder's own speed. At most two batches are in flight, and
batches are written in the order they were read.

A sync killed midway (a crash, a deploy, ``kill -9``) resumes without losing or
duplicating anything: each batch replaces its documents' chunks as one unit, so
for listed sources the index itself is the checkpoint (done documents show up
as unchanged), and polled sources save their cursor after every indexed batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from langchain_core.embeddings import Embeddings

from core.documents import Acl, Chunk, Document, DocumentRef, LoadFailure
from core.errors import SourceError
from core.models.embeddings import embed_in_batches
from core.retrieval.store.base import IndexedDocument, VectorStore
from core.sync.chunking import ChunkingOptions, chunk_document
from core.sync.connector import (
    Batch,
    CarriesFailuresInCursor,
    ConfirmsVanished,
    Connector,
    HasSourceAcl,
    ListsRefs,
    LoadsAll,
    PollsChanges,
)
from core.sync.status import SyncReport, SyncStatusStore, is_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    source: str
    done: int
    total: int | None
    stage: str  # "listing", "indexing", "pruning", "finished"


ProgressCallback = Callable[[Progress], None]
# Told which documents of a source were deleted or re-granted, so copies of their text
# elsewhere (conversation memory) go too.
ForgetDocuments = Callable[[str, list[str]], object]


class SyncEngine:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embeddings,
        chunking: ChunkingOptions,
        status: SyncStatusStore | None,
        embed_batch_size: int = 64,
        forget: ForgetDocuments | None = None,
    ) -> None:
        self._forget = forget or (lambda _source, _ids: None)
        self._store = store
        self._embedder = embedder
        self._chunking = chunking
        self._status = status
        self._embed_batch_size = embed_batch_size

    def sync(
        self, connector: Connector, *, full: bool = False, progress: ProgressCallback | None = None
    ) -> SyncReport:
        report = SyncReport(source=connector.name, started_at=time.time(), full=full)
        notify = progress or (lambda _: None)
        if self._status:
            previous = self._status.last(connector.name)
            report.resumed = previous is not None and not previous.finished
            self._status.save(report)  # unfinished until the end: a kill leaves it marked interrupted
        try:
            indexed = self._store.indexed_documents(connector.name)
            if isinstance(connector, PollsChanges):
                self._sync_polled(connector, indexed, report, full, notify)
            elif isinstance(connector, ListsRefs):
                self._sync_refs(connector, indexed, report, full, notify)
            elif isinstance(connector, LoadsAll):
                self._sync_all(connector, indexed, report, full, notify)
            else:
                msg = f"connector {connector.name!r} can neither list nor load its documents"
                raise SourceError(msg)
            if report.added or report.updated or report.deleted:
                self._store.finish_sync()
        except SourceError as exc:
            report.error = str(exc)
            report.transient = is_transient(exc)
            raise
        except BaseException as exc:  # Ctrl-C, a bug: say the run stopped, then let it propagate
            report.error = f"stopped by {type(exc).__name__}"
            raise
        finally:
            report.finished_at = time.time()
            if self._status:
                self._status.save(report)
            notify(
                Progress(connector.name, report.added + report.updated + report.unchanged, None, "finished")
            )
        return report

    def _sync_refs(
        self,
        connector: ListsRefs,
        indexed: dict[str, IndexedDocument],
        report: SyncReport,
        full: bool,
        notify: ProgressCallback,
    ) -> None:
        notify(Progress(report.source, 0, None, "listing"))
        refs = list(connector.list_refs())
        current = {ref.id for ref in refs}
        # Sources whose readers are set in config: a changed grant must reach every chunk.
        source_acl: Acl | None = connector.acl if isinstance(connector, HasSourceAcl) else None
        stale: list[DocumentRef] = []
        for ref in refs:
            known = indexed.get(ref.id)
            acl_changed = known is not None and source_acl is not None and known.acl != source_acl
            if full or known is None or known.version != ref.version or acl_changed:
                stale.append(ref)
            else:
                report.unchanged += 1
        done = report.unchanged
        notify(Progress(report.source, done, len(refs), "indexing"))

        def indexed_more(count: int) -> Callable[[], None]:
            def after() -> None:
                nonlocal done
                done += count
                notify(Progress(report.source, done, len(refs), "indexing"))

            return after

        with self._pipeline(indexed, report) as pipeline:
            for batch in connector.load(stale):
                pipeline.add(self._prepare(batch, indexed, report), indexed_more(len(batch)))
        self._prune(set(indexed) - current, report, notify)

    def _sync_all(
        self,
        connector: LoadsAll,
        indexed: dict[str, IndexedDocument],
        report: SyncReport,
        full: bool,
        notify: ProgressCallback,
    ) -> None:
        seen: set[str] = set()
        with self._pipeline(indexed, report) as pipeline:
            for batch in connector.load_all():
                seen.update(item.id for item in batch)
                count = len(seen)
                pipeline.add(
                    self._prepare(self._changed(batch, indexed, report, full), indexed, report),
                    lambda count=count: notify(Progress(report.source, count, None, "indexing")),
                )
        self._prune(set(indexed) - seen, report, notify)

    def _sync_polled(
        self,
        connector: PollsChanges,
        indexed: dict[str, IndexedDocument],
        report: SyncReport,
        full: bool,
        notify: ProgressCallback,
    ) -> None:
        # An empty index (a new embedder rebuilt it) has nothing to resume after: read from the start.
        cursor = None
        if self._status and indexed and not full:
            cursor = self._status.checkpoint(report.source)
        touched: set[str] = set()
        # Once a document failed, the cursor stays before it so the next sync retries it, unless
        # the connector carries failed ids in its cursor itself.
        own_retries = isinstance(connector, CarriesFailuresInCursor) and connector.cursor_keeps_failures
        held = False

        def written(next_cursor: object, keep_cursor: bool, count: int) -> Callable[[], None]:
            def after() -> None:
                # Saved only once the batch is in the index: a kill before that re-reads it.
                if self._status and keep_cursor:
                    self._status.save_checkpoint(report.source, next_cursor)
                notify(Progress(report.source, count, None, "indexing"))

            return after

        with self._pipeline(indexed, report) as pipeline:
            for batch, next_cursor in connector.poll(cursor):
                prepared = self._prepare(self._changed(batch, indexed, report, full), indexed, report)
                held = held or (not own_retries and any(isinstance(item, LoadFailure) for item in batch))
                touched.update(item.id for item in batch)
                pipeline.add(prepared, written(next_cursor, not held, len(touched)))
        notify(Progress(report.source, 0, None, "listing"))
        # Listed only after polling, so a document created meanwhile is never pruned unseen.
        current = set(connector.list_ids())
        if isinstance(connector, ConfirmsVanished) and (missing := set(indexed) - current):
            current |= connector.still_there(sorted(missing))  # a listing that can miss: check first
        report.unchanged += len((current & indexed.keys()) - touched)  # not re-read: unchanged since
        self._prune(set(indexed) - current, report, notify)

    @staticmethod
    def _changed(batch: Batch, indexed: dict[str, IndexedDocument], report: SyncReport, full: bool) -> Batch:
        """The items of a batch whose content or readers differ from what is indexed."""
        changed: Batch = []
        for item in batch:
            known = indexed.get(item.id)
            if (
                isinstance(item, Document)
                and not full
                and known
                and known.content_hash == item.content_hash
                and known.acl == item.acl
            ):
                report.unchanged += 1
            else:
                changed.append(item)
        return changed

    def _prepare(self, batch: Batch, indexed: dict[str, IndexedDocument], report: SyncReport) -> _Prepared:
        """Chunk a batch (in the reading thread); failures are noted at once."""
        prepared = _Prepared()
        for item in batch:
            if isinstance(item, LoadFailure):
                # The old chunks of a document that is now unreadable stay searchable.
                report.note_failure(item.id, item.reason)
                continue
            pieces = chunk_document(item, self._chunking)
            if not pieces:
                report.note_failure(item.id, "no text to index")
                continue
            prepared.documents.append(item)
            prepared.chunks += pieces
            known = indexed.get(item.id)
            if known is not None and known.acl != item.acl:
                prepared.regranted.append(item.id)
        return prepared

    def _pipeline(self, indexed: dict[str, IndexedDocument], report: SyncReport) -> _Overlap:
        def write(prepared: _Prepared, vectors: list[list[float]]) -> None:
            self._write(prepared, vectors, indexed, report)

        return _Overlap(self._embed, write)

    def _embed(self, prepared: _Prepared) -> list[list[float]]:
        texts = [chunk.search_text() for chunk in prepared.chunks]
        return embed_in_batches(self._embedder, texts, self._embed_batch_size)

    def _write(
        self,
        prepared: _Prepared,
        vectors: list[list[float]],
        indexed: dict[str, IndexedDocument],
        report: SyncReport,
    ) -> None:
        if not prepared.chunks:
            return
        documents = prepared.documents
        all_new = not any(document.id in indexed for document in documents)
        self._store.upsert(prepared.chunks, vectors, new_documents=all_new)
        report.chunks_embedded += len(prepared.chunks)
        if prepared.regranted:
            # Answers written for the old readers must not be replayed to the new ones.
            self._forget(report.source, prepared.regranted)
        for document in documents:
            if document.id in indexed:
                report.updated += 1
            else:
                report.added += 1

    def _prune(self, vanished: set[str], report: SyncReport, notify: ProgressCallback) -> None:
        if not vanished:
            return
        notify(Progress(report.source, 0, len(vanished), "pruning"))
        self._store.delete_documents(report.source, sorted(vanished))
        self._forget(report.source, sorted(vanished))
        report.deleted += len(vanished)


@dataclass
class _Prepared:
    """A batch read and chunked, waiting for its vectors."""

    chunks: list[Chunk] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    regranted: list[str] = field(default_factory=list)


class _Overlap:
    """Embeds one batch in a worker thread while the caller reads the next and writes the previous.

    ``add`` hands over a chunked batch and returns once the batch before it is written (its
    ``after`` run: progress, checkpoint), so the embedder always has the next batch queued and
    no more than two batches wait in memory. Leaving the ``with`` block writes what is left,
    also when the source failed; an interrupt or a failed embedding leaves the pending batch
    unwritten (and its checkpoint unsaved), so the next sync reads it again.
    """

    def __init__(
        self,
        embed: Callable[[_Prepared], list[list[float]]],
        write: Callable[[_Prepared, list[list[float]]], None],
    ) -> None:
        self._embed = embed
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archivist-embed")
        self._pending: tuple[_Prepared, Future[list[list[float]]] | None, Callable[[], None]] | None = None

    def __enter__(self) -> _Overlap:
        return self

    def add(self, prepared: _Prepared, after: Callable[[], None]) -> None:
        future = self._pool.submit(self._embed, prepared) if prepared.chunks else None
        self._drain()  # the previous batch is written while this one is embedded
        self._pending = (prepared, future, after)

    def _embedded_cleanly(self) -> bool:
        """Whether the pending batch has its vectors (waits for them; never raises their error)."""
        if self._pending is None:
            return False
        future = self._pending[1]
        return future is None or future.exception() is None

    def _drain(self) -> None:
        if self._pending is None:
            return
        prepared, future, after = self._pending
        self._pending = None
        vectors = future.result() if future is not None else []
        self._write(prepared, vectors)
        after()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._drain()
            elif issubclass(kind, Exception) and self._embedded_cleanly():
                # A source that fails midway keeps the batches it delivered before failing; an
                # interrupt (Ctrl-C, SIGTERM) stops at once and the next sync picks up from the index.
                self._drain()
        finally:
            self._pending = None
            self._pool.shutdown(wait=True, cancel_futures=True)
