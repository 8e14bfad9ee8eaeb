"""`archivist finetune retriever`: adapt the local embedder to a team's own questions.

(question, passage) pairs from a BEIR-format dataset train the local
sentence-transformers model with MultipleNegativesRankingLoss: in each batch,
every other passage is a negative for a question. Queries are split into a
training fold and a held-out fold by a hash of their ids, so the split never
depends on file order; the held-out fold is scored (dense nDCG@10 through the
retrieval evaluation) with the model before and after. The tuned model is saved
under the data dir and registered as an embedder version. Selecting it
(``[embeddings] path``) makes the next ``archivist sync`` rebuild the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from core.errors import InputError
from core.evaluation.beir import BeirDataset, load_beir
from core.evaluation.embedding_cache import CachedEmbeddings
from core.evaluation.retrieval import Variant, evaluate, index_dataset
from core.models.embeddings import OnnxEmbeddings, embedder_identity, local_embeddings, local_model_path
from core.models.registry import ModelVersion
from core.settings import EmbeddingSettings
from core.sync.engine import Progress, ProgressCallback

if TYPE_CHECKING:
    from core.app import App

log = logging.getLogger(__name__)

# 2e-5 is the usual rate for MiniLM-sized encoders; much higher and a small set makes it
# forget what pre-training taught it. Warm up over the first tenth of the steps.
LEARNING_RATE = 2e-5
WARMUP_FRACTION = 0.1
SEED = 13  # batches, dropout and the fold split are the same on every run
DENSE = Variant("dense", 1.0)


@dataclass(frozen=True)
class TuningOptions:
    split: str = "train"
    epochs: int = 1
    batch_size: int = 16
    max_pairs: int = 0  # 0: every training pair
    holdout: float = 0.2  # share of queries kept out of training and scored before and after
    eval_docs: int = 0  # score against the relevant documents plus this many others (0: whole corpus)
    learning_rate: float = LEARNING_RATE
    name: str = ""
    out: Path | None = None

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            msg = "--epochs must be at least 1 and --batch-size at least 2 (one pair alone teaches nothing)"
            raise InputError(msg)
        if not 0 <= self.holdout < 1:
            msg = "--holdout must be at least 0 and below 1"
            raise InputError(msg)


@dataclass(frozen=True)
class RetrieverTuning:
    version: ModelVersion
    pairs: int
    steps: int
    loss_first: float  # mean loss over the first tenth of the steps
    loss_last: float  # and over the last tenth
    heldout_queries: int
    eval_docs: int
    before: dict[str, float]
    after: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.version.name,
            "path": self.version.model,
            "base_model": self.version.base_model,
            "training_data_hash": self.version.training_data_hash,
            "pairs": self.pairs,
            "steps": self.steps,
            "loss_first": round(self.loss_first, 4),
            "loss_last": round(self.loss_last, 4),
            "heldout_queries": self.heldout_queries,
            "eval_docs": self.eval_docs,
            "before": self.before,
            "after": self.after,
        }


def held_out(query_id: str, fraction: float) -> bool:
    """A query's fold, from a hash of its id: stable across runs, machines and file orders."""
    digest = hashlib.sha256(query_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def passage_text(title: str, text: str) -> str:
    """A document as the index embeds it (title, blank line, text)."""
    return f"{title}\n\n{text}" if title else text


def training_pairs(dataset: BeirDataset, query_ids: list[str], max_pairs: int = 0) -> list[tuple[str, str]]:
    pairs = []
    for query_id in sorted(query_ids):
        for doc_id, gain in sorted(dataset.qrels[query_id].items()):
            if gain > 0 and doc_id in dataset.corpus:
                pairs.append((dataset.queries[query_id], passage_text(*dataset.corpus[doc_id])))
    if max_pairs and len(pairs) > max_pairs:
        pairs = random.Random(SEED).sample(pairs, max_pairs)
    return pairs


def batches(pairs: list[tuple[str, str]], size: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    """Shuffled batches in which no question or passage repeats: a repeat would be its own negative."""
    order = pairs[:]
    rng.shuffle(order)
    filled: list[list[tuple[str, str]]] = []
    for pair in order:
        for batch in filled:
            if len(batch) < size and all(pair[0] != q and pair[1] != p for q, p in batch):
                batch.append(pair)
                break
        else:
            filled.append([pair])
    return [batch for batch in filled if len(batch) > 1]


def fingerprint(pairs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for query, passage in sorted(pairs):
        digest.update(json.dumps([query, passage]).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainingRun:
    steps: int
    losses: list[float]


def train(
    base_path: str,
    pairs: list[tuple[str, str]],
    out: Path,
    options: TuningOptions,
    progress: ProgressCallback | None = None,
) -> TrainingRun:
    """Fine-tune a copy of the model at ``base_path`` and save it to ``out``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(base_path, device=device, local_files_only=True)  # a fresh copy to train
    loss_fn = MultipleNegativesRankingLoss(model)
    plan = [batches(pairs, options.batch_size, rng) for _ in range(options.epochs)]
    total = sum(len(epoch) for epoch in plan)
    if total == 0:
        msg = "too few distinct pairs to make a batch of two; give the dataset more judged queries"
        raise InputError(msg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP_FRACTION * total), total)
    model.train()
    losses: list[float] = []
    for epoch in plan:
        for batch in epoch:
            features = [model.preprocess([q for q, _ in batch]), model.preprocess([p for _, p in batch])]
            features = [{k: v.to(device) if hasattr(v, "to") else v for k, v in f.items()} for f in features]
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            if progress:
                progress(Progress("training", len(losses), total, "training"))
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return TrainingRun(total, losses)


def _heldout(dataset: BeirDataset, query_ids: list[str], eval_docs: int) -> BeirDataset:
    """The held-out queries against the whole corpus, or against their relevant documents
    plus the first ``eval_docs`` others (a smaller, easier corpus that embeds faster)."""
    queries = {q: dataset.queries[q] for q in sorted(query_ids)}
    qrels = {q: dataset.qrels[q] for q in queries}
    corpus = dataset.corpus
    if eval_docs:
        relevant = {doc for judged in qrels.values() for doc in judged if doc in dataset.corpus}
        others = [doc for doc in dataset.corpus if doc not in relevant][:eval_docs]
        corpus = {doc: dataset.corpus[doc] for doc in dataset.corpus if doc in relevant or doc in others}
    return BeirDataset(dataset.name, corpus, queries, qrels)


def dense_scores(
    app: App,
    embedder: Embeddings,
    identity: str,
    dataset: BeirDataset,
    progress: ProgressCallback | None = None,
) -> dict[str, float]:
    """nDCG@10 and recall of dense retrieval with ``embedder``, through a throwaway index."""
    cached = CachedEmbeddings(embedder, app.settings.data_dir / "cache" / "embeddings.sqlite", identity)
    workdir = Path(tempfile.mkdtemp(prefix="eval-", dir=app.settings.data_dir))
    try:
        store = app.build_store(workdir, "beir", cached.dimensions, identity)
        batch = app.settings.embeddings.batch_size
        index_dataset(store, cached, app.chunking_options(), dataset, batch, progress)
        scores = evaluate(store, cached, dataset, DENSE).as_dict()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {key: float(scores[key]) for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10")}  # type: ignore[arg-type]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def finetune_retriever(
    app: App,
    directory: Path,
    options: TuningOptions,
    progress_view: Callable[[], Any] | None = None,
) -> RetrieverTuning:
    options.check()
    settings = app.settings.embeddings
    if settings.provider != "local":
        msg = "fine-tuning needs a local embedder ([embeddings] provider = 'local'), not an endpoint's"
        raise InputError(msg)
    if not directory.is_dir():
        msg = f"{directory} is not a directory; give a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/)"
        raise InputError(msg)
    dataset = load_beir(directory, options.split)
    heldout = [q for q in dataset.queries if held_out(q, options.holdout)]
    trained_on = [q for q in dataset.queries if q not in set(heldout)]
    pairs = training_pairs(dataset, trained_on, options.max_pairs)
    if len(pairs) < 2:
        msg = f"{directory}: only {len(pairs)} (question, passage) pair(s) to train on; at least 2 are needed"
        raise InputError(msg)
    base_path, base_id = local_model_path(settings), embedder_identity(settings)
    data_hash = fingerprint(pairs)
    recipe = f"{data_hash}:{options.epochs}:{options.batch_size}:{options.learning_rate}:{base_id}"
    name = options.name or f"embedder-{dataset.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"
    out = options.out or app.settings.data_dir / "models" / name
    evaluation = _heldout(dataset, heldout, options.eval_docs) if heldout else None

    def embedder(path: str) -> Embeddings:
        # The configured backend scores before and after; for ONNX the tuned weights are exported
        # here, so the first sync with the new embedder runs at once and as fast as the base one.
        backend, data_dir = settings.backend, app.settings.data_dir
        return local_embeddings(path, backend, data_dir, settings.batch_size, threads=settings.threads)

    view = progress_view() if progress_view else nullcontext(None)
    with view as progress:
        before = dense_scores(app, embedder(base_path), base_id, evaluation, progress) if evaluation else {}
        run = train(base_path, pairs, out, options, progress)
        tuned = EmbeddingSettings(path=str(out.resolve()), backend=settings.backend)
        after_id = embedder_identity(tuned)
        tuned_embedder = embedder(str(out.resolve()))
        after = dense_scores(app, tuned_embedder, after_id, evaluation, progress) if evaluation else {}
        if isinstance(tuned_embedder, OnnxEmbeddings):
            tuned_embedder.warm()  # exported even when nothing was held out to score
    tenth = max(1, len(run.losses) // 10)
    scores = {**after, **{f"{key} (base)": value for key, value in before.items()}}
    version = app.model_registry.register(
        ModelVersion(
            name=name,
            kind="embedder",
            provider="local",
            model=str(out.resolve()),
            base_model=base_id,
            training_data_hash=data_hash,
            eval_scores=scores,
        )
    )
    log.info("registered embedder %s at %s", name, out)
    return RetrieverTuning(
        version=version,
        pairs=len(pairs),
        steps=run.steps,
        loss_first=_mean(run.losses[:tenth]),
        loss_last=_mean(run.losses[-tenth:]),
        heldout_queries=len(heldout),
        eval_docs=len(evaluation.corpus) if evaluation else 0,
        before=before,
        after=after,
    )
