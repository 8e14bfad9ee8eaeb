"""Which mode answers a question, and why.

Precedence, first that applies: a mode given with the question (``--mode``), the
channel's mode (``[slack]``/``[discord] channel_modes``), ``[assistant] default_mode``.
Only ``auto`` asks the semantic router: it embeds the example questions of each
``[router.routes.MODE]`` once with the configured embedder, scores a question against
each route as the mean cosine similarity of its ``top_k`` nearest examples, and picks
the best route if its score reaches ``threshold``, else the ``default`` route. Routes
that need a fine-tuned model are skipped while none is available.

One more rule, for auto-routed questions only: when retrieval finds no passage above
the relevance floor, the fine-tuned model (if any) answers from what it learned instead
of an abstention (``when_nothing_found``).

Every decision carries a reason a person can read, shown by ``archivist ask --json``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from langchain_core.embeddings import Embeddings

from core.answering.answers import Mode, ModeChoice, Question
from core.errors import ConfigError
from core.settings import RouterSettings

NEEDS_FINETUNED: frozenset[Mode] = frozenset({"finetuned", "hybrid"})


@dataclass(frozen=True)
class Route:
    mode: Mode
    reason: str
    automatic: bool = False  # chosen by the semantic router, so later rules may still change it


class Router:
    def __init__(self, settings: RouterSettings, default_mode: ModeChoice, embedder: Embeddings) -> None:
        self._settings = settings
        self._default_mode = default_mode
        self._embedder = embedder
        self._lock = threading.Lock()
        self._examples: dict[Mode, np.ndarray] | None = None

    def decide(self, question: Question, text: str, finetuned_available: bool) -> Route:
        """The route for ``question``; ``text`` is what the router compares (the standalone query)."""
        if question.mode is not None:
            chosen, why = question.mode, question.mode_reason or f"mode {question.mode} given"
        else:
            chosen, why = self._default_mode, f"[assistant] default_mode is {self._default_mode}"
        if chosen != "auto":
            return Route(chosen, why)
        route = self.semantic(text, finetuned_available)
        prefix = f"{why}: " if question.mode is not None else ""
        return Route(route.mode, prefix + route.reason, automatic=True)

    def semantic(self, text: str, finetuned_available: bool) -> Route:
        scores = self.scores(text)
        skipped = sorted(mode for mode in scores if mode in NEEDS_FINETUNED and not finetuned_available)
        usable = {mode: score for mode, score in scores.items() if mode not in skipped}
        note = f" ({', '.join(skipped)} skipped: no fine-tuned model)" if skipped else ""
        default = self._settings.default
        if default in NEEDS_FINETUNED and not finetuned_available:
            default = "rag"
        if not usable:
            reason = "no [router.routes] examples configured" if not scores else "no usable route"
            return Route(default, f"{reason}{note}; default route {default}", automatic=True)
        ranked = sorted(usable.items(), key=lambda item: item[1], reverse=True)
        listed = " vs ".join(f"{mode} {score:.2f}" for mode, score in ranked)
        best, best_score = ranked[0]
        threshold = self._settings.threshold
        if best_score < threshold:
            reason = f"no route is close enough ({listed}; threshold {threshold:.2f}){note}"
            return Route(default, f"{reason}; default route {default}", automatic=True)
        return Route(best, f"nearest examples: {listed}{note}", automatic=True)

    def after_empty_retrieval(self, route: Route, finetuned_available: bool) -> Route:
        """An auto-routed question the documents don't cover may go to the fine-tuned model."""
        if (
            not route.automatic
            or route.mode == "finetuned"
            or self._settings.when_nothing_found != "finetuned"
            or not finetuned_available
        ):
            return route
        reason = f"{route.reason}; no passage passed the relevance floor, so the fine-tuned model answers"
        return Route("finetuned", reason, automatic=True)

    def scores(self, text: str) -> dict[Mode, float]:
        """Each route's mean cosine similarity of its ``top_k`` examples nearest to ``text``."""
        examples = self._example_vectors()
        if not examples:
            return {}
        query = _unit(np.asarray(self._embedder.embed_query(text), dtype=np.float32))
        scores: dict[Mode, float] = {}
        for mode, vectors in examples.items():
            similarities = np.sort(vectors @ query)[::-1][: self._settings.top_k]
            scores[mode] = float(similarities.mean())
        return scores

    def _example_vectors(self) -> dict[Mode, np.ndarray]:
        """Embedded once, on first use: a bot that never routes automatically never embeds them."""
        with self._lock:
            if self._examples is None:
                examples: dict[Mode, np.ndarray] = {}
                for mode, route in self._settings.routes.items():
                    texts = [text.strip() for text in route.examples if text.strip()]
                    if not texts:
                        msg = f"router.routes.{mode}.examples: give at least one example question"
                        raise ConfigError(msg)
                    vectors = np.asarray(self._embedder.embed_documents(texts), dtype=np.float32)
                    examples[mode] = _unit(vectors)
                self._examples = examples
            return self._examples


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)
