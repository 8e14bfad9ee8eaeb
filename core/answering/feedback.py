"""👍/👎 on answers, kept with everything needed to learn from them.

Frontends record each answer they post (``record_answer``) and later a vote on it
by id (``vote``). Each vote stores the question, answer, sources, mode, model,
user and channel: the raw material for evaluation and fine-tuning datasets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import redis

from core.answering.answers import Answer, Source
from core.errors import InputError, ServiceUnavailable

_ANSWER_KEY = "archivist:answer:{id}"
_FEEDBACK_KEY = "archivist:feedback:{id}"
_FEEDBACK_LOG = "archivist:feedback:log"
# Buttons on an answer older than this no longer record votes: long enough for any
# reader, short enough that Redis does not keep every answer forever.
ANSWER_TTL_S = 90 * 24 * 3600
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class AnswerRecord:
    answer_id: str
    question: str
    answer: str
    sources: list[dict[str, object]]
    mode: str
    model: str
    platform: str
    user: str
    channel: str
    at: float
    abstained: bool = False  # absent from records written before it was kept

    def as_answer(self) -> Answer:
        """The answer as a frontend can render it again (to share it, say)."""
        sources = [
            Source(
                index=int(s["index"]),  # type: ignore[call-overload]
                title=str(s["title"]),
                source=str(s["source"]),
                url=str(s.get("url", "")),
                path=str(s.get("path", "")),
                score=float(s["score"]),  # type: ignore[arg-type]
                snippet=str(s["snippet"]),
                cited=bool(s["cited"]),
            )
            for s in self.sources
        ]
        return Answer(
            self.answer,
            sources,
            self.mode,
            self.model,
            self.abstained,
            self.question,
            id=self.answer_id,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Feedback:
    answer_id: str
    vote: int  # +1 or -1
    user: str
    comment: str
    at: float
    record: AnswerRecord


class FeedbackStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def record_answer(self, answer: Answer, question: str, *, platform: str, user: str, channel: str) -> None:
        record = AnswerRecord(
            answer.id,
            question,
            answer.text,
            [s.as_dict() for s in answer.sources],
            answer.mode,
            answer.model,
            platform,
            user,
            channel,
            time.time(),
            answer.abstained,
        )
        with _redis_errors():
            self._client.set(_ANSWER_KEY.format(id=answer.id), json.dumps(asdict(record)), ex=ANSWER_TTL_S)

    def answer(self, answer_id: str) -> AnswerRecord | None:
        """The recorded answer a button refers to, or None once expired."""
        with _redis_errors():
            raw = self._client.get(_ANSWER_KEY.format(id=answer_id))
        return AnswerRecord(**json.loads(raw)) if raw else None

    def vote(self, answer_id: str, user: str, vote: int, comment: str = "") -> Feedback:
        """Store (or replace) ``user``'s vote on an answer; one vote per user per answer."""
        if vote not in (1, -1):
            msg = "a vote is +1 or -1"
            raise InputError(msg)
        record = self.answer(answer_id)
        if record is None:
            msg = "That answer is too old or unknown; feedback can no longer be recorded for it."
            raise InputError(msg)
        feedback = Feedback(answer_id, vote, user, comment[:MAX_COMMENT_CHARS], time.time(), record)
        with _redis_errors():
            pipe = self._client.pipeline()
            pipe.hset(_FEEDBACK_KEY.format(id=answer_id), user, json.dumps(asdict(feedback)))
            pipe.rpush(_FEEDBACK_LOG, f"{answer_id}:{user}")
            pipe.execute()
        return feedback

    def comment(self, answer_id: str, user: str, comment: str) -> Feedback:
        """Attach the text a user gave after voting (👎 asks what was wrong)."""
        with _redis_errors():
            raw = self._client.hget(_FEEDBACK_KEY.format(id=answer_id), user)
        if raw is None:
            msg = "Vote on the answer first, then add a comment."
            raise InputError(msg)
        previous = json.loads(raw)
        return self.vote(answer_id, user, previous["vote"], comment)

    def all(self) -> Iterator[Feedback]:
        """Every user's latest vote, oldest first."""
        seen: set[str] = set()
        with _redis_errors():
            entries = self._client.lrange(_FEEDBACK_LOG, 0, -1)
        for entry in entries:
            if entry in seen:
                continue
            seen.add(entry)
            answer_id, _, user = entry.partition(":")
            with _redis_errors():
                raw = self._client.hget(_FEEDBACK_KEY.format(id=answer_id), user)
            if raw:
                data = json.loads(raw)
                yield Feedback(**{**data, "record": AnswerRecord(**data["record"])})


class _redis_errors:  # noqa: N801 - used as a context manager
    """Feedback must not vanish silently: an unreachable Redis is a reported error."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            msg = f"cannot store feedback: Redis is unreachable ({exc})"
            raise ServiceUnavailable(msg) from exc
