"""The local embedder's backends (torch, torch-bf16, onnx, onnx-int8) on the same SciFact texts, in one run.

For each backend, over exactly the chunks a sync embeds:

(a) embedder alone: docs/s over the corpus, measured in interleaved rounds (each round
    embeds the same slice with every backend, in a rotating order), so load from other
    work on the machine falls on all backends alike; the per-round speed-up against
    torch is reported as a median;
(b) quality: dense nDCG@10 and Recall@100 on the SciFact train split from those vectors
    (a document scores its best chunk), and the cosine of each vector to torch's;
(c) query embedding: p50/p99 of ``embed_query``, one question at a time, interleaved;
(d) sync: a first sync through the real pipeline (App, filesystem source, LanceDB) of
    ``--sync-limit`` abstracts into an empty index, ``--sync-repeats`` times, interleaved;
(e) peak memory: the peak resident set of the backend's process after (a).

Each backend runs in a process of its own, as in an app; only one works at a time.
(f) first use: load, plus the export to ONNX or the int8 quantization, from the bundled
    weights into an empty data dir.

The default backend should be the fastest syncing one whose nDCG@10 is within 0.003 of
torch's; the run says which that is. Usage:

    python benchmarks/embedding_backends.py [--limit N | --relevant-plus N]
                                            [--sync-limit N] [--sync-repeats R]
                                            [--backends torch,torch-bf16,...] [--model DIR]

``--model DIR`` measures a fine-tuned embedder (``archivist finetune retriever``) instead of
the bundled one.

``--relevant-plus N`` embeds every abstract relevant to a SciFact train query plus N others,
so all 809 train queries are scored (a 400-abstract prefix scores about 80: too few to see a
0.003 nDCG@10 difference).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    SCIFACT_DIR,
    SCIFACT_DOCS,
    SOURCE,
    close_app,
    median,
    percentile,
    scifact_corpus,
    write_markdown,
    write_result,
)

from core.app import App
from core.documents import Document
from core.evaluation.beir import load_beir
from core.evaluation.metrics import ndcg_at_k, recall_at_k
from core.models.embeddings import bundled_minilm_path, embed_in_batches, local_embeddings, native_bfloat16
from core.settings import load_settings
from core.sync.chunking import ChunkingOptions, chunk_document

ALL_BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")  # "auto" is torch-bf16 on a bf16 CPU
QUALITY_MARGIN = 0.003  # nDCG@10 a faster default may lose against torch
SPEED_TARGET = 2.0  # the default's first-sync docs/s over torch's


def chosen_corpus(limit: int, relevant_plus: int | None) -> list[dict]:
    """The first ``limit`` abstracts, or those relevant to a train query plus ``relevant_plus`` others."""
    corpus = scifact_corpus(None if relevant_plus is not None else limit)
    if relevant_plus is None:
        return corpus
    relevant = {doc for judged in load_beir(SCIFACT_DIR, "train").qrels.values() for doc in judged}
    others = [row for row in corpus if str(row["_id"]) not in relevant]
    return [row for row in corpus if str(row["_id"]) in relevant] + others[:relevant_plus]


def app_for(workdir: Path, docs_dir: Path, backend: str, model: str = "") -> App:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "archivist.toml"
    config.write_text(
        f"data_dir = {json.dumps(str(workdir / 'data'))}\n"
        f'[embeddings]\nbackend = "{backend}"\n'
        + (f"path = {json.dumps(model)}\n" if model else "")
        + f'[connectors.{SOURCE}]\ntype = "filesystem"\npath = {json.dumps(str(docs_dir))}\npublic = true\n',
        encoding="utf-8",
    )
    return App(load_settings(config, environ={}))


def corpus_chunks(app: App) -> tuple[list[str], list[str], int]:
    """The texts a sync embeds and the document each belongs to."""
    settings = app.settings.chunking
    options = ChunkingOptions(max_chars=settings.max_chars, overlap_chars=settings.overlap_chars)
    connector = app.connector(SOURCE)
    texts, owners, docs = [], [], 0
    for batch in connector.load(list(connector.list_refs())):
        for item in batch:
            if isinstance(item, Document):
                docs += 1
                for chunk in chunk_document(item, options):
                    texts.append(chunk.search_text())
                    owners.append(item.id.removesuffix(".md"))
    return texts, owners, docs


def quality(doc_vectors, owners, query_vectors, qrels) -> dict[str, float]:
    ids = sorted(set(owners))
    column = {doc: i for i, doc in enumerate(ids)}
    owner_index = np.array([column[o] for o in owners])
    ndcg, recall = [], []
    for query_id, vector in query_vectors.items():
        scores = doc_vectors @ vector
        best = np.full(len(ids), -np.inf)
        np.maximum.at(best, owner_index, scores)  # a document scores its best chunk
        ranked = [ids[i] for i in np.argsort(-best)[:100]]
        ndcg.append(ndcg_at_k(ranked, qrels[query_id], 10))
        recall.append(recall_at_k(ranked, qrels[query_id], 100))
    return {"ndcg@10": float(np.mean(ndcg)), "recall@100": float(np.mean(recall))}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(backend: str, data_dir: Path, model: str, conn) -> None:  # noqa: ANN001 - a multiprocessing Connection
    """One backend in its own process, as an app runs it: the parent asks, this one measures.

    Only one worker works at a time; the others wait on their pipe, so no backend's idle
    threads spin on the cores another is being timed on.
    """
    start = time.perf_counter()
    embedder = local_embeddings(model or bundled_minilm_path(), backend, data_dir)
    embedder.embed_documents(["warm-up: load the model and its tokenizer"] * 8)
    conn.send(time.perf_counter() - start)
    while True:
        kind, payload = conn.recv()
        if kind == "embed":
            start = time.perf_counter()
            vectors = embed_in_batches(embedder, payload, 64)
            conn.send((time.perf_counter() - start, np.array(vectors, dtype=np.float32)))
        elif kind == "query":
            start = time.perf_counter()
            vector = embedder.embed_query(payload)
            conn.send(((time.perf_counter() - start) * 1000, np.array(vector, dtype=np.float32)))
        elif kind == "rss":
            conn.send(peak_rss_mb())
        elif kind == "sync":
            workdir, docs_dir = payload
            app = app_for(workdir, docs_dir, backend, model)
            try:
                app.embedder.embed_documents(["warm-up"])  # the model is this process's: not timed
                engine = app.sync_engine
                start = time.perf_counter()
                report = engine.sync(app.connector(SOURCE))
                conn.send((report.added, time.perf_counter() - start))
            finally:
                close_app(app)
        else:
            return


class Workers:
    def __init__(self, data_dir: Path, backends: tuple[str, ...], model: str = "") -> None:
        self.backends = backends
        context = multiprocessing.get_context("spawn")
        self.pipes = {}
        self.processes = []
        self.first_use = {}
        # First use, one backend at a time in a process that then ends: onnx exports, int8
        # quantizes. The measuring processes start after, as an app starts once exports exist.
        for backend in backends:
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(backend, data_dir, model, child), daemon=True)
            process.start()
            self.first_use[backend] = parent.recv()
            parent.send(("stop", None))
            process.join(timeout=60)
        for backend in backends:
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(backend, data_dir, model, child), daemon=True)
            process.start()
            parent.recv()
            self.pipes[backend] = parent
            self.processes.append(process)

    def ask(self, backend: str, kind: str, payload: object = None):  # noqa: ANN201
        self.pipes[backend].send((kind, payload))
        return self.pipes[backend].recv()

    def close(self) -> None:
        for pipe in self.pipes.values():
            pipe.send(("stop", None))
        for process in self.processes:
            process.join(timeout=30)


def rotated(backends: tuple[str, ...], number: int) -> tuple[str, ...]:
    shift = number % len(backends)
    return backends[shift:] + backends[:shift]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=SCIFACT_DOCS, help="abstracts embedded for (a)-(b)")
    parser.add_argument("--relevant-plus", type=int, default=None, help="train-relevant abstracts + N others")
    parser.add_argument("--round", type=int, default=256, help="chunks per interleaved round in (a)")
    parser.add_argument("--sync-limit", type=int, default=600, help="abstracts each sync in (d) indexes")
    parser.add_argument("--sync-repeats", type=int, default=2)
    parser.add_argument(
        "--backends", default=",".join(ALL_BACKENDS), help="comma-separated, torch first (the baseline)"
    )
    parser.add_argument(
        "--model",
        default="",
        help="a local sentence-transformers directory (a fine-tune); default: the bundled one",
    )
    args = parser.parse_args()
    backends = tuple(args.backends.split(","))
    if backends[0] != "torch" or not set(backends) <= set(ALL_BACKENDS):
        parser.error(f"--backends: torch first, then any of {', '.join(ALL_BACKENDS[1:])}")

    result: dict[str, object] = {"args": vars(args), "cpu_native_bfloat16": native_bfloat16()}
    with tempfile.TemporaryDirectory(prefix="archivist-bench-") as tmp:
        work = Path(tmp)
        docs_dir = work / "docs"
        corpus = chosen_corpus(args.limit, args.relevant_plus)
        write_markdown(corpus, docs_dir)
        probe_app = app_for(work / "probe", docs_dir, "torch")
        texts, owners, docs = corpus_chunks(probe_app)
        close_app(probe_app)
        print(f"{docs} documents → {len(texts)} chunks")

        # (f) first use: each backend loads in its own process; onnx exports, int8 quantizes.
        workers = Workers(work / "exports", backends, args.model)
        print(
            "first use (load; onnx: export; int8: quantize): "
            + ", ".join(f"{b} {s:.1f} s" for b, s in workers.first_use.items())
        )
        try:
            embedding = measure(workers, args, texts, owners, docs, work, corpus)
        finally:
            workers.close()

    torch_ndcg = embedding["torch"]["ndcg@10"]
    eligible = [b for b in backends if embedding[b]["ndcg@10"] >= torch_ndcg - QUALITY_MARGIN]
    default = max(eligible, key=lambda b: embedding[b]["sync_speedup_vs_torch"])
    print()
    print(
        f"{'backend':10} {'docs/s':>7} {'×torch':>7} {'sync d/s':>8} {'×torch':>7} {'q p50':>6} "
        f"{'q p99':>6} {'RSS MB':>7} {'nDCG@10':>8} {'R@100':>6} {'cos min':>7}"
    )
    for backend in backends:
        row = embedding[backend]
        print(
            f"{backend:10} {row['docs_per_s']:7.1f} {row['speedup_vs_torch_median_round']:7.2f} "
            f"{row['sync_docs_per_s']:8.1f} {row['sync_speedup_vs_torch']:7.2f} {row['query_p50_ms']:6.1f} "
            f"{row['query_p99_ms']:6.1f} {row['peak_rss_mb']:7.0f} {row['ndcg@10']:8.4f} "
            f"{row['recall@100']:6.4f} {row['cosine_to_torch_min']:7.4f}"
        )
    speed = embedding[default]["sync_speedup_vs_torch"]
    print(
        f"default by this run: {default} (fastest sync within {QUALITY_MARGIN} nDCG@10 of torch); "
        f"its sync ×{speed:.2f} torch's (target ≥ {SPEED_TARGET}: "
        f"{'meets' if speed >= SPEED_TARGET else 'MISSES'} target)"
    )
    result |= {
        "documents": docs,
        "chunks": len(texts),
        "first_use_s": workers.first_use,
        "backends": embedding,
        "default_by_measurement": default,
    }
    print(f"wrote {write_result('embedding_backends', result)}")


def measure(workers: Workers, args, texts, owners, docs, work: Path, corpus: list[dict]) -> dict[str, dict]:  # noqa: ANN001
    backends = workers.backends
    # (a) embedder alone, interleaved rounds.
    spent = dict.fromkeys(backends, 0.0)
    vectors: dict[str, list] = {b: [] for b in backends}
    speedups: dict[str, list[float]] = {b: [] for b in backends}
    for number, start_at in enumerate(range(0, len(texts), args.round)):
        piece = texts[start_at : start_at + args.round]
        took = {}
        for backend in rotated(backends, number):
            took[backend], block = workers.ask(backend, "embed", piece)
            vectors[backend].append(block)
            spent[backend] += took[backend]
        for backend in backends:
            speedups[backend].append(took["torch"] / took[backend])
        if number % 5 == 0:
            done = start_at + len(piece)
            print(
                f"  round {number}: {done}/{len(texts)} chunks; "
                + ", ".join(f"{b} ×{took['torch'] / took[b]:.2f}" for b in backends),
                flush=True,
            )
    arrays = {b: np.concatenate(v) for b, v in vectors.items()}
    embedding: dict[str, dict] = {}
    for backend in backends:
        cosine = np.sum(arrays[backend] * arrays["torch"], axis=1)
        embedding[backend] = {
            "seconds": spent[backend],
            "docs_per_s": docs / spent[backend],
            "chunks_per_s": len(texts) / spent[backend],
            "speedup_vs_torch_median_round": median(speedups[backend]),
            "cosine_to_torch_min": float(cosine.min()),
            "cosine_to_torch_mean": float(cosine.mean()),
            "peak_rss_mb": workers.ask(backend, "rss"),  # loaded and embedding, before any sync
        }

    # (b) and (c): queries one at a time, interleaved; their vectors score the corpus.
    dataset = load_beir(SCIFACT_DIR, "train")
    in_corpus = set(owners)
    queries = {q: t for q, t in dataset.queries.items() if set(dataset.qrels[q]) & in_corpus}
    latencies: dict[str, list[float]] = {b: [] for b in backends}
    query_vectors: dict[str, dict[str, np.ndarray]] = {b: {} for b in backends}
    for number, (query_id, text) in enumerate(queries.items()):
        for backend in rotated(backends, number):
            took_ms, query_vectors[backend][query_id] = workers.ask(backend, "query", text)
            latencies[backend].append(took_ms)
    for backend in backends:
        embedding[backend] |= quality(arrays[backend], owners, query_vectors[backend], dataset.qrels)
        embedding[backend] |= {
            "queries": len(queries),
            "query_p50_ms": percentile(latencies[backend], 50),
            "query_p99_ms": percentile(latencies[backend], 99),
        }
    print(f"  {len(queries)} train queries scored", flush=True)

    # (d) first sync through the real pipeline, interleaved.
    sync_docs = work / "sync-docs"
    write_markdown(corpus[: args.sync_limit], sync_docs)
    sync_rates: dict[str, list[float]] = {b: [] for b in backends}
    sync_speedups: dict[str, list[float]] = {b: [] for b in backends}
    for repeat in range(args.sync_repeats):
        took = {}
        for backend in rotated(backends, repeat):
            added, took[backend] = workers.ask(
                backend, "sync", (work / f"sync-{backend}-{repeat}", sync_docs)
            )
            sync_rates[backend].append(added / took[backend])
            print(f"  sync {repeat} {backend}: {added} docs in {took[backend]:.1f} s", flush=True)
        for backend in backends:
            sync_speedups[backend].append(took["torch"] / took[backend])
    for backend in backends:
        embedding[backend] |= {
            "sync_docs_per_s": median(sync_rates[backend]),
            "sync_speedup_vs_torch": median(sync_speedups[backend]),
            "sync_over_embedder": median(sync_rates[backend]) / embedding[backend]["docs_per_s"],
        }
    return embedding


if __name__ == "__main__":
    main()
