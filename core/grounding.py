"""Checking an answer against its context, and a quoted answer when the check fails.

Small local models often state a figure that is not in the documents ("24 days"
where the page says 27). Every number in an answer must appear in the passages
it was given; if one does not, the assistant answers instead with the passage
sentences closest to the question, quoted and cited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKUP = re.compile(r"[*_`#>|]+")
MIN_SENTENCE_WORDS = 4


def _numbers(text: str) -> set[str]:
    return {number.replace(",", "") for number in _NUMBER.findall(text)}


def ungrounded_numbers(answer: str, context: Sequence[str]) -> set[str]:
    """Numbers in the answer (citation markers aside) that no passage contains."""
    without_citations = re.sub(r"\[\d+(?:\s*,\s*\d+)*\]", "", answer)
    known = set().union(*(_numbers(text) for text in context)) if context else set()
    return _numbers(without_citations) - known


def _sentences(text: str) -> list[str]:
    found = []
    for piece in _SENTENCE_SPLIT.split(text):
        sentence = _MARKUP.sub("", piece).strip(" -•\t")
        if len(sentence.split()) >= MIN_SENTENCE_WORDS:
            found.append(sentence)
    return found


def quoted_answer(question: str, passages: Sequence[str], embedder: Embeddings, limit: int = 2) -> str:
    """The ``limit`` passage sentences most similar to the question, each cited ``[n]``."""
    candidates = [(index, s) for index, text in enumerate(passages, start=1) for s in _sentences(text)]
    if not candidates:
        return ""
    vectors = np.asarray(embedder.embed_documents([question] + [s for _, s in candidates]), dtype=np.float32)
    scores = vectors[1:] @ vectors[0]
    best = sorted(np.argsort(-scores)[:limit])  # keep the documents' own order
    return " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in best)
