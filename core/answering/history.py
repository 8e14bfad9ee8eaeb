"""Conversation memory in Redis, keyed by platform, workspace, channel and thread.

Each conversation is a Redis list of JSON turns, newest last, capped in turns and
expiring after a TTL that slides with every use. If Redis is unreachable the
assistant answers without memory and logs that once, not on every message.

Memory is scoped by access, like retrieval: each turn records the passages its
answer was written from (source, document id, readers), and a question loads only
the turns whose every passage the current asker may read. A follow-up by someone
without access to an earlier answer's documents never sees that answer. When a
document is deleted or its readers change, :meth:`ConversationHistory.forget_documents`
removes the turns written from it, found through a per-document index of citing
conversations.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from core.documents import Acl
from core.retrieval.store.base import AccessFilter

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
_CITED_BY_KEY = "archivist:history:cited-by:{digest}"
# A turn being appended while it is purged makes the purge retry; a few tries always suffice.
_PURGE_ATTEMPTS = 5


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
class Passage:
    """A document a turn's answer was written from, with the readers it had then."""

    source: str
    document_id: str
    acl: Acl = Acl()


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str
    passages: tuple[Passage, ...] = ()  # none: answered without documents (an abstention, closed book)

    def readable_by(self, access: AccessFilter) -> bool:
        return all(access.admits(p.source, p.acl) for p in self.passages)

    def cites(self, documents: set[tuple[str, str]]) -> bool:
        return any((p.source, p.document_id) in documents for p in self.passages)

    def to_json(self) -> str:
        passages = [
            {
                "source": p.source,
                "document_id": p.document_id,
                "public": p.acl.public,
                "principals": sorted(p.acl.principals),
            }
            for p in self.passages
        ]
        return json.dumps({"question": self.question, "answer": self.answer, "passages": passages})

    @classmethod
    def from_json(cls, raw: str) -> Turn | None:
        """None for a turn stored before memory was scoped: its readers are unknown, so it is not replayed."""
        try:
            data = json.loads(raw)
            passages = tuple(
                Passage(p["source"], p["document_id"], Acl(bool(p["public"]), frozenset(p["principals"])))
                for p in data["passages"]
            )
            return cls(str(data["question"]), str(data["answer"]), passages)
        except (ValueError, KeyError, TypeError):
            return None


def estimate_tokens(text: str) -> int:
    # About four characters a token for English; only used to cap what is replayed.
    return len(text) // 4 + 1


def _cited_by_key(source: str, document_id: str) -> str:
    # Hashed: document ids are arbitrary strings (paths, URLs) of any length.
    digest = hashlib.sha256(f"{source}\x1f{document_id}".encode()).hexdigest()[:32]
    return _CITED_BY_KEY.format(digest=digest)


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

    def load(self, key: ConversationKey, access: AccessFilter) -> list[Turn]:
        """The most recent turns ``access`` may read that fit the token budget, oldest first."""
        try:
            pipe = self._client.pipeline()
            pipe.lrange(key.redis_key(), -self._max_turns, -1)
            pipe.expire(key.redis_key(), self._ttl_s)
            raw, _ = pipe.execute()
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)
            return []
        self._warned = False
        turns = [turn for item in raw if (turn := Turn.from_json(item)) and turn.readable_by(access)]
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
            pipe.rpush(key.redis_key(), turn.to_json())
            pipe.ltrim(key.redis_key(), -self._max_turns, -1)
            pipe.expire(key.redis_key(), self._ttl_s)
            for passage in turn.passages:
                index = _cited_by_key(passage.source, passage.document_id)
                pipe.sadd(index, key.redis_key())
                pipe.expire(index, self._ttl_s)
            pipe.execute()
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)

    def clear(self, key: ConversationKey) -> None:
        try:
            self._client.delete(key.redis_key())
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)

    def forget_documents(self, source: str, document_ids: Iterable[str]) -> int:
        """Remove every stored turn written from these documents; the number of turns removed.

        Called when documents are deleted or their readers change, so memory never
        keeps text the index no longer grants. Raises nothing: without Redis the turns
        expire with their conversation's TTL instead, and that is logged.
        """
        documents = {(source, document_id) for document_id in document_ids}
        removed = 0
        try:
            conversations: set[str] = set()
            for _, document_id in documents:
                conversations |= set(self._client.smembers(_cited_by_key(source, document_id)))
            for conversation in sorted(conversations):
                removed += self._drop_turns(conversation, documents)
            if documents:
                self._client.delete(*(_cited_by_key(s, d) for s, d in documents))
        except _REDIS_ERRORS as exc:
            log.warning(
                "could not remove %d deleted document(s) of %s from conversation memory (%s); "
                "their turns expire within %d s",
                len(documents),
                source,
                exc,
                self._ttl_s,
            )
        return removed

    def _drop_turns(self, conversation: str, documents: set[tuple[str, str]]) -> int:
        """Rewrite one conversation without the turns citing ``documents``, atomically."""
        with self._client.pipeline() as pipe:
            for _ in range(_PURGE_ATTEMPTS):
                try:
                    pipe.watch(conversation)
                    raw: list[str] = pipe.lrange(conversation, 0, -1)
                    ttl = int(pipe.ttl(conversation))
                    kept = [item for item in raw if not _cites(item, documents)]
                    if len(kept) == len(raw):
                        pipe.unwatch()
                        return 0
                    pipe.multi()
                    pipe.delete(conversation)
                    if kept:
                        pipe.rpush(conversation, *kept)
                        pipe.expire(conversation, ttl if ttl > 0 else self._ttl_s)
                    pipe.execute()
                    return len(raw) - len(kept)
                except redis.WatchError:
                    continue
        log.warning("conversation %s kept changing; its turns of deleted documents expire", conversation)
        return 0


def _cites(raw: str, documents: set[tuple[str, str]]) -> bool:
    turn = Turn.from_json(raw)
    return turn is None or turn.cites(documents)  # an unreadable turn is dropped, not kept


def passages_of(chunks: Sequence[tuple[str, str, Acl]]) -> tuple[Passage, ...]:
    """One Passage per document, in first-seen order."""
    seen: dict[tuple[str, str], Passage] = {}
    for source, document_id, acl in chunks:
        seen.setdefault((source, document_id), Passage(source, document_id, acl))
    return tuple(seen.values())
