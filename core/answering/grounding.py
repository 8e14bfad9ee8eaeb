"""Checking an answer against its context, and catching a model that loops.

Small local models often state a figure that is not in the documents ("24 days"
where the page says 27). Every number in an answer must appear in the passages
it was given; the assistant checks each sentence before showing it and, when one
fails, answers with the passages' own sentences instead (core.answering.extractive).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
# Words too common to show two sentences are about the same thing.
_COMMON = frozenset(
    "that this with have from your they will each were what when which their there about".split()
)


def _numbers(text: str) -> set[str]:
    return {number.replace(",", "") for number in _NUMBER.findall(text)}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _COMMON}


def ungrounded_numbers(answer: str, context: Sequence[str]) -> set[str]:
    """Numbers in the answer that no passage sentence on the same subject contains.

    "24 vacation days" is grounded only by a passage sentence holding 24 that also
    shares a word with the answer's sentence, not by a "24/7" elsewhere.
    """
    supports = [(_numbers(unit), _words(unit)) for text in context for unit in _units(text)]
    missing: set[str] = set()
    for unit in _units(re.sub(r"\[\d+(?:\s*,\s*\d+)*\]", "", answer)):
        words = _words(unit)
        for number in _numbers(unit):
            if not any(number in numbers and words & shared for numbers, shared in supports):
                missing.add(number)
    return missing


def _units(text: str) -> list[str]:
    return [u.strip() for u in _SENTENCE_SPLIT.split(text) if u.strip()]


# Loops often vary their tails ("... business commutes" / "... business comm"); compare heads.
_LOOP_PREFIX_CHARS = 60


def is_looping(text: str, times: int = 3) -> bool:
    """True once a sentence (by its first words) has been said ``times`` times: the model is stuck."""
    heads = [u.lower()[:_LOOP_PREFIX_CHARS] for u in _units(text) if len(u) >= 12]
    return any(heads.count(head) >= times for head in set(heads))


def without_repeats(text: str) -> str:
    """Drop sentences already said (small models loop), keeping the answer's layout.

    Paragraph breaks, list lines and code blocks stay as written; inside a fenced
    code block nothing is dropped, since repeated code lines are legitimate.
    """
    seen: set[str] = set()
    kept: list[str] = []
    in_code = False
    pieces = re.split(f"({_SENTENCE_SPLIT.pattern})", text)  # sentences with the gaps between them
    for unit, gap in zip(pieces[::2], [*pieces[1::2], ""], strict=True):
        if unit.strip().startswith(("```", "~~~")):
            in_code = not in_code
        key = re.sub(r"^(\d+\.|[-*])\s*", "", unit.strip()).lower()
        if not in_code and len(key) >= 12 and key in seen:
            continue
        seen.add(key)
        kept.append(unit + gap)
    return "".join(kept).strip()
