"""Reading a BEIR-format dataset: corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.documents import Acl, Document
from core.errors import InputError
from core.sync.connector import Batch

BATCH_SIZE = 256


@dataclass(frozen=True)
class BeirDataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]  # only the queries that have judgements in the split
    qrels: dict[str, dict[str, int]]


def _jsonl(path: Path) -> Iterator[dict[str, str]]:
    if not path.is_file():
        msg = f"{path} is missing; a BEIR dataset has corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv"
        raise InputError(msg)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                yield {"_id": str(row["_id"]), "title": row.get("title") or "", "text": row.get("text") or ""}
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                msg = f"{path}:{number}: not a BEIR record ({exc})"
                raise InputError(msg) from None


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        splits = sorted(p.stem for p in path.parent.glob("*.tsv"))
        msg = f"{path} is missing (splits here: {', '.join(splits) or 'none'})"
        raise InputError(msg)
    judged: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # header line
            if len(row) < 3:
                msg = f"{path}:{number}: expected query-id, corpus-id and score"
                raise InputError(msg)
            judged.setdefault(row[0], {})[row[1]] = int(row[2])
    return judged


def load_beir(directory: Path, split: str = "test") -> BeirDataset:
    corpus = {row["_id"]: (row["title"], row["text"]) for row in _jsonl(directory / "corpus.jsonl")}
    qrels = _qrels(directory / "qrels" / f"{split}.tsv")
    queries = {row["_id"]: row["text"] for row in _jsonl(directory / "queries.jsonl") if row["_id"] in qrels}
    if not queries:
        msg = f"no query in {directory / 'queries.jsonl'} has judgements in the {split!r} split"
        raise InputError(msg)
    return BeirDataset(directory.name, corpus, queries, {q: qrels[q] for q in queries})


@dataclass
class BeirConnector:
    """The corpus as a source, so evaluation indexes it through the real sync pipeline."""

    dataset: BeirDataset
    name: str = "beir"
    kind: str = "beir"

    def describe(self) -> str:
        return f"BEIR corpus {self.dataset.name} ({len(self.dataset.corpus)} documents)"

    def load_all(self) -> Iterator[Batch]:
        batch: Batch = []
        for doc_id, (title, text) in self.dataset.corpus.items():
            batch.append(Document(id=doc_id, source=self.name, title=title, text=text, acl=Acl.everyone()))
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if batch:
            yield batch
