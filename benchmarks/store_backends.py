"""Store backends on SciFact: documents indexed per second and search latency, per backend.

Every backend available is measured in the same run, on the same documents and queries:

- ``lancedb``, always: the embedded store in a temporary directory;
- ``weaviate``, when WEAVIATE_URL is set (WEAVIATE_API_KEY, and WEAVIATE_GRPC_PORT if gRPC is
  not on 50051): a throwaway collection, dropped at the end.

Indexing: the abstracts go through the real sync pipeline (``SyncEngine``: chunking, embedding,
upserts, ``finish_sync``) into an empty store, with embeddings served from the evaluation's
disk cache (``CachedEmbeddings``; ``archivist eval retrieval`` fills it). The figure is therefore
the pipeline's and the store's cost, not the embedder's: documents / wall time, median of
``--repeats`` fresh indexes.

Search: each claim's vector is computed beforehand (from the same cache); only ``store.search``
is timed, as ``archivist ask`` runs it: hybrid, alpha 0.5, 10 hits, 30 candidates per side,
the source filter on. p50/p99 over ``--queries`` claims, after ``--warmup`` untimed ones.

    python benchmarks/store_backends.py [--limit N] [--queries Q] [--repeats R] [--cache PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from _common import PROJECT_ROOT, SCIFACT_DIR, percentile, write_result

from core.app import App
from core.evaluation.beir import BeirConnector, BeirDataset, load_beir
from core.evaluation.embedding_cache import CachedEmbeddings
from core.evaluation.retrieval import index_dataset
from core.retrieval.store.base import AccessFilter, SearchQuery, VectorStore
from core.settings import Settings, StoreSettings, load_settings

DEFAULT_CACHE = PROJECT_ROOT / ".archivist" / "cache" / "embeddings.sqlite"
ALPHA, LIMIT, CANDIDATES = 0.5, 10, 30  # the shipped [retrieval] defaults, but 10 hits


@dataclass
class Backend:
    name: str
    open: Callable[[], AbstractContextManager[VectorStore]]  # a fresh, empty store each time


def _lancedb(dimensions: int) -> Backend:
    @contextmanager
    def fresh() -> Iterator[VectorStore]:
        from core.retrieval.store.lancedb_store import LanceDBStore

        directory = Path(tempfile.mkdtemp(prefix="bench-lancedb-"))
        try:
            yield LanceDBStore(directory, dimensions, "scifact")
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    return Backend("lancedb", fresh)


def _weaviate(dimensions: int) -> Backend:
    from core.retrieval.store.weaviate_connect import connect
    from core.retrieval.store.weaviate_store import WeaviateStore

    settings = Settings(
        store=StoreSettings(
            backend="weaviate",
            weaviate_url=os.environ["WEAVIATE_URL"],
            weaviate_grpc_port=int(os.environ.get("WEAVIATE_GRPC_PORT", "50051")),
        )
    )

    @contextmanager
    def fresh() -> Iterator[VectorStore]:
        client = connect(settings)
        store = WeaviateStore(client, f"ArchivistBench_{uuid.uuid4().hex[:12]}", dimensions)
        try:
            yield store
        finally:
            store.drop()
            client.close()

    return Backend("weaviate", fresh)


def subset(dataset: BeirDataset, limit: int | None) -> BeirDataset:
    if limit is None:
        return dataset
    kept = dict(list(dataset.corpus.items())[:limit])
    return BeirDataset(dataset.name, kept, dataset.queries, dataset.qrels)


def measure(
    backend: Backend,
    app: App,
    embedder: CachedEmbeddings,
    dataset: BeirDataset,
    queries: list[tuple[str, list[float]]],
    repeats: int,
    warmup: int,
) -> dict[str, object]:
    index_runs: list[float] = []
    latencies: list[float] = []
    chunks = 0
    for run in range(repeats):
        with backend.open() as store:
            start = time.perf_counter()
            report = index_dataset(
                store, embedder, app.chunking_options(), dataset, app.settings.embeddings.batch_size
            )
            index_runs.append(time.perf_counter() - start)
            assert report.added == len(dataset.corpus) and not report.failures, report
            chunks = store.count()
            if run < repeats - 1:
                continue
            access = AccessFilter(sources=frozenset({BeirConnector.name}))
            for position, (text, vector) in enumerate(queries):
                query = SearchQuery(text, vector, limit=LIMIT, candidates=CANDIDATES, alpha=ALPHA)
                start = time.perf_counter()
                hits = store.search(query, access)
                elapsed = (time.perf_counter() - start) * 1000
                assert hits, f"no hits for {text!r}"
                if position >= warmup:
                    latencies.append(elapsed)
    index_s = statistics.median(index_runs)
    return {
        "documents": len(dataset.corpus),
        "chunks": chunks,
        "index_s_median": index_s,
        "index_runs_s": index_runs,
        "docs_per_s": len(dataset.corpus) / index_s,
        "queries_timed": len(latencies),
        "search_ms_p50": percentile(latencies, 50),
        "search_ms_p99": percentile(latencies, 99),
        "search_ms_mean": statistics.fmean(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="SciFact abstracts to index (default: all)")
    parser.add_argument("--queries", type=int, default=300, help="claims to time (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed claims first (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh indexes per backend; median reported")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="embedding cache (sqlite)")
    args = parser.parse_args()

    app = App(load_settings(PROJECT_ROOT / "config" / "archivist.toml", environ={}))
    settings = app.settings.embeddings
    embedder = CachedEmbeddings(app.embedder, args.cache, settings.model)
    dataset = subset(load_beir(SCIFACT_DIR, "train"), args.limit)
    texts = list(dataset.queries.values())[: args.queries + args.warmup]
    start = time.perf_counter()
    vectors = embedder.embed_documents(texts)  # what embed_query returns, for the bundled embedder
    print(f"{len(texts)} claim vectors in {time.perf_counter() - start:.1f} s (not counted)")

    # One throwaway index fills the cache for this corpus, so no backend pays for embedding.
    start = time.perf_counter()
    with _lancedb(app.embedder.dimensions).open() as store:
        index_dataset(store, embedder, app.chunking_options(), dataset, settings.batch_size)
    print(f"cache warm-up index {time.perf_counter() - start:.1f} s (not counted)")

    backends = [_lancedb(app.embedder.dimensions)]
    if os.environ.get("WEAVIATE_URL"):
        backends.append(_weaviate(app.embedder.dimensions))
    else:
        print("weaviate: skipped (set WEAVIATE_URL to measure it)")
    results: dict[str, object] = {}
    for backend in backends:
        figures = measure(
            backend, app, embedder, dataset, list(zip(texts, vectors, strict=True)), args.repeats, args.warmup
        )
        results[backend.name] = figures
        print(
            f"{backend.name:9} {figures['documents']} docs ({figures['chunks']} chunks): "
            f"index {figures['index_s_median']:.2f} s median of {args.repeats} = "
            f"{figures['docs_per_s']:.0f} docs/s; search p50 {figures['search_ms_p50']:.1f} ms, "
            f"p99 {figures['search_ms_p99']:.1f} ms over {figures['queries_timed']} claims"
        )
    path = write_result("store_backends", {"args": {**vars(args), "cache": str(args.cache)}, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
