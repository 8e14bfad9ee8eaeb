"""`archivist sources` after a sync stopped by a passing outage: it says so, and when it retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bot.cli.test_cli import _run
from tests.conftest import BASE_CONFIG
from tests.fakes.google_drive_server import DOC, TOKEN, FakeDrive


@pytest.fixture
def drive() -> Iterator[FakeDrive]:
    fake = FakeDrive().start()
    fake.add("Plan", DOC, "<p>The plan.</p>", permissions=[{"id": "a", "type": "anyone", "role": "reader"}])
    try:
        yield fake
    finally:
        fake.stop()


def test_sources_shows_a_transient_stop_and_its_retry(drive: FakeDrive, kb, write_config) -> None:
    table = f'\n[connectors.drive]\ntype = "google_drive"\napi_url = "{drive.base_url}"\ninterval_s = 3600\n'
    config = write_config(BASE_CONFIG + table)
    env = {"GOOGLE_DRIVE_TOKEN": TOKEN, "COLUMNS": "80"}
    drive.rate_limit("/files", times=1000, status=503, headers={"Retry-After": "0"})  # overloaded

    synced = _run(["sync", "drive"], config, env)
    assert synced.returncode == 1 and "HTTP 503" in synced.stderr and "Traceback" not in synced.stderr

    listed = _run(["sources"], config, env)
    assert listed.returncode == 0, listed.stderr
    text = " ".join(listed.stdout.split())
    assert "stopped by a passing outage" in text and "next run: retry " in text
