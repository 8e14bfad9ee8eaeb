"""What the safe write path costs the embedded store, with the embedder taken out.

Writes are safe against overlapping syncs and deletions leave the disk; both cost
LanceDB work. Measured in one run on the same chunks (SciFact abstracts, vectors
precomputed once, so embedding costs nothing):

(a) baseline: append every batch (what a first sync wrote before: no delete);
(b) replace by document id: ``LanceDBStore.upsert`` (delete the batch's documents, then add);
(c) after deleting 1 % of the documents, ``finish_sync`` as before (optimize only)
    vs now (compact every file holding a deleted row, then drop old versions).

Each figure is the median of ``--repeats`` runs over a fresh index.

    python benchmarks/safe_writes.py [--limit N] [--repeats R]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from _common import median, scifact_corpus, write_result

from core.documents import Acl, Document
from core.retrieval.store.lancedb_store import LanceDBStore, _row, _schema
from core.sync.chunking import ChunkingOptions, chunk_document

BATCH_DOCS = 64  # the sync engine's batch of documents
DIMENSIONS = 384


def _chunks(limit: int):
    documents = [
        Document(id=row["_id"], source="scifact", title=row["title"], text=row["text"], acl=Acl.everyone())
        for row in scifact_corpus(limit)
    ]
    options = ChunkingOptions()
    batches = [
        [chunk for document in documents[i : i + BATCH_DOCS] for chunk in chunk_document(document, options)]
        for i in range(0, len(documents), BATCH_DOCS)
    ]
    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal((len(batch), DIMENSIONS)).astype(np.float32).tolist() for batch in batches]
    return documents, batches, vectors


def _timed(action) -> float:  # noqa: ANN001
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _store(directory: Path) -> LanceDBStore:
    return LanceDBStore(directory, DIMENSIONS, keep_versions=timedelta(0))


def _fill(store: LanceDBStore, batches, vectors, append_only: bool) -> None:  # noqa: ANN001
    for batch, batch_vectors in zip(batches, vectors, strict=True):
        if append_only:
            rows = [_row(chunk, vector) for chunk, vector in zip(batch, batch_vectors, strict=True)]
            store._table.add(pa.Table.from_pylist(rows, schema=_schema(DIMENSIONS)))
        else:
            store.upsert(batch, batch_vectors, new_documents=True)


def _finish_before(store: LanceDBStore) -> None:
    store._table.optimize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    documents, batches, vectors = _chunks(args.limit)
    gone = [document.id for document in documents[:: 100]]
    runs: dict[str, list[float]] = {"append": [], "replace": [], "finish_before": [], "finish_now": []}
    for _ in range(args.repeats):
        for append_only, key in ((True, "append"), (False, "replace")):
            with tempfile.TemporaryDirectory() as tmp:
                store = _store(Path(tmp))
                runs[key].append(_timed(lambda: _fill(store, batches, vectors, append_only)))  # noqa: B023
        for finish, key in ((_finish_before, "finish_before"), (LanceDBStore.finish_sync, "finish_now")):
            with tempfile.TemporaryDirectory() as tmp:
                store = _store(Path(tmp))
                _fill(store, batches, vectors, append_only=False)
                store.finish_sync()
                store.delete_documents("scifact", gone)
                runs[key].append(_timed(lambda: finish(store)))  # noqa: B023
    result = {name: round(median(values), 3) for name, values in runs.items()}
    chunks = sum(len(batch) for batch in batches)
    print(f"{len(documents)} documents, {chunks} chunks, median of {args.repeats}")
    print(f"(a) append only (before):        {result['append']:.3f} s")
    ratio = result["replace"] / result["append"]
    print(f"(b) replace by document id:      {result['replace']:.3f} s  ({ratio:.2f}x)")
    print(f"(c) finish after 1% deleted, before (optimize):           {result['finish_before']:.3f} s")
    print(
        f"    finish after 1% deleted, now (compact + drop versions): {result['finish_now']:.3f} s "
        f"({result['finish_now'] / result['finish_before']:.2f}x)"
    )
    write_result("safe_writes", {"documents": len(documents), "chunks": chunks, **result})


if __name__ == "__main__":
    main()
