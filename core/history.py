"""Conversation memory in Redis, keyed by platform, workspace, channel and thread.

Each conversation is a Redis list of JSON turns, newest last, capped in turns and
expiring after a TTL that slides with every use. If Redis is unreachable the
assistant answers without memory and logs that once, not on every message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversationKey:
    platform: str
    workspace: str
    channel: str
    thread: str = ""  # empty for a DM or a channel without threads

    def redis_key(self) -> str:
        parts = (self.platform, self.workspace, self.channel, self.thread or "-")
        return "archivist:history:" + ":".join(part.replace(":", "_") for part in parts)


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


def estimate_tokens(text: str) -> int:
    # About four characters a token for English; only used to cap what is replayed.
    return len(text) // 4 + 1


class ConversationHistory:
    def __init__(self, client: redis.Redis, max_turns: int, max_tokens: int, ttl_s: int) -> None:
        self._client = client
        self._max_turns = max_turns
        self._max_tokens = max_tokens
        self._ttl_s = ttl_s
        self._warned = False

    def _unavailable(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("Redis is unreachable (%s); answering without conversation memory", exc)
            self._warned = True

    def load(self, key: ConversationKey) -> list[Turn]:
        """The most recent turns that fit the token budget, oldest first."""
        try:
            pipe = self._client.pipeline()
            pipe.lrange(key.redis_key(), -self._max_turns, -1)
            pipe.expire(key.redis_key(), self._ttl_s)
            raw, _ = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._unavailable(exc)
            return []
        self._warned = False
        turns = [Turn(**json.loads(item)) for item in raw]
        kept: list[Turn] = []
        budget = self._max_tokens
        for turn in reversed(turns):
            budget -= estimate_tokens(turn.question) + estimate_tokens(turn.answer)
            if budget < 0:
                break
            kept.append(turn)
        return list(reversed(kept))

    def append(self, key: ConversationKey, turn: Turn) -> None:
        try:
            pipe = self._client.pipeline()
            pipe.rpush(key.redis_key(), json.dumps({"question": turn.question, "answer": turn.answer}))
            pipe.ltrim(key.redis_key(), -self._max_turns, -1)
            pipe.expire(key.redis_key(), self._ttl_s)
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._unavailable(exc)

    def clear(self, key: ConversationKey) -> None:
        try:
            self._client.delete(key.redis_key())
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._unavailable(exc)
