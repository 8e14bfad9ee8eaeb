"""`archivist eval retrieval`: metrics, dataset reading and a small end-to-end run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.app import App
from core.errors import InputError
from core.evaluation.beir import load_beir
from core.evaluation.metrics import mrr_at_k, ndcg_at_k, percentile, recall_at_k
from core.evaluation.retrieval import evaluate_pipeline, parse_variants
from tests.beir_files import write_beir

CORPUS = {
    "d1": (
        "Sourdough",
        "Sourdough bread rises with wild yeast and lactic acid bacteria over a long ferment.",
    ),
    "d2": ("Photosynthesis", "Plants convert light, water and carbon dioxide into glucose and oxygen."),
    "d3": ("Volcanoes", "Magma rising through the crust erupts as lava, ash and volcanic gases."),
    "d4": ("Tides", "The gravitational pull of the moon raises ocean tides twice a day."),
    "d5": ("Vaccines", "Vaccines train the immune system with harmless antigens to prevent disease."),
}
QUERIES = {
    "q1": "How does the moon cause tides?",
    "q2": "What do plants make from sunlight?",
    "q3": "unjudged",
}
QRELS = {"q1": "d4", "q2": "d2"}


def _write(directory: Path) -> Path:
    return write_beir(directory, CORPUS, QUERIES, QRELS, "test")


def test_metrics_match_hand_computed_values() -> None:
    relevant = {"a": 1, "b": 1}
    ranked = ["x", "a", "y", "b"]
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(expected)
    assert recall_at_k(ranked, relevant, 2) == 0.5 and recall_at_k(ranked, relevant, 10) == 1.0
    assert mrr_at_k(ranked, relevant, 10) == 0.5 and mrr_at_k(["x"], relevant, 10) == 0.0
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile([1.0] * 99 + [50.0], 0.99) == 1.0


def test_dataset_keeps_only_judged_queries(tmp_path: Path) -> None:
    dataset = load_beir(_write(tmp_path / "tiny"), "test")
    assert set(dataset.queries) == {"q1", "q2"} and dataset.qrels["q1"] == {"d4": 1}


def test_bad_datasets_get_clear_messages(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="corpus.jsonl is missing"):
        load_beir(tmp_path, "test")
    directory = _write(tmp_path / "tiny")
    with pytest.raises(InputError, match=r"dev.tsv is missing \(splits here: test\)"):
        load_beir(directory, "dev")
    (directory / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\nnot json\n')
    with pytest.raises(InputError, match="corpus.jsonl:2"):
        load_beir(directory, "test")


def test_variants_are_parsed_and_checked() -> None:
    assert [(v.name, v.alpha) for v in parse_variants("dense,bm25,hybrid,hybrid@0.3", 0.5)] == [
        ("dense", 1.0),
        ("bm25", 0.0),
        ("hybrid@0.5", 0.5),
        ("hybrid@0.3", 0.3),
    ]
    for bad in ("hybrid@2", "hybrid@x", "splade", ""):
        with pytest.raises(InputError):
            parse_variants(bad, 0.5)


def test_pipeline_ranks_the_judged_documents_first(app: App, tmp_path: Path) -> None:
    scores = evaluate_pipeline(app, _write(tmp_path / "tiny"), "test", "dense,bm25,hybrid")
    by_name = {s.variant: s.as_dict() for s in scores}
    assert set(by_name) == {"dense", "bm25", "hybrid@0.5"}
    assert by_name["dense"]["ndcg@10"] == 1.0 and by_name["hybrid@0.5"]["recall@10"] == 1.0
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "latency_ms_p50", "latency_ms_p99"} <= set(
        by_name["bm25"]
    )
    assert app.store.count() == 0  # the throwaway index never touches the real one
    assert not list(app.settings.data_dir.glob("eval-*"))
