"""The narrow API the bots use: a sync with progress, and the sources as admins see them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import pytest

from core.api import CoreAPI, describe_progress
from core.app import App
from core.errors import UnknownSourceError
from core.sync.engine import Progress


def test_sync_reports_progress_with_counts_then_the_outcome(app: App) -> None:
    api = CoreAPI(app)
    engine_sync = app.sync_engine.sync
    seen_progress = threading.Event()

    def sync_after_a_progress_update(connector, *, full=False, progress=None):  # noqa: ANN001, ANN202
        progress(Progress("handbook", 2, 5, "indexing"))
        seen_progress.wait(10)  # held until the frontend has shown it: no timing luck in this test
        return engine_sync(connector, full=full, progress=progress)

    app.sync_engine.sync = sync_after_a_progress_update  # type: ignore[method-assign]
    shown: list[str] = []
    running_while_shown: list[dict[str, Progress | None]] = []

    async def show(now: Mapping[str, Progress | None]) -> None:
        shown.append(describe_progress(now["handbook"]))
        running_while_shown.append(api.running_syncs())
        if now["handbook"] is not None:
            seen_progress.set()

    run = asyncio.run(api.sync(["handbook"], show=show, interval_s=0.01))

    assert "indexing 2/5 documents…" in shown
    assert all("handbook" in running for running in running_while_shown)
    assert run.ok and run.outcomes[0].report is not None and run.outcomes[0].report.added > 0
    assert api.running_syncs() == {}  # finished syncs leave the list
    info = api.source_info("handbook")
    assert (info.kind, info.chunks > 0) == ("filesystem", True)
    assert api.last_report("handbook") is not None


def test_an_unknown_source_is_named_before_any_work(app: App) -> None:
    api = CoreAPI(app)
    with pytest.raises(UnknownSourceError, match="handbook"):
        api.resolve_sources(["wiki"])
    assert api.resolve_sources(["all"]) == ["handbook"]


def test_progress_words_say_where_a_sync_stands() -> None:
    assert describe_progress(None) == "starting…"
    assert describe_progress(Progress("s", 0, None, "listing")) == "listing documents…"
    assert describe_progress(Progress("s", 3, None, "indexing")) == "indexing (3 documents so far)…"
