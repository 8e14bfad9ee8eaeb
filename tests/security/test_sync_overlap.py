"""Two syncs of one source never index it twice, whether Redis is up or not.

With Redis unreachable the cross-process Redis lock is gone; the lock file under
the data dir must still hold, the writes themselves must replace by document id,
and an index that already holds duplicates is repaired by the next sync.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from core.app import App
from core.retrieval.store.base import AccessFilter
from core.sync.service import SyncBusy
from tests.conftest import BASE_CONFIG

REDIS_DOWN = '\n[redis]\nurl = "redis://127.0.0.1:1"\n'  # nothing listens on port 1


@pytest.fixture
def redis_down_app(kb: Path, make_app: Callable[[str], App]) -> App:
    return make_app(BASE_CONFIG + REDIS_DOWN)


def _chunk_ids(app: App) -> list[str]:
    return [chunk.id for chunk in app.store.chunks(AccessFilter())]


def test_a_second_sync_while_another_process_syncs_is_refused_without_redis(
    redis_down_app: App, tmp_path: Path
) -> None:
    holder = _hold_sync_lock(redis_down_app, "handbook", tmp_path)
    try:
        with pytest.raises(SyncBusy, match="already running"):
            redis_down_app.sync_service.sync("handbook")
        assert redis_down_app.sync_service.running("handbook")
    finally:
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(timeout=30)
    assert not redis_down_app.sync_service.running("handbook")
    report = redis_down_app.sync_service.sync("handbook")  # free again once the holder is gone
    assert report.added >= 25


def test_overlapping_writers_leave_one_copy_of_each_chunk(redis_down_app: App) -> None:
    redis_down_app.sync_engine.sync(redis_down_app.connector("handbook"))
    ids = _chunk_ids(redis_down_app)
    store = redis_down_app.store
    chunks = store.chunks(AccessFilter())
    vectors = redis_down_app.embedder.embed_documents([chunk.search_text() for chunk in chunks])
    # A second writer that also believed every document new (it listed before the first wrote).
    store.upsert(chunks, vectors, new_documents=True)
    assert sorted(_chunk_ids(redis_down_app)) == sorted(ids)


@pytest.mark.parametrize("full", [False, True], ids=["plain sync", "sync --full"])
def test_a_sync_repairs_an_index_that_already_holds_duplicates(redis_down_app: App, full: bool) -> None:
    redis_down_app.sync_engine.sync(redis_down_app.connector("handbook"))
    ids = sorted(_chunk_ids(redis_down_app))
    _duplicate_some_rows(redis_down_app, 7)
    assert len(_chunk_ids(redis_down_app)) == len(ids) + 7

    report = redis_down_app.sync_service.sync("handbook", full=full)
    assert sorted(_chunk_ids(redis_down_app)) == ids
    assert report.failed == 0


def _duplicate_some_rows(app: App, count: int) -> None:
    """What two overlapping syncs left behind before writes replaced by document id."""
    table = app.store._table  # noqa: SLF001 - forging a damaged index
    rows = table.search().limit(count).to_arrow()
    table.add(pa.Table.from_pylist(rows.to_pylist(), schema=table.schema))


def _hold_sync_lock(app: App, source: str, tmp_path: Path) -> subprocess.Popen[str]:
    """Another process that holds the source's sync lock until its stdin closes."""
    script = tmp_path / "hold_lock.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from pathlib import Path
            from core.sync.service import SyncService
            service = SyncService([{source!r}], None, None, None, None, lock_dir=Path({str(app.settings.data_dir / "locks")!r}))
            with service._local_lock({source!r}):
                print("held", flush=True)
                sys.stdin.read()
            """
        ),
        encoding="utf-8",
    )
    holder = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder
