"""The production store: a Weaviate collection, searched by Weaviate's own hybrid query.

Weaviate runs the vector and BM25 searches and fuses them itself (relative-score
fusion by default, the fusion the LanceDB store reproduces locally), with the
access filter inside that same query. Vectors come from Archivist's embedder
unless a Weaviate vectorizer module is configured. With ``tenant`` set, the
collection is multi-tenant and this store reads and writes only that tenant.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from core.extras import MissingExtra, is_missing  # before the optional package it explains

try:
    from weaviate import WeaviateClient
except ImportError as exc:
    if is_missing(exc, "weaviate"):
        raise MissingExtra("weaviate") from exc
    raise
from weaviate.classes.config import Configure, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.classes.tenants import TenantActivityStatus
from weaviate.collections import Collection
from weaviate.collections.classes.config import CollectionConfig
from weaviate.collections.classes.config_vectors import _VectorConfigCreate
from weaviate.collections.classes.internal import Object
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError, WeaviateInsertManyAllFailedError

from core.documents import Chunk
from core.errors import ConfigError, ServiceUnavailable, SourceError
from core.retrieval.store.base import AccessFilter, IndexedDocument, SearchHit, SearchQuery
from core.retrieval.store.weaviate_schema import (
    PROPERTIES,
    access_filter,
    chunk_uuid,
    collection_name,
    flat_vector,
    plan_migration,
    recorded_embedders,
    text_of,
    to_acl,
    to_chunk,
    to_properties,
    with_embedder,
)

log = logging.getLogger(__name__)

Fusion = Literal["relative_score", "ranked"]
FUSIONS: dict[str, HybridFusion] = {
    "relative_score": HybridFusion.RELATIVE_SCORE,  # Weaviate's default; what LanceDBStore does locally
    "ranked": HybridFusion.RANKED,  # reciprocal rank fusion
}
# One insert request: ~200 chunks with 1,536-dim vectors stay near 1.5 MB, well under
# Weaviate's default 10 MB gRPC message limit.
INSERT_BATCH = 200
# Ids per delete filter: keeps each ContainsAny small; Weaviate caps one delete at
# QUERY_MAXIMUM_RESULTS (10,000 by default) matches, so each slice repeats until none match.
DELETE_BATCH = 100
# Objects fetched per page when listing a source's documents.
LIST_PAGE = 1000
SHOWN_ERRORS = 3  # per-object errors quoted in a failed upsert's message
VECTOR_NAME = "default"  # the one named vector of a collection this store creates
# What the sync engine's diff needs of each chunk; the scan reads nothing else.
_DIFF_PROPERTIES = ["source", "document_id", "version", "content_hash", "acl_public", "acl_principals"]


@dataclass(frozen=True)
class RejectedChunk:
    """A chunk Weaviate refused in a batch insert, with its reason."""

    source: str
    document_id: str
    chunk_id: str
    reason: str


def batch_error_message(rejected: Sequence[RejectedChunk], total: int) -> str:
    documents = {(r.source, r.document_id) for r in rejected}
    shown = "; ".join(f"{r.chunk_id}: {r.reason[:200]}" for r in rejected[:SHOWN_ERRORS])
    more = f"; and {len(rejected) - SHOWN_ERRORS} more" if len(rejected) > SHOWN_ERRORS else ""
    return (
        f"Weaviate rejected {len(rejected)} of {total} chunks ({shown}{more}); "
        f"{len(documents)} document(s) were left out of the index and will be retried on the next sync"
    )


def similarity_from_distance(distance: float) -> float:
    """Weaviate's cosine distance is 1 - cosine similarity."""
    return 1.0 - distance


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


@contextmanager
def _weaviate_errors(action: str) -> Iterator[None]:
    """Any client failure becomes ServiceUnavailable, saying what was being done."""
    try:
        yield
    except WeaviateBaseError as exc:
        msg = f"Weaviate failed to {action}: {exc}"
        raise ServiceUnavailable(msg) from exc


class WeaviateStore:
    name = "weaviate"

    def __init__(
        self,
        client: WeaviateClient,
        collection: str,
        dimensions: int,
        tenant: str | None = None,
        vectorizer: str | None = None,
        *,
        fusion: Fusion = "relative_score",
        embedder: str = "",
    ) -> None:
        self._client = client
        self._name = collection_name(collection)
        self._dimensions = dimensions
        self._tenant = tenant or None
        self._vectorizer = vectorizer or None
        self._fusion = FUSIONS[fusion]
        self._embedder = embedder  # embedder_identity: which model's vectors this index holds
        self._stale = ""  # set when another embedder built the index: why it must be rebuilt
        self._vector_name: str | None = VECTOR_NAME
        with _weaviate_errors(f"prepare collection {self._name}"):
            self._collection = self._open()

    # -- the collection ----------------------------------------------------

    def _vector_config(self) -> _VectorConfigCreate:
        index = Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
        if self._vectorizer:
            return Configure.Vectors.custom(
                name=VECTOR_NAME,
                module_name=self._vectorizer,
                source_properties=["search_text"],
                vector_index_config=index,
            )
        own: _VectorConfigCreate = Configure.Vectors.self_provided(
            name=VECTOR_NAME, vector_index_config=index
        )
        return own

    def _open(self) -> Collection[dict[str, Any], None]:
        collections = self._client.collections
        if not collections.exists(self._name):
            try:
                collections.create(
                    self._name,
                    properties=list(PROPERTIES),
                    vector_config=self._vector_config(),
                    multi_tenancy_config=Configure.multi_tenancy(enabled=True) if self._tenant else None,
                )
                log.info("created Weaviate collection %s", self._name)
            except UnexpectedStatusCodeError:
                if not collections.exists(self._name):  # not a lost race with another process
                    raise
        collection: Collection[dict[str, Any], None] = collections.get(self._name)
        config = collection.config.get()
        self._check_tenancy(config)
        self._check_vectors(config)
        for prop in plan_migration({p.name: p.data_type.value for p in config.properties}):
            collection.config.add_property(prop)
            log.info("added property %s to Weaviate collection %s", prop.name, self._name)
        self._base = collection
        if self._tenant:
            collection = self._tenant_collection(collection, self._tenant)
        self._check_embedder(collection, config)
        return collection

    def _check_tenancy(self, config: CollectionConfig) -> None:
        enabled = config.multi_tenancy_config.enabled
        if self._tenant and not enabled:
            msg = (
                f"store.tenant is set but Weaviate collection {self._name} was created without "
                "multi-tenancy; use another store.table for a multi-tenant index, or remove store.tenant"
            )
            raise ConfigError(msg)
        if enabled and not self._tenant:
            msg = f"Weaviate collection {self._name} is multi-tenant: set store.tenant (one per workspace)"
            raise ConfigError(msg)

    def _check_vectors(self, config: CollectionConfig) -> None:
        """The collection must vectorize as configured, or its vectors and ours would not compare."""
        named = config.vector_config or {}
        if named:
            self._vector_name = VECTOR_NAME if VECTOR_NAME in named else next(iter(named))
            module: object = named[self._vector_name].vectorizer.vectorizer
        else:  # a collection from before named vectors: one unnamed vector
            self._vector_name = None
            module = config.vectorizer
        stored = str(getattr(module, "value", module) or "none")
        wanted = self._vectorizer or "none"
        if stored != wanted:
            msg = (
                f"Weaviate collection {self._name} is vectorized by {stored!r} but "
                f"store.weaviate_vectorizer is {wanted!r}: restore the setting, or use another "
                "store.table and run `archivist sync --full`"
            )
            raise ConfigError(msg)

    def _check_embedder(self, collection: Collection[dict[str, Any], None], config: CollectionConfig) -> None:
        """Vectors of two embedders are never compared, as in LanceDBStore: searching an index
        another model built is refused, and the next sync rebuilds it."""
        if self._vectorizer:
            return  # the module makes every vector, the question's included
        made_by = recorded_embedders(config.description).get(self._tenant or "", {})
        sample = collection.query.fetch_objects(limit=1, include_vector=True).objects
        stored = flat_vector(sample[0].vector, self._vector_name or VECTOR_NAME) if sample else None
        dimensions = len(stored) if stored is not None else made_by.get("dimensions")
        if dimensions not in (None, self._dimensions) or (
            self._embedder and made_by.get("embedder") not in (None, self._embedder)
        ):
            where = f"tenant {self._tenant} of " if self._tenant else ""
            self._stale = (
                f"{where}Weaviate collection {self._name} was built by the embedder "
                f"{made_by.get('embedder') or '(not recorded)'} ({dimensions} dimensions), but "
                f"[embeddings] now selects {self._embedder or '(unnamed)'} ({self._dimensions} dimensions)"
            )
        elif self._embedder and made_by.get("embedder") != self._embedder:
            self._record_embedder()  # a new index, or one from before embedders were recorded

    def _record_embedder(self) -> None:
        if not self._embedder:
            return
        description = self._base.config.get().description
        record = {"embedder": self._embedder, "dimensions": self._dimensions}
        self._base.config.update(description=with_embedder(description, self._tenant or "", record))

    def _rebuild_if_stale(self) -> None:
        """A sync after an embedder change starts over: every source is re-embedded by the new model."""
        if not self._stale:
            return
        log.warning("%s; rebuilding the index: each source is re-indexed on its next sync", self._stale)
        with _weaviate_errors(f"rebuild collection {self._name}"):
            if self._tenant:  # a fresh shard of its own; other workspaces' tenants are untouched
                self._base.tenants.remove(self._tenant)
                self._base.tenants.create(self._tenant)
            else:  # a fresh vector index: one that held other-sized vectors keeps refusing new ones
                self._client.collections.delete(self._name)
                self._collection = self._open()
            self._stale = ""
            self._record_embedder()

    def _refuse_if_stale(self) -> None:
        if self._stale:
            # Another process (the worker's sync) may have rebuilt the index since: look again.
            self._stale = ""
            with _weaviate_errors(f"read collection {self._name}"):
                self._check_embedder(self._collection, self._base.config.get())
        if self._stale:
            msg = (
                f"{self._stale}. Run `archivist sync` to re-index every source with the new embedder, "
                "or restore the previous [embeddings] setting"
            )
            raise ConfigError(msg)

    @staticmethod
    def _tenant_collection(
        collection: Collection[dict[str, Any], None], tenant: str
    ) -> Collection[dict[str, Any], None]:
        """The workspace's tenant, created on first use and woken if it was put to sleep."""
        found = collection.tenants.get_by_name(tenant)
        if found is None:
            try:
                collection.tenants.create(tenant)
                log.info("created Weaviate tenant %s", tenant)
            except UnexpectedStatusCodeError:
                if collection.tenants.get_by_name(tenant) is None:
                    raise
        elif found.activity_status not in (TenantActivityStatus.ACTIVE, TenantActivityStatus.HOT):
            collection.tenants.activate(tenant)
        return collection.with_tenant(tenant)

    def drop(self) -> None:
        """Delete the whole collection, every tenant included (throwaway indexes, tests)."""
        with _weaviate_errors(f"delete collection {self._name}"):
            self._client.collections.delete(self._name)

    # -- writing -----------------------------------------------------------

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]], *, new_documents: bool = False
    ) -> None:
        if not chunks:
            return
        if len(chunks) != len(vectors):
            msg = f"{len(chunks)} chunks but {len(vectors)} vectors"
            raise ValueError(msg)
        self._rebuild_if_stale()
        if not new_documents:
            for source, document_ids in _documents_by_source(chunks).items():
                self.delete_documents(source, document_ids)
        rejected = self._insert(chunks, vectors)
        if rejected:
            # A document is indexed whole or not at all: what is left out is retried next sync.
            for source, document_ids in _documents_by_source(rejected).items():
                self.delete_documents(source, document_ids)
            raise SourceError(batch_error_message(rejected, len(chunks)))

    def _insert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> list[RejectedChunk]:
        rejected: list[RejectedChunk] = []
        for start in range(0, len(chunks), INSERT_BATCH):
            part = chunks[start : start + INSERT_BATCH]
            objects = [
                DataObject(
                    properties=to_properties(chunk),
                    uuid=chunk_uuid(chunk.id),
                    vector=self._object_vector(vector),
                )
                for chunk, vector in zip(part, vectors[start : start + INSERT_BATCH], strict=True)
            ]
            try:
                result = self._collection.data.insert_many(objects)
            except WeaviateInsertManyAllFailedError as exc:
                rejected += [_rejected(chunk, str(exc)) for chunk in part]
                continue
            except WeaviateBaseError as exc:
                msg = f"Weaviate failed to store {len(part)} chunks: {exc}"
                raise ServiceUnavailable(msg) from exc
            rejected += [
                _rejected(part[index], error.message) for index, error in sorted(result.errors.items())
            ]
        return rejected

    def _object_vector(self, vector: Sequence[float]) -> dict[str, list[float]] | list[float] | None:
        if self._vectorizer:
            return None  # Weaviate's module vectorizes search_text
        values = [float(x) for x in vector]
        return {self._vector_name: values} if self._vector_name else values

    def delete_documents(self, source: str, document_ids: Iterable[str]) -> None:
        self._rebuild_if_stale()
        ids = sorted(set(document_ids))
        with _weaviate_errors(f"delete documents of {source}"):
            for start in range(0, len(ids), DELETE_BATCH):
                where = Filter.all_of(
                    [
                        Filter.by_property("source").equal(source),
                        Filter.by_property("document_id").contains_any(ids[start : start + DELETE_BATCH]),
                    ]
                )
                while True:
                    result = self._collection.data.delete_many(where=where)
                    if result.failed:
                        msg = f"Weaviate could not delete {result.failed} chunks of {source}; sync it again"
                        raise SourceError(msg)
                    if result.matches == 0 or result.successful == 0:
                        break

    def finish_sync(self) -> None:
        """Nothing to do: Weaviate indexes each object for BM25 and vectors as it is written."""

    # -- reading -----------------------------------------------------------

    def count(self, source: str | None = None) -> int:
        where = Filter.by_property("source").equal(source) if source else None
        with _weaviate_errors("count chunks"):
            total = self._collection.aggregate.over_all(filters=where, total_count=True).total_count
        return total or 0

    def indexed_documents(self, source: str) -> dict[str, IndexedDocument]:
        self._rebuild_if_stale()  # what a sync asks first: the new embedder starts from an empty index
        if self.count(source) == 0:
            return {}
        documents: dict[str, IndexedDocument] = {}
        # Weaviate's cursor cannot be filtered, so the scan reads every chunk's few small properties.
        with _weaviate_errors(f"list the documents of {source}"):
            for item in self._collection.iterator(return_properties=_DIFF_PROPERTIES, cache_size=LIST_PAGE):
                properties = item.properties
                if properties.get("source") != source:
                    continue
                document_id = text_of(properties, "document_id")
                known = documents.get(document_id)
                documents[document_id] = IndexedDocument(
                    text_of(properties, "version"),
                    text_of(properties, "content_hash"),
                    (known.chunks if known else 0) + 1,
                    to_acl(properties),
                )
        return documents

    def chunks(self, access: AccessFilter, limit: int | None = None) -> list[Chunk]:
        self._refuse_if_stale()
        names = [prop.name for prop in PROPERTIES if prop.name != "search_text"]
        found: list[Chunk] = []
        # Weaviate's cursor cannot be filtered (a filtered fetch stops at QUERY_MAXIMUM_RESULTS),
        # so the whole scan is read and each chunk checked against the filter here.
        with _weaviate_errors("list chunks"):
            for item in self._collection.iterator(return_properties=names, cache_size=LIST_PAGE):
                chunk = to_chunk(item.properties)
                if access.admits(chunk.source, chunk.acl):
                    found.append(chunk)
        found.sort(key=lambda chunk: (chunk.source, chunk.document_id, chunk.position))
        return found[:limit]

    def search(self, query: SearchQuery, access: AccessFilter) -> list[SearchHit]:
        self._refuse_if_stale()
        text = query.text.strip()
        if query.alpha == 0 and not text:
            return []  # keyword-only search for no keywords
        where = access_filter(access)
        with _weaviate_errors("search"):
            if text:
                result = self._collection.query.hybrid(
                    text,
                    alpha=query.alpha,
                    vector=None if self._vectorizer else [float(x) for x in query.vector],
                    query_properties=["search_text"],
                    fusion_type=self._fusion,
                    # Each side fetches this many candidates before fusion, as LanceDBStore does.
                    limit=max(query.limit, query.candidates),
                    filters=where,
                    target_vector=self._vector_name,
                    include_vector=self._vectorizer is None,
                    # No distance asked: a hit found by BM25 alone has none to give.
                    return_metadata=MetadataQuery(score=True),
                )
            elif self._vectorizer:
                return []  # no text for the module to vectorize
            else:
                result = self._collection.query.near_vector(
                    [float(x) for x in query.vector],
                    limit=query.limit,
                    filters=where,
                    target_vector=self._vector_name,
                    return_metadata=MetadataQuery(distance=True),
                )
            objects = result.objects[: query.limit]
            similarities = self._similarities(objects, query)
        hits = []
        for item in objects:
            similarity = similarities.get(str(item.uuid), 0.0)
            score = item.metadata.score if item.metadata.score is not None else similarity
            hits.append(SearchHit(to_chunk(item.properties), float(score), similarity))
        return hits

    def _similarities(
        self, objects: Sequence[Object[dict[str, Any], None]], query: SearchQuery
    ) -> dict[str, float]:
        """Cosine of question and passage for each hit, comparable across queries.

        From Weaviate's vector distance where a pure vector query reports one;
        for hybrid hits from the returned passage vectors, as LanceDBStore does.
        With a vectorizer module the question vector lives in the module's space,
        so one more query asks Weaviate for the distances of exactly these hits.
        """
        found: dict[str, float] = {}
        missing: list[UUID] = []
        for item in objects:
            if item.metadata.distance is not None:
                found[str(item.uuid)] = similarity_from_distance(item.metadata.distance)
                continue
            passage = flat_vector(item.vector, self._vector_name or VECTOR_NAME)
            if passage is not None and not self._vectorizer:
                found[str(item.uuid)] = cosine(passage, [float(x) for x in query.vector])
            else:
                missing.append(item.uuid)
        if missing and self._vectorizer:
            again = self._collection.query.near_text(
                query.text,
                limit=len(missing),
                filters=Filter.by_id().contains_any(missing),
                target_vector=self._vector_name,
                return_metadata=MetadataQuery(distance=True),
            )
            for item in again.objects:
                if item.metadata.distance is not None:
                    found[str(item.uuid)] = similarity_from_distance(item.metadata.distance)
        return found


def _rejected(chunk: Chunk, reason: str) -> RejectedChunk:
    return RejectedChunk(chunk.source, chunk.document_id, chunk.id, reason)


def _documents_by_source(items: Iterable[Chunk | RejectedChunk]) -> dict[str, set[str]]:
    by_source: dict[str, set[str]] = {}
    for item in items:
        by_source.setdefault(item.source, set()).add(item.document_id)
    return by_source
