"""Splitting long text to fit Slack's limits without losing a character of content.

Cuts fall on paragraph breaks, then line breaks, then sentence ends, then spaces;
only a single word longer than the limit is cut inside. Joining the pieces with
the whitespace that stood at each cut gives back the text.
"""

from __future__ import annotations

import re

# Coarsest first; each pattern captures the whitespace it cuts at, so nothing is lost.
_LEVELS = (
    re.compile(r"(\n[ \t]*\n\s*)"),  # paragraphs
    re.compile(r"(\n)"),  # lines (lists, code)
    re.compile(r"(?<=[.!?:;])(\s+)"),  # sentences
    re.compile(r"(\s+)"),  # words
)


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at the most natural boundary."""
    if limit < 1:
        msg = "limit must be positive"
        raise ValueError(msg)
    text = text.strip()
    if not text:
        return []
    pieces: list[str] = []
    current = ""
    for sep, unit in _units(text, limit, 0):
        if current and len(current) + len(sep) + len(unit) <= limit:
            current += sep + unit
            continue
        if current:
            pieces.append(current)
        current = unit
    if current:
        pieces.append(current)
    return pieces


def _units(text: str, limit: int, level: int) -> list[tuple[str, str]]:
    """(separator before, unit) pairs, each unit ≤ limit."""
    if len(text) <= limit:
        return [("", text)]
    if level == len(_LEVELS):
        return [("", text[i : i + limit]) for i in range(0, len(text), limit)]
    parts = _LEVELS[level].split(text)
    units: list[tuple[str, str]] = []
    sep = ""
    for index, part in enumerate(parts):
        if index % 2:  # a captured separator
            sep = part
            continue
        if not part:
            continue
        inner = _units(part, limit, level + 1)
        inner[0] = (sep, inner[0][1])
        units += inner
        sep = ""
    return units
