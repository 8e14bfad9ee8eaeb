"""The embedded default store: LanceDB under the data dir, hybrid by local fusion.

Dense and full-text candidates are fetched with the access filter as a
pre-filter inside each LanceDB query, then fused with the same relative-score
fusion Weaviate uses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from core.documents import Acl, Chunk
from core.errors import ConfigError, StorageError
from core.retrieval.store.base import AccessFilter, IndexedDocument, SearchHit, SearchQuery
from core.retrieval.store.fusion import relative_score_fusion

log = logging.getLogger(__name__)

# Full-text halves of hybrid searches, beside their vector halves (one per concurrent question).
_SIDE_QUERIES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="archivist-fts")
_RESULT_COLUMNS = [
    "id",
    "document_id",
    "source",
    "title",
    "text",
    "heading_path",
    "position",
    "url",
    "path",
    "content_hash",
    "version",
    "updated_at",
    "acl_public",
    "acl_principals",
    "vector",
]
_HEADING_SEPARATOR = "\x1f"
# How stale a reader's view may get: each process looks for a newer version of the table
# (another process's sync) at most this often, so none reads a superseded version for long.
READ_CONSISTENCY = timedelta(seconds=5)
# A version that marks a document indexed twice (two writers overlapped): the next sync re-indexes it.
DUPLICATED = "duplicated"


# How LanceDB (Rust) reports a failed read or write: "lance error: LanceError(IO): Read-only file
# system (os error 30), /root/.cargo/.../object_store.rs:1000:21", as a RuntimeError or OSError.
_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_IO_ERROR = re.compile(r"LanceError\(IO\)|\(os error \d+\)|No space left|Read-only file system")


@contextmanager
def storage_errors(action: str, directory: object) -> Iterator[None]:
    """Turn the disk's failures (read-only, full, not a directory) into one line naming the index.

    Other LanceDB errors (a bad filter, a bug) are not the disk's and propagate unchanged.
    """
    try:
        yield
    except OSError as exc:
        raise StorageError(_storage_message(action, directory, exc.strerror or str(exc))) from exc
    except RuntimeError as exc:
        text = str(exc)
        if not _IO_ERROR.search(text):
            raise
        code = _OS_ERROR.search(text)
        reason = os.strerror(int(code.group(1))) if code else text.splitlines()[0][:200]
        raise StorageError(_storage_message(action, directory, reason)) from exc


def _storage_message(action: str, directory: object, reason: str) -> str:
    return (
        f"cannot {action} the index in {directory}: {reason}; "
        "check that the data directory (ARCHIVIST_DATA_DIR) is writable and has free space"
    )


def sql_string(value: str) -> str:
    """Quote a value for a LanceDB (DataFusion) SQL filter."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(sql_string(v) for v in sorted(values)) + "]"


def access_sql(access: AccessFilter) -> str:
    """The access filter as a SQL predicate; an empty grant matches nothing but public."""
    grants = []
    if access.include_public:
        grants.append("acl_public = true")
    if access.principals:
        grants.append(f"array_has_any(acl_principals, {sql_list(access.principals)})")
    clause = "(" + " OR ".join(grants) + ")" if grants else "false"
    if access.sources is not None:
        if not access.sources:
            return "false"
        sources = ", ".join(sql_string(s) for s in sorted(access.sources))
        clause += f" AND source IN ({sources})"
    return clause


def _schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("document_id", pa.string()),
            ("source", pa.string()),
            ("title", pa.string()),
            ("text", pa.string()),
            ("search_text", pa.string()),
            ("heading_path", pa.string()),
            ("position", pa.int32()),
            ("url", pa.string()),
            ("path", pa.string()),
            ("content_hash", pa.string()),
            ("version", pa.string()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
            ("acl_public", pa.bool_()),
            ("acl_principals", pa.list_(pa.string())),
            ("vector", pa.list_(pa.float32(), dimensions)),
        ]
    )


def _row(chunk: Chunk, vector: Sequence[float]) -> dict[str, object]:
    return {
        "id": chunk.id,
        "document_id": chunk.document_id,
        "source": chunk.source,
        "title": chunk.title,
        "text": chunk.text,
        "search_text": chunk.search_text(),
        "heading_path": _HEADING_SEPARATOR.join(chunk.heading_path),
        "position": chunk.position,
        "url": chunk.url,
        "path": chunk.path,
        "content_hash": chunk.content_hash,
        "version": chunk.version,
        "updated_at": chunk.updated_at,
        "acl_public": chunk.acl.public,
        "acl_principals": sorted(chunk.acl.principals),
        "vector": list(map(float, vector)),
    }


def _chunk(row: dict[str, object]) -> Chunk:
    headings = str(row["heading_path"] or "")
    updated = row["updated_at"]
    return Chunk(
        id=str(row["id"]),
        document_id=str(row["document_id"]),
        source=str(row["source"]),
        title=str(row["title"]),
        text=str(row["text"]),
        heading_path=tuple(headings.split(_HEADING_SEPARATOR)) if headings else (),
        position=int(row["position"]),  # type: ignore[arg-type]
        url=str(row["url"] or ""),
        path=str(row["path"] or ""),
        content_hash=str(row["content_hash"]),
        version=str(row["version"]),
        updated_at=updated if isinstance(updated, datetime) else datetime.now(UTC),
        acl=Acl(bool(row["acl_public"]), frozenset(row["acl_principals"] or ())),  # type: ignore[arg-type]
    )


class LanceDBStore:
    """``embedder`` names the model that makes the vectors (``embedder_identity``).

    Vectors of two models are never mixed or compared: when the index was built by
    another embedder (or with another dimension), searching it is refused with a
    message, and the next sync rebuilds it from scratch.
    """

    name = "lancedb"

    def __init__(
        self,
        directory: Path,
        dimensions: int,
        table: str = "chunks",
        embedder: str = "",
        keep_versions: timedelta = timedelta(minutes=10),
    ) -> None:
        self._directory = directory
        with storage_errors("open", directory):
            directory.mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(str(directory), read_consistency_interval=READ_CONSISTENCY)
        self._keep_versions = keep_versions
        self._deleted = False  # rows were deleted since the last finish_sync: compact them away
        self._dimensions = dimensions
        self._table_name = table
        self._embedder = embedder
        self._made_by = directory / f"{table}.embedder.json"  # beside the table: which model filled it
        self._stale = ""  # set when another embedder built the index: why it must be rebuilt
        with storage_errors("open", directory):
            self._table = self._open()
        self._fts_ready = False

    def _open(self):  # noqa: ANN202 - lancedb's table type is private
        try:
            table = self._db.open_table(self._table_name)
        except ValueError:  # lancedb's "table not found"
            return self._create()
        stored = table.schema.field("vector").type.list_size
        made_by = self._recorded_embedder()
        if stored != self._dimensions or (self._embedder and made_by and made_by != self._embedder):
            self._stale = (
                f"the index under {self._db.uri} was built by the embedder {made_by or '(not recorded)'} "
                f"({stored} dimensions), but [embeddings] now selects {self._embedder or '(unnamed)'} "
                f"({self._dimensions} dimensions)"
            )
        elif self._embedder and not made_by:
            # An index from before embedders were recorded: adopt this one (a read-only data dir
            # can still be searched; the record is written by the next process that can).
            try:
                self._record_embedder()
            except OSError as exc:
                log.info("could not record the embedder beside the index: %s", exc)
        return table

    def _create(self):  # noqa: ANN202
        table = self._db.create_table(self._table_name, schema=_schema(self._dimensions))
        self._record_embedder()
        return table

    def _recorded_embedder(self) -> str:
        try:
            return str(json.loads(self._made_by.read_text(encoding="utf-8"))["embedder"])
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def _record_embedder(self) -> None:
        if self._embedder:
            record = {"embedder": self._embedder, "dimensions": self._dimensions}
            self._made_by.write_text(json.dumps(record), encoding="utf-8")

    def _rebuild_if_stale(self) -> None:
        """A sync after an embedder change starts over: every source is re-embedded by the new model."""
        if not self._stale:
            return
        log.warning("%s; rebuilding the index: each source is re-indexed on its next sync", self._stale)
        with storage_errors("rebuild", self._directory):
            self._db.drop_table(self._table_name)
            self._table = self._create()
        self._stale = ""
        self._fts_ready = False

    def _refuse_if_stale(self) -> None:
        if self._stale:
            msg = (
                f"{self._stale}. Run `archivist sync` to re-index every source with the new embedder, "
                "or restore the previous [embeddings] setting"
            )
            raise ConfigError(msg)

    # -- writing -----------------------------------------------------------

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]], *, new_documents: bool = False
    ) -> None:
        if not chunks:
            return
        self._rebuild_if_stale()
        # Always replace by document id, even for documents the caller believes new
        # (``new_documents`` is only a hint here): a writer that overlapped with another then
        # leaves one copy, not two.
        by_source: dict[str, set[str]] = {}
        for chunk in chunks:
            by_source.setdefault(chunk.source, set()).add(chunk.document_id)
        for source, document_ids in by_source.items():
            self.delete_documents(source, document_ids)
        rows = [_row(chunk, vector) for chunk, vector in zip(chunks, vectors, strict=True)]
        with storage_errors("write to", self._directory):
            self._table.add(pa.Table.from_pylist(rows, schema=_schema(self._dimensions)))

    def delete_documents(self, source: str, document_ids: Iterable[str]) -> None:
        self._rebuild_if_stale()
        ids = list(document_ids)
        # Filters are SQL text; keep each statement a reasonable size.
        for start in range(0, len(ids), 500):
            part = ", ".join(sql_string(i) for i in ids[start : start + 500])
            with storage_errors("write to", self._directory):
                self._table.delete(f"source = {sql_string(source)} AND document_id IN ({part})")
            self._deleted = True

    def finish_sync(self) -> None:
        """Build the full-text index once (later syncs fold new rows into it), and purge deleted text.

        A delete only masks rows; compaction with no deletion threshold rewrites every file
        that holds one, and versions older than ``keep_versions`` are removed, so a deleted
        document's text leaves the disk instead of lingering in old files and versions.
        """
        with storage_errors("write to", self._directory):
            if not self._has_fts_index():
                with warnings.catch_warnings():
                    # The replacement API (create_index(config=FTS())) is not on the sync table in 0.40.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._table.create_fts_index("search_text", replace=True, with_position=False)
                self._fts_ready = True
            if self._deleted:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._table.compact_files(materialize_deletions_threshold=0.0)
                self._deleted = False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # lancedb's caution about a zero window
                # Merges new fragments into the indices and drops superseded versions.
                self._table.optimize(cleanup_older_than=self._keep_versions)

    # -- reading -----------------------------------------------------------

    def _scan(self, columns: list[str], where: str | None) -> pa.Table:
        query = self._table.search().select(columns).limit(None)
        if where:
            query = query.where(where)
        with storage_errors("read", self._directory):
            return query.to_arrow()

    def indexed_documents(self, source: str) -> dict[str, IndexedDocument]:
        self._rebuild_if_stale()  # what a sync asks first: the new embedder starts from an empty index
        columns = ["id", "document_id", "version", "content_hash", "acl_public", "acl_principals"]
        rows = self._scan(columns, f"source = {sql_string(source)}").to_pydict()
        documents: dict[str, IndexedDocument] = {}
        seen: set[str] = set()
        duplicated: set[str] = set()
        for chunk_id, document_id, version, digest, public, principals in zip(
            *(rows[c] for c in columns), strict=True
        ):
            if chunk_id in seen:
                duplicated.add(document_id)
            seen.add(chunk_id)
            known = documents.get(document_id)
            acl = Acl(bool(public), frozenset(principals or ()))
            documents[document_id] = IndexedDocument(version, digest, (known.chunks if known else 0) + 1, acl)
        for document_id in duplicated:  # shown as changed, so this sync replaces them with one copy
            documents[document_id] = replace(
                documents[document_id], version=DUPLICATED, content_hash=DUPLICATED
            )
        return documents

    def chunks(self, access: AccessFilter, limit: int | None = None) -> list[Chunk]:
        columns = [c for c in _RESULT_COLUMNS if c != "vector"]
        rows = self._scan(columns, access_sql(access)).to_pylist()
        rows.sort(key=lambda row: (row["source"], row["document_id"], row["position"]))
        return [_chunk(row) for row in rows[:limit]]

    def count(self, source: str | None = None) -> int:
        with storage_errors("read", self._directory):
            return self._table.count_rows(f"source = {sql_string(source)}" if source else None)

    def _has_fts_index(self) -> bool:
        if not self._fts_ready:
            self._fts_ready = any("search_text" in idx.columns for idx in self._table.list_indices())
        return self._fts_ready

    def search(self, query: SearchQuery, access: AccessFilter) -> list[SearchHit]:
        self._refuse_if_stale()
        where = access_sql(access)
        wants_dense = query.alpha > 0
        wants_words = query.alpha < 1 and bool(query.text.strip()) and self._has_fts_index()
        # Hybrid: the full-text query runs in another thread while this one runs the vector
        # query (LanceDB releases the GIL), so a question waits for the slower, not the sum.
        words = _SIDE_QUERIES.submit(self._word_rows, query, where) if wants_dense and wants_words else None
        dense_rows = self._vector_rows(query, where) if wants_dense else []
        if words is not None:
            word_rows = words.result()
        else:
            word_rows = self._word_rows(query, where) if wants_words else []
        rows: dict[str, dict[str, object]] = {}
        dense: list[tuple[str, float]] = []
        sparse: list[tuple[str, float]] = []
        for row in dense_rows:
            rows[str(row["id"])] = row
            dense.append((str(row["id"]), 1.0 - float(row["_distance"])))
        for row in word_rows:
            rows.setdefault(str(row["id"]), row)
            sparse.append((str(row["id"]), float(row["_score"])))
        fused = relative_score_fusion(dense, sparse, query.alpha)[: query.limit]
        question = np.asarray(query.vector, dtype=np.float32)
        question /= np.linalg.norm(question) or 1.0
        hits = []
        for chunk_id, score in fused:
            row = rows[chunk_id]
            vector = np.asarray(row["vector"], dtype=np.float32)
            similarity = float(vector @ question / (np.linalg.norm(vector) or 1.0))
            hits.append(SearchHit(_chunk(row), score, similarity))
        return hits

    def _vector_rows(self, query: SearchQuery, where: str) -> list[dict[str, Any]]:
        nearest = (
            self._table.search(list(query.vector), vector_column_name="vector")
            .distance_type("cosine")
            .where(where, prefilter=True)
            .limit(query.candidates)
            .select([*_RESULT_COLUMNS, "_distance"])
        )
        with storage_errors("read", self._directory):
            return nearest.to_list()

    def _word_rows(self, query: SearchQuery, where: str) -> list[dict[str, Any]]:
        matching = (
            self._table.search(query.text, query_type="fts", fts_columns="search_text")
            .where(where, prefilter=True)
            .limit(query.candidates)
            .select([*_RESULT_COLUMNS, "_score"])
        )
        with storage_errors("read", self._directory):
            return matching.to_list()
