"""What frontends exchange with the assistant: a Question in, AnswerEvents out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from core.answering.history import ConversationKey

Mode = Literal["rag", "finetuned", "hybrid"]
AnswerStyle = Literal["generate", "quote", "auto"]
MODES: tuple[Mode, ...] = ("rag", "finetuned", "hybrid")
AUTO = "auto"  # not a mode: the router picks one per question
ModeChoice = Mode | Literal["auto"]


@dataclass(frozen=True)
class Question:
    """A question as a frontend saw it.

    ``principals`` are who is asking (user id, groups, roles); ``sources`` is the
    channel's policy: which sources may be read here (``None`` for all).
    """

    text: str
    conversation: ConversationKey | None = None
    principals: frozenset[str] = frozenset()
    sources: frozenset[str] | None = None
    mode: ModeChoice | None = None
    mode_reason: str = ""  # who set ``mode`` and why, e.g. "channel C1 is set to rag"


@dataclass(frozen=True)
class Source:
    index: int
    title: str
    source: str
    url: str
    path: str
    score: float
    snippet: str
    cited: bool

    def as_dict(self) -> dict[str, object]:
        location = {"url": self.url} if self.url else {"path": self.path}
        return {
            "index": self.index,
            "title": self.title,
            **location,
            "source": self.source,
            "score": round(self.score, 4),
            "snippet": self.snippet,
            "cited": self.cited,
        }


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[Source]
    mode: Mode
    model: str
    abstained: bool
    standalone_query: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # what feedback buttons refer to
    route: str = ""  # the mode the question was routed to; ``mode`` differs after a fallback
    route_reason: str = ""
    fallback: str | None = None  # why the base model answered instead of the fine-tuned one
    error: str | None = None  # why the answer was cut off mid-stream
    # "quote": sentences quoted from the documents; "generate": the model's words; "" when neither
    # answered (no passage found, or a closed-book mode).
    style: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "answer": self.text,
            "sources": [source.as_dict() for source in self.sources],
            "mode": self.mode,
            "model": self.model,
            "abstained": self.abstained,
            "standalone_query": self.standalone_query,
            "timings_ms": {name: round(ms, 1) for name, ms in self.timings_ms.items()},
            "route": self.route,
            "route_reason": self.route_reason,
            "fallback": self.fallback,
            "error": self.error,
            "style": self.style,
        }


@dataclass(frozen=True)
class Token:
    """A piece of the answer text as the model produces it."""

    text: str


@dataclass(frozen=True)
class Done:
    """The final answer, with sources; always the last event."""

    answer: Answer


AnswerEvent = Token | Done
