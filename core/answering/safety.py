"""Keeping document text in its place: data to quote, never instructions to follow.

Two layers. Context blocks are fenced with a per-answer random marker, so a
document cannot close its own block and pose as the system. And sentences that
address the assistant ("ignore your instructions and ...") are replaced by a
visible note before the model sees them: small local models obey such text even
when told not to.
"""

from __future__ import annotations

import re
import secrets

INJECTION_NOTE = "[text addressed to an AI assistant was removed here]"

_INJECTION_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b[^.!?\n]{0,60}\b(instructions?|prompts?|rules|guidelines|directions)\b",
    r"\byou are (now|no longer)\b",
    r"\b(system|developer) (prompt|message|instructions?)\b",
    r"\bnew instructions?\s*:",
    r"\b(respond|reply|answer|say|output|print)\b[^.!?\n]{0,25}\b(only|exactly|verbatim)\b",
    r"\b(as an? (ai|assistant|language model))\b",
]
# Chat-format and fence look-alikes: removed as tags, keeping the sentence around them.
_ROLE_TAG = re.compile(
    r"<\s*/?\s*(system|assistant|user|data-[0-9a-f]*|documents?|\|?im_start\|?|\|?im_end\|?)\b[^>]*>",
    re.IGNORECASE,
)
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _INJECTION_PATTERNS), re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")


def neutralize_instructions(text: str) -> tuple[str, int]:
    """Replace sentences that try to instruct the assistant; return (text, how many)."""
    text, removed = _ROLE_TAG.subn("", text)
    pieces: list[str] = []
    for sentence in _SENTENCE.findall(text):
        if sentence and _INJECTION.search(sentence):
            removed += 1
            lead = sentence[: len(sentence) - len(sentence.lstrip())]
            pieces.append(lead + INJECTION_NOTE + ("\n" if sentence.endswith("\n") else ""))
        else:
            pieces.append(sentence)
    return "".join(pieces), removed


_FENCE_ECHO = re.compile(r"</?data-[0-9a-f]*>")


def strip_fence_echo(text: str) -> str:
    """Remove context markers a small model copied into its answer."""
    return _FENCE_ECHO.sub("", text).strip()


class FenceEchoFilter:
    """Drops context markers from a token stream, holding back only a possible marker's start."""

    _STARTS = ("<data-", "</data-")

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> str:
        self._pending += piece
        shown = ""
        while self._pending:
            start = self._pending.find("<")
            if start < 0:
                shown, self._pending = shown + self._pending, ""
                break
            shown, self._pending = shown + self._pending[:start], self._pending[start:]
            match = _FENCE_ECHO.match(self._pending)
            if match:
                self._pending = self._pending[match.end() :]
                continue
            if self._could_become_marker(self._pending):
                break  # wait for more tokens
            shown, self._pending = shown + self._pending[0], self._pending[1:]
        return shown

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return strip_fence_echo(rest) if _FENCE_ECHO.search(rest) else rest

    def _could_become_marker(self, text: str) -> bool:
        if any(start.startswith(text) for start in self._STARTS):
            return True  # "<", "<da", "</data-" ...
        return any(text.startswith(start) for start in self._STARTS) and ">" not in text and len(text) < 32


def fence_marker() -> str:
    """A marker no document can guess, so none can fake the end of its block."""
    return secrets.token_hex(4)
