"""A sync killed midway resumes: nothing lost, nothing indexed twice, and the source is never stuck."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app import App
from core.documents import Acl, Document, LoadFailure
from core.settings import load_settings
from core.sync.connector import Batch
from core.sync.service import SyncBusy
from tests.conftest import PROJECT_ROOT, cached_app, stop_embedded_redis

PAGES = 150  # the filesystem connector reads 64 per batch: three batches

# Runs in a second process: sync, and SIGKILL ourselves right after the first batch is indexed.
KILLED_SYNC = """
import os, signal, sys
from pathlib import Path
from core.app import App
from core.settings import load_settings
from core.sync.service import SyncService

app = App(load_settings(Path(sys.argv[1]), environ={}))
service = SyncService(["pages"], app.connector, app.sync_engine, app.redis, app.sync_status, lock_dir=app.settings.data_dir / "locks", lock_ttl_s=20)

def die_after_first_batch(progress):
    if progress.stage == "indexing" and progress.done > 0:
        os.kill(os.getpid(), signal.SIGKILL)

service.sync("pages", progress=die_after_first_batch)
"""


@pytest.fixture
def pages_app(tmp_path: Path) -> Iterator[App]:
    pages = tmp_path / "pages"
    pages.mkdir()
    for n in range(PAGES):
        (pages / f"page-{n:03}.md").write_text(f"# Page {n}\n\nRoom {n} is booked by team {n % 7}.\n")
    config = tmp_path / "archivist.toml"
    config.write_text(
        'data_dir = "data"\n[connectors.pages]\ntype = "filesystem"\npath = "pages"\npublic = true\n'
    )
    application = cached_app(load_settings(config, environ={}))
    application.redis.ping()  # start the embedded Redis here, so the killed process only shares it
    application.config_path = config  # type: ignore[attr-defined]
    yield application
    stop_embedded_redis(application)


def _wait_until_free(app: App, source: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while app.sync_service.running(source) and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_killed_sync_blocks_others_briefly_then_resumes_where_it_stopped(pages_app: App) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, str(pages_app.config_path)],  # type: ignore[attr-defined]
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    first_batch = len(pages_app.store.indexed_documents("pages"))
    assert 0 < first_batch < PAGES
    interrupted = pages_app.sync_status.last("pages")
    assert not interrupted.finished and "interrupted" in interrupted.summary()

    # The dead process still holds the source for a moment: a second process is refused...
    with pytest.raises(SyncBusy, match="already running"):
        pages_app.sync_service.sync("pages")
    # ...until its lock expires, since nobody renews it any more.
    _wait_until_free(pages_app, "pages")

    resumed = pages_app.sync_service.sync("pages")
    assert resumed.resumed and "resumed an interrupted sync" in resumed.summary()
    assert resumed.unchanged == first_batch  # done work is not redone
    assert resumed.added == PAGES - first_batch
    assert pages_app.store.count("pages") == PAGES  # one chunk per page: nothing twice, nothing lost


class PolledSource:
    """A source read by modified-time cursor, as the SaaS connectors are; it can fail midway."""

    name = "wiki"
    kind = "test"

    def __init__(self, texts: dict[str, str]) -> None:
        self.clock = 0
        self.pages: dict[str, tuple[str, int]] = {}
        for page_id, text in texts.items():
            self.edit(page_id, text)
        self.cursors_asked: list[str | None] = []
        self.crash_after: int | None = None
        self.broken: set[str] = set()

    def edit(self, page_id: str, text: str) -> None:
        self.clock += 1
        self.pages[page_id] = (text, self.clock)

    def describe(self) -> str:
        return "pages in memory"

    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        self.cursors_asked.append(cursor)
        changed = sorted((when, i) for i, (_, when) in self.pages.items() if when > int(cursor or 0))
        for n in range(0, len(changed), 10):
            if self.crash_after is not None and n // 10 == self.crash_after:
                raise ConnectionResetError("the worker died")
            piece = changed[n : n + 10]
            batch: Batch = [
                LoadFailure(i, self.name, "HTTP 500")
                if i in self.broken
                else Document(id=i, source=self.name, title=i, text=self.pages[i][0], acl=Acl.everyone())
                for _, i in piece
            ]
            yield batch, str(piece[-1][0])

    def list_ids(self) -> Iterator[str]:
        yield from self.pages


def test_a_polled_source_resumes_from_its_saved_cursor(pages_app: App) -> None:
    source = PolledSource({f"p{n:02}": f"Paragraph {n} about the quarterly roadmap." for n in range(35)})
    engine = pages_app.sync_engine
    source.crash_after = 2
    with pytest.raises(ConnectionResetError):
        engine.sync(source)
    assert len(pages_app.store.indexed_documents("wiki")) == 20
    assert pages_app.sync_status.checkpoint("wiki") == "20"

    source.crash_after = None
    report = engine.sync(source)
    assert source.cursors_asked[-1] == "20"  # picked up after the last indexed batch
    assert report.added == 15 and report.unchanged == 20
    assert pages_app.store.count("wiki") == 35

    del source.pages["p03"]  # deleted upstream
    source.edit("p34", "Paragraph 34, rewritten.")
    source.edit("p35", "A new page.")
    report = engine.sync(source)
    assert (report.added, report.updated, report.deleted, report.unchanged) == (1, 1, 1, 33)
    assert "p03" not in pages_app.store.indexed_documents("wiki")


def test_a_full_sync_of_a_polled_source_reads_from_the_start(pages_app: App) -> None:
    source = PolledSource({f"p{n}": f"Text {n}" for n in range(5)})
    pages_app.sync_engine.sync(source)
    report = pages_app.sync_engine.sync(source, full=True)
    assert source.cursors_asked == [None, None]
    assert report.updated == 5


def test_a_document_that_failed_is_retried_by_the_next_sync(pages_app: App) -> None:
    source = PolledSource({f"p{n:02}": f"Paragraph {n} on release trains." for n in range(25)})
    source.broken = {"p12"}
    first = pages_app.sync_engine.sync(source)
    assert first.failed == 1 and first.added == 24
    assert pages_app.sync_status.checkpoint("wiki") == "10"  # held before the failed page's batch

    source.broken = set()  # the page is readable again, though nobody edited it
    second = pages_app.sync_engine.sync(source)
    assert second.added == 1 and second.updated == 0  # only the missing page is indexed
    assert "p12" in pages_app.store.indexed_documents("wiki")
    assert pages_app.sync_status.checkpoint("wiki") == "25"
