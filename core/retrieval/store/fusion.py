"""Fusing a vector ranking with a full-text ranking into one list."""

from __future__ import annotations

from collections.abc import Sequence


def relative_score_fusion(
    dense: Sequence[tuple[str, float]], sparse: Sequence[tuple[str, float]], alpha: float
) -> list[tuple[str, float]]:
    """Min-max normalise each list's scores, then weight them: ``alpha`` for dense.

    This is Weaviate's default fusion, so both store backends rank alike.
    """
    fused: dict[str, float] = {}
    for weight, results in ((alpha, dense), (1.0 - alpha, sparse)):
        if not results or weight == 0:
            continue
        scores = [score for _, score in results]
        low, high = min(scores), max(scores)
        span = high - low
        for key, score in results:
            normalised = (score - low) / span if span > 0 else 1.0
            fused[key] = fused.get(key, 0.0) + weight * normalised
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)
