"""Retrieval quality of the configured pipeline on a BEIR dataset.

The corpus goes through the real sync pipeline (chunking, embedding, the
configured store) into a throwaway index; each query is then searched once per
variant (dense only, BM25 only, hybrid at several alphas). A document's rank is
that of its best chunk.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from core.errors import InputError
from core.evaluation.beir import BeirConnector, BeirDataset, load_beir
from core.evaluation.embedding_cache import CachedEmbeddings
from core.evaluation.metrics import mrr_at_k, ndcg_at_k, percentile, recall_at_k
from core.models.embeddings import embedder_identity
from core.retrieval.store.base import AccessFilter, SearchQuery, VectorStore
from core.sync.chunking import ChunkingOptions
from core.sync.engine import ProgressCallback, SyncEngine
from core.sync.status import SyncReport

if TYPE_CHECKING:
    from core.app import App
    from core.retrieval.reranker import CrossEncoderReranker

# Chunks fetched per query: enough that 100 distinct documents remain for Recall@100.
CANDIDATE_CHUNKS = 300


@dataclass(frozen=True)
class Variant:
    name: str
    alpha: float
    rerank: bool = False  # the configured cross-encoder re-orders the first candidates


def parse_variants(spec: str, configured_alpha: float) -> list[Variant]:
    """``dense``, ``bm25``, ``hybrid`` (configured alpha) or ``hybrid@0.3``, comma-separated.

    Any of them with ``+rerank`` adds the configured cross-encoder reranker.
    """
    variants = []
    for raw in (p.strip() for p in spec.split(",") if p.strip()):
        part = raw.removesuffix("+rerank")
        if part != raw:
            base = parse_variants(part, configured_alpha)[0]
            variants.append(Variant(f"{base.name}+rerank", base.alpha, rerank=True))
        elif part == "dense":
            variants.append(Variant("dense", 1.0))
        elif part == "bm25":
            variants.append(Variant("bm25", 0.0))
        elif part == "hybrid":
            variants.append(Variant(f"hybrid@{configured_alpha:g}", configured_alpha))
        elif part.startswith("hybrid@"):
            try:
                alpha = float(part.removeprefix("hybrid@"))
            except ValueError:
                alpha = -1.0
            if not 0 <= alpha <= 1:
                msg = f"variant {part!r}: alpha must be a number between 0 and 1"
                raise InputError(msg)
            variants.append(Variant(part, alpha))
        else:
            msg = (
                f"unknown variant {part!r} (use dense, bm25, hybrid or hybrid@ALPHA, each optionally +rerank)"
            )
            raise InputError(msg)
    if not variants:
        msg = "no variants given"
        raise InputError(msg)
    return variants


@dataclass(frozen=True)
class RetrievalScores:
    variant: str
    queries: int
    ndcg_10: float
    recall_10: float
    recall_100: float
    mrr_10: float
    latency_ms_p50: float
    latency_ms_p99: float

    def as_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "queries": self.queries,
            "ndcg@10": round(self.ndcg_10, 4),
            "recall@10": round(self.recall_10, 4),
            "recall@100": round(self.recall_100, 4),
            "mrr@10": round(self.mrr_10, 4),
            "latency_ms_p50": round(self.latency_ms_p50, 2),
            "latency_ms_p99": round(self.latency_ms_p99, 2),
        }


def rank_documents(
    store: VectorStore,
    embedder: Embeddings,
    text: str,
    alpha: float,
    reranker: CrossEncoderReranker | None = None,
    rerank_candidates: int = 0,
) -> list[str]:
    vector = embedder.embed_query(text)
    query = SearchQuery(text, vector, limit=CANDIDATE_CHUNKS, candidates=CANDIDATE_CHUNKS, alpha=alpha)
    hits = store.search(query, AccessFilter(sources=frozenset({BeirConnector.name})))
    if reranker:
        head = hits[:rerank_candidates]
        hits = reranker.rerank(text, head, len(head)) + hits[rerank_candidates:]
    return list(dict.fromkeys(hit.chunk.document_id for hit in hits))


def evaluate(
    store: VectorStore,
    embedder: Embeddings,
    dataset: BeirDataset,
    variant: Variant,
    progress: Callable[[int, int], None] | None = None,
    reranker: CrossEncoderReranker | None = None,
    rerank_candidates: int = 20,
) -> RetrievalScores:
    ndcg, recall10, recall100, mrr, latencies = [], [], [], [], []
    for done, (query_id, text) in enumerate(dataset.queries.items(), start=1):
        started = time.perf_counter()
        ranked = rank_documents(
            store, embedder, text, variant.alpha, reranker if variant.rerank else None, rerank_candidates
        )
        latencies.append((time.perf_counter() - started) * 1000)
        relevant = dataset.qrels[query_id]
        ndcg.append(ndcg_at_k(ranked, relevant, 10))
        recall10.append(recall_at_k(ranked, relevant, 10))
        recall100.append(recall_at_k(ranked, relevant, 100))
        mrr.append(mrr_at_k(ranked, relevant, 10))
        if progress:
            progress(done, len(dataset.queries))
    return RetrievalScores(
        variant.name,
        len(dataset.queries),
        statistics.fmean(ndcg),
        statistics.fmean(recall10),
        statistics.fmean(recall100),
        statistics.fmean(mrr),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


def index_dataset(
    store: VectorStore,
    embedder: Embeddings,
    chunking: ChunkingOptions,
    dataset: BeirDataset,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Index the corpus through the same sync engine every source uses."""
    engine = SyncEngine(store, embedder, chunking, status=None, embed_batch_size=batch_size)
    return engine.sync(BeirConnector(dataset), progress=progress)


def evaluate_pipeline(
    app: App,
    directory: Path,
    split: str,
    variant_spec: str,
    max_queries: int = 0,
    progress_view: Callable[[], Any] | None = None,
) -> list[RetrievalScores]:
    """Index the dataset into a throwaway store, then score each variant on it."""
    variants = parse_variants(variant_spec, app.settings.retrieval.alpha)
    if any(v.rerank for v in variants) and app.reranker is None:
        msg = (
            "+rerank variants need a cross-encoder: set [retrieval] reranker_path to a local model directory"
        )
        raise InputError(msg)
    dataset = load_beir(directory, split)
    if max_queries:
        kept = dict(list(dataset.queries.items())[:max_queries])
        dataset = BeirDataset(dataset.name, dataset.corpus, kept, {q: dataset.qrels[q] for q in kept})
    embedder = CachedEmbeddings(
        app.embedder,
        app.settings.data_dir / "cache" / "embeddings.sqlite",
        embedder_identity(app.settings.embeddings),
    )
    workdir = Path(tempfile.mkdtemp(prefix="eval-", dir=app.settings.data_dir))
    try:
        store = app.build_store(workdir, "beir")
        view = progress_view() if progress_view else nullcontext(None)
        with view as progress:
            index_dataset(
                store, embedder, app.chunking_options(), dataset, app.settings.embeddings.batch_size, progress
            )
        rerank_candidates = app.settings.retrieval.rerank_candidates
        return [
            evaluate(store, embedder, dataset, variant, None, app.reranker, rerank_candidates)
            for variant in variants
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
