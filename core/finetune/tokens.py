"""Counting the tokens of a chat example the way the fine-tuning limits count them.

OpenAI's encodings come from tiktoken, whose vocabulary files are downloaded on
first use. Archivist never downloads at run time: tiktoken is used only when the
encoding is already in tiktoken's cache; otherwise a stated, conservative
approximation is used and the manifest says so.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Newest first: the encoding of gpt-4o and gpt-4o-mini, then of gpt-4 and gpt-3.5-turbo.
_ENCODINGS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
# The chat format adds a few tokens around every message and primes the reply
# (OpenAI's published counting recipe: 3 per message, 1 for the role, 3 for the reply).
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
APPROXIMATION = "approximate (max of characters/4 and words×4/3)"


@dataclass(frozen=True)
class TokenCounter:
    name: str
    count: Callable[[str], int]
    exact: bool

    def count_messages(self, messages: Sequence[dict[str, object]]) -> int:
        total = TOKENS_PER_REPLY
        for message in messages:
            total += TOKENS_PER_MESSAGE + self.count(str(message.get("content", "")))
        return total


def approximate_tokens(text: str) -> int:
    """Errs high: English runs about 4 characters or 0.75 words a token; code and names run shorter."""
    if not text:
        return 0
    return max(math.ceil(len(text) / 4), math.ceil(len(text.split()) * 4 / 3))


def _tiktoken_cache_dir() -> Path | None:
    # tiktoken's own rule for where it keeps downloaded vocabularies (tiktoken/load.py).
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return Path(os.environ[variable]) if os.environ[variable] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _cached_encoding() -> str | None:
    cache = _tiktoken_cache_dir()
    if cache is None:
        return None
    for name, url in _ENCODINGS.items():
        if (cache / hashlib.sha1(url.encode()).hexdigest()).is_file():  # noqa: S324 - tiktoken's cache key
            return name
    return None


def token_counter() -> TokenCounter:
    """tiktoken when it and a cached encoding are present, else the approximation."""
    name = _cached_encoding()
    if name is not None:
        try:
            import tiktoken

            encoding = tiktoken.get_encoding(name)
        except (ImportError, ValueError, OSError):
            encoding = None
        if encoding is not None:
            return TokenCounter(
                f"tiktoken {name}", lambda text: len(encoding.encode(text, disallowed_special=())), True
            )
    return TokenCounter(APPROXIMATION, approximate_tokens, False)
