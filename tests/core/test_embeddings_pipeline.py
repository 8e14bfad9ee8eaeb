"""The sync overlaps its stages: the next batch is read while one is embedded, and what a
failure leaves behind is exactly what was written before it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.app import App
from core.documents import Acl, Document
from core.errors import ModelError
from core.settings import load_settings
from core.sync.connector import Batch
from core.sync.engine import SyncEngine
from tests.conftest import cached_app, stop_embedded_redis

WAIT_S = 60  # a guard against a hang, never a measurement: an overlapped sync does not wait at all


@dataclass
class Notes:
    """A source read whole, three batches of four notes; it records what the sync asked of it."""

    name: str = "notes"
    kind: str = "memory"
    batches: int = 3
    read: list[int] = field(default_factory=list)
    asked_for_next: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> str:
        return "notes in memory"

    def load_all(self) -> Iterator[Batch]:
        for number in range(self.batches):
            if number == 1:
                self.asked_for_next.set()  # the first batch was handed over; the engine reads on
            self.read.append(number)
            yield [
                Document(
                    f"n{number}-{i}",
                    self.name,
                    f"Note {number}.{i}",
                    f"Room {number}{i} holds team {i}.",
                    acl=Acl(public=True),
                )
                for i in range(4)
            ]


class SlowFirstBatch:
    """Embeds the first batch only once the engine has gone on to read the second."""

    def __init__(self, inner, source: Notes) -> None:
        self.inner, self.source, self.calls = inner, source, 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls == 1 and not self.source.asked_for_next.wait(WAIT_S):
            raise AssertionError("the engine waited for this batch's vectors before reading the next")
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


class FailsOnSecondBatch(SlowFirstBatch):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.calls == 1:
            self.calls += 1
            msg = "the embedder ran out of memory"
            raise ModelError(msg)
        return super().embed_documents(texts)


@pytest.fixture
def notes_app(tmp_path: Path) -> Iterator[App]:
    config = tmp_path / "archivist.toml"
    config.write_text('data_dir = "data"\n')
    application = cached_app(load_settings(config, environ={}))
    yield application
    stop_embedded_redis(application)


def engine_with(app: App, embedder) -> SyncEngine:
    return SyncEngine(app.store, embedder, app.chunking_options(), app.sync_status)


def test_the_next_batch_is_read_while_one_is_embedded(notes_app: App) -> None:
    source = Notes()
    report = engine_with(notes_app, SlowFirstBatch(notes_app.embedder, source)).sync(source)
    assert (report.added, report.failed) == (12, 0)
    assert source.read == [0, 1, 2]
    assert len(notes_app.store.indexed_documents("notes")) == 12


def test_a_failed_embedding_keeps_what_was_written_before_it(notes_app: App) -> None:
    source = Notes()
    failing = FailsOnSecondBatch(notes_app.embedder, source)
    with pytest.raises(ModelError, match="out of memory"):
        engine_with(notes_app, failing).sync(source)
    kept = set(notes_app.store.indexed_documents("notes"))
    assert kept == {f"n0-{i}" for i in range(4)}  # the first batch, whole; nothing of the second or third
    assert notes_app.sync_status.last("notes").error

    report = engine_with(notes_app, notes_app.embedder).sync(Notes())
    assert (report.added, report.unchanged) == (8, 4)
