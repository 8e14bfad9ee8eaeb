"""Sync throughput on SciFact: how close a first sync gets to the embedder's own speed.

Measured, in one process, after the embedding model is loaded (load time counts nowhere):

(a) embedder alone: ``app.embedder.embed_documents`` over exactly the texts a sync
    embeds (``chunk_document`` with the app's ChunkingOptions, then
    ``chunk.search_text()``), in batches of ``embeddings.batch_size`` → docs/s.
    This is the baseline: the floor cost of indexing on this machine.
(b) first sync: ``app.sync_engine.sync(connector)`` into an empty index (listing,
    reading, parsing, chunking, embedding, LanceDB writes, full-text index) → docs/s.
(c) re-sync of the unchanged corpus, median of ``--repeats`` runs.

Targets: (b)/(a) docs/s ≥ 0.9 (the pipeline adds at most ~10% to embedding);
(c)/(b) time ≤ 0.05 (an unchanged corpus costs almost nothing).

(a) and (b) each run once by default: on a 2-core machine one embedding pass over
all 5,183 abstracts takes minutes. Usage:

    python benchmarks/sync_throughput.py [--limit N] [--repeats R]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import (
    SCIFACT_DOCS,
    SOURCE,
    Bench,
    add_threads_option,
    median,
    scifact_app,
    set_threads,
    verdict,
    warm_up,
    write_result,
)

from core.documents import Document
from core.models.embeddings import embed_in_batches
from core.sync.chunking import ChunkingOptions, chunk_document

PIPELINE_TARGET = 0.9
RESYNC_TARGET = 0.05


def chunk_texts(bench: Bench) -> tuple[int, list[str]]:
    """The texts a sync would embed: the connector's documents, chunked as the app chunks."""
    settings = bench.app.settings.chunking
    options = ChunkingOptions(max_chars=settings.max_chars, overlap_chars=settings.overlap_chars)
    connector = bench.app.connector(SOURCE)
    documents = [
        item
        for batch in connector.load(list(connector.list_refs()))
        for item in batch
        if isinstance(item, Document)
    ]
    return len(documents), [
        chunk.search_text() for doc in documents for chunk in chunk_document(doc, options)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=SCIFACT_DOCS, help="SciFact abstracts to index (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="re-sync runs; the median is reported")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)

    with (
        tempfile.TemporaryDirectory(prefix="archivist-bench-") as tmp,
        scifact_app(Path(tmp), args.limit, args.backend) as bench,
    ):
        app = bench.app
        batch_size = app.settings.embeddings.batch_size
        load_s = warm_up(app)
        engine = app.sync_engine  # builds the store and starts the embedded Redis: not timed
        print(f"model load {load_s:.1f} s (not counted); batch size {batch_size}")

        docs, texts = chunk_texts(bench)
        print(f"{docs} documents → {len(texts)} chunks ({len(texts) / docs:.2f} per document)")

        # (a) the baseline: the embedder alone over the same texts.
        start = time.perf_counter()
        vectors = embed_in_batches(app.embedder, texts, batch_size)
        embed_s = time.perf_counter() - start
        assert len(vectors) == len(texts)
        embed_rate = docs / embed_s
        print(
            f"(a) embedder alone   {embed_s:8.2f} s  {embed_rate:7.1f} docs/s"
            f"  {len(texts) / embed_s:7.1f} chunks/s"
        )

        # (b) the full pipeline: a first sync into the empty index.
        start = time.perf_counter()
        report = engine.sync(app.connector(SOURCE))
        sync_s = time.perf_counter() - start
        assert report.added == docs and report.chunks_embedded == len(texts), report
        sync_rate = docs / sync_s
        pipeline_ratio = sync_rate / embed_rate
        print(f"(b) first sync       {sync_s:8.2f} s  {sync_rate:7.1f} docs/s")
        print(
            f"    pipeline/embedder docs/s = {pipeline_ratio:.3f} "
            f"(target ≥ {PIPELINE_TARGET}: {verdict(pipeline_ratio >= PIPELINE_TARGET)}); "
            f"overhead {sync_s - embed_s:.2f} s"
        )

        # (c) re-sync with nothing changed.
        resync_runs: list[float] = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            again = engine.sync(app.connector(SOURCE))
            resync_runs.append(time.perf_counter() - start)
            assert again.unchanged == docs and again.chunks_embedded == 0, again
        resync_s = median(resync_runs)
        resync_ratio = resync_s / sync_s
        print(
            f"(c) unchanged re-sync {resync_s:7.3f} s median of {args.repeats} "
            f"(min {min(resync_runs):.3f}, max {max(resync_runs):.3f})"
        )
        print(
            f"    re-sync/first sync time = {resync_ratio:.4f} "
            f"(target ≤ {RESYNC_TARGET}: {verdict(resync_ratio <= RESYNC_TARGET)})"
        )

        path = write_result(
            "sync_throughput",
            {
                "args": vars(args),
                "documents": docs,
                "chunks": len(texts),
                "batch_size": batch_size,
                "model_load_s": load_s,
                "embedder_alone": {
                    "seconds": embed_s,
                    "docs_per_s": embed_rate,
                    "chunks_per_s": len(texts) / embed_s,
                },
                "first_sync": {"seconds": sync_s, "docs_per_s": sync_rate, "runs": 1},
                "pipeline_over_embedder": pipeline_ratio,
                "pipeline_target": PIPELINE_TARGET,
                "resync": {"median_s": resync_s, "runs_s": resync_runs},
                "resync_over_first_sync": resync_ratio,
                "resync_target": RESYNC_TARGET,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
