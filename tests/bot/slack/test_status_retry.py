"""`/archivist status` says when a source's last sync stopped on a passing outage, and when it retries."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from core.app import App
from core.sync.status import TRANSIENT_RETRY_S, SyncReport
from tests.bot.slack.conftest import start_harness
from tests.bot.slack.mock_web_api import wait_until


def stopped_by_an_outage(app: App, interval_s: int | None) -> float:
    """handbook's last sync stopped on a 502; returns when the worker retries it."""
    handbook = app.settings.connectors["handbook"].model_copy(update={"interval_s": interval_s})
    app.settings = app.settings.model_copy(
        update={"connectors": {**app.settings.connectors, "handbook": handbook}}
    )
    finished = time.time()
    error = (
        "Confluence still answered HTTP 502 after 5 attempts (rate limited or overloaded); sync again later"
    )
    app.sync_status.save(SyncReport("handbook", finished - 3, finished, added=2, error=error, transient=True))
    return finished + TRANSIENT_RETRY_S


@pytest.mark.asyncio
async def test_status_shows_the_outage_and_the_retry_time(make_remote_app, mock_slack) -> None:
    app = make_remote_app('\n[slack]\nadmins = ["UADMIN"]\n', sync=())
    retry = stopped_by_an_outage(app, 3600)
    harness = await start_harness(app, mock_slack)
    try:
        await harness.send.command("/archivist", "status", user="UADMIN")
        [reply] = await wait_until(lambda: mock_slack.of("response_url"))
    finally:
        await harness.client.close()
    text = reply.params["text"]
    assert "stopped by a passing outage" in text and "HTTP 502" in text
    assert f"retrying at {datetime.fromtimestamp(retry):%H:%M}" in text


def test_the_wording_lives_in_the_report() -> None:
    report = SyncReport("wiki", 100.0, 110.0, error="HTTP 504", transient=True)
    assert report.retry_text(3600, now=200.0).startswith("retrying at ")
    assert report.retry_text(3600, now=10_000.0) == "retrying now"
    assert "no interval_s" in report.retry_text(None, now=200.0)
    assert report.stop_text(3600, now=10_000.0) == "stopped by a passing outage: HTTP 504; retrying now"
    assert (
        SyncReport("wiki", 100.0, 110.0, error="HTTP 401").stop_text(3600, now=200.0) == "stopped: HTTP 401"
    )
    assert SyncReport("wiki", 100.0, 110.0).stop_text(3600, now=200.0) == ""
