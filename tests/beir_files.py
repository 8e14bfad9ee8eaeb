"""Tiny BEIR-format datasets on disk (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) for tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_beir(
    directory: Path,
    corpus: dict[str, tuple[str, str]],
    queries: dict[str, str],
    qrels: dict[str, str],
    split: str,
) -> Path:
    """Write the dataset; ``qrels`` maps a query id to its one relevant document id."""
    (directory / "qrels").mkdir(parents=True)
    with (directory / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (directory / "queries.jsonl").open("w") as handle:
        for query_id, text in queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    lines = "".join(f"{query}\t{doc}\t1\n" for query, doc in qrels.items())
    (directory / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + lines)
    return directory
