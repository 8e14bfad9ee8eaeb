"""Helpers the SaaS connector tests share: drain a poll, split what it yielded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from core.documents import Document, LoadFailure
from core.sync.connector import Batch


@dataclass
class Polled:
    documents: dict[str, Document] = field(default_factory=dict)
    failures: dict[str, LoadFailure] = field(default_factory=dict)
    ids_in_order: list[str] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)

    @property
    def cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None

    @property
    def state(self) -> dict:
        return json.loads(self.cursor or "{}")


def drain(polling: Iterator[tuple[Batch, str]], *, batches: int | None = None) -> Polled:
    """Everything a poll yields (or its first ``batches`` batches, as a sync killed midway would)."""
    result = Polled()
    for count, (batch, cursor) in enumerate(polling, start=1):
        json.loads(cursor)  # every cursor is the JSON the engine will store
        for item in batch:
            result.ids_in_order.append(item.id)
            if isinstance(item, Document):
                result.documents[item.id] = item
            else:
                result.failures[item.id] = item
        result.cursors.append(cursor)
        if batches is not None and count >= batches:
            break
    return result


class Sleeps(list):
    """A fast stand-in for time.sleep that records each wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
