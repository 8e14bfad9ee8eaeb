"""An optional cross-encoder that re-orders retrieved passages, loaded from a local model directory.

Off by default (``[retrieval] reranker_path = ""``). When set, retrieval fetches
``rerank_candidates`` passages and the cross-encoder, which reads question and
passage together, picks the ``top_k`` the model sees. Nothing is downloaded: the
path must hold a sentence-transformers CrossEncoder (or a Hugging Face sequence
classification model with one output).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from core.errors import ConfigError
from core.retrieval.store.base import SearchHit

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    def __init__(self, path: Path) -> None:
        if not (path / "config.json").is_file():
            msg = (
                f"retrieval.reranker_path: {path} is not a local cross-encoder model directory "
                "(no config.json); set it to a downloaded model or leave it empty to turn reranking off"
            )
            raise ConfigError(msg)
        self.path = path
        self._model = None
        self._lock = threading.Lock()

    def _loaded(self):  # noqa: ANN202 - sentence_transformers is imported only when reranking is on
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                log.info("loading the reranker from %s", self.path)
                self._model = CrossEncoder(str(self.path), local_files_only=True, device="cpu")
            return self._model

    def scores(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return [float(s) for s in self._loaded().predict([(query, text) for text in texts])]

    def rerank(self, query: str, hits: list[SearchHit], top_k: int) -> list[SearchHit]:
        """The ``top_k`` hits the cross-encoder scores highest, best first; ``score`` becomes its score."""
        scores = self.scores(query, [hit.chunk.search_text() for hit in hits])
        ranked = sorted(zip(scores, range(len(hits)), strict=True), reverse=True)[:top_k]
        return [dataclasses.replace(hits[i], score=score) for score, i in ranked]
