"""`archivist worker`'s schedule: each source syncs on its own interval, never twice at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.app import App
from core.errors import ConfigError
from core.sync import job_queue
from core.sync.status import SyncReport
from core.sync.worker import Schedule, SyncWorker, next_run_at
from tests.conftest import BASE_CONFIG

TWO_SOURCES = (
    BASE_CONFIG.replace('path = "kb"\n', 'path = "kb"\ninterval_s = 600\n')
    + '\n[connectors.people]\ntype = "filesystem"\npath = "kb/people"\ninterval_s = 3600\n'
    + '\n[connectors.archive]\ntype = "filesystem"\npath = "kb/company"\n'
)


def _report(started: float, finished: float) -> SyncReport:
    return SyncReport(source="s", started_at=started, finished_at=finished)


def test_next_run_follows_the_interval_from_the_last_run() -> None:
    assert next_run_at(None, _report(0, 10), now=100) is None  # on demand only
    assert next_run_at(60, None, now=100) == 100  # never synced: due at once
    assert next_run_at(60, _report(0, 10), now=100) == 70
    assert next_run_at(60, _report(50, 0), now=100) == 110  # interrupted: counted from its start


@pytest.fixture
def scheduled_app(kb: Path, make_app: Callable[[str], App]) -> App:
    return make_app(TWO_SOURCES)


def test_the_worker_syncs_what_is_due_and_only_that(scheduled_app: App) -> None:
    now = [1_000_000.0]
    worker = scheduled_app.sync_worker()
    worker._clock = lambda: now[0]  # noqa: SLF001 - the schedule is judged at a chosen time
    lines = worker.run_once()
    assert [line.split(":")[0] for line in lines] == ["handbook", "people"]  # archive: on demand only
    assert scheduled_app.sync_service.last_report("archive") is None

    finished = scheduled_app.sync_service.last_report("handbook").finished_at
    now[0] = finished + 601  # handbook is due again, people (hourly) is not
    assert [line.split(":")[0] for line in worker.run_once()] == ["handbook"]
    now[0] = finished + 3601
    assert {line.split(":")[0] for line in worker.run_once()} == {"handbook", "people"}


def test_a_source_being_synced_elsewhere_is_not_started_again(scheduled_app: App) -> None:
    service = scheduled_app.sync_service
    token = service._acquire("handbook")  # noqa: SLF001 - as another process holding the source
    schedule = Schedule({"handbook": 60})
    assert schedule.due(service, now=2_000_000_000) == []
    service._release("handbook", token)  # noqa: SLF001
    assert schedule.due(service, now=2_000_000_000) == ["handbook"]


def test_a_failing_source_is_reported_and_the_others_still_run(scheduled_app: App, kb: Path) -> None:
    (kb / "people").rename(kb / "gone")
    worker = SyncWorker(
        scheduled_app.sync_service,
        Schedule({"people": 60, "handbook": 60}),
        scheduled_app.sync_worker()._dispatch,  # noqa: SLF001 - the inline dispatcher
    )
    lines = worker.run_once()
    assert any(line.startswith("handbook:") and "added" in line for line in lines)
    assert any(line.startswith("people:") and "does not exist" in line for line in lines)


class _RecordingService:
    def __init__(self) -> None:
        self.synced: list[tuple[str, bool]] = []

    def sync(self, name: str, *, full: bool = False) -> SyncReport:
        self.synced.append((name, full))
        return SyncReport(source=name, started_at=0, finished_at=1)


def test_a_sync_job_runs_with_the_service_of_the_job_worker_that_took_it() -> None:
    service = _RecordingService()
    token = job_queue._current_service.set(service)  # what SyncJobWorker does around each job
    try:
        result = job_queue.run_sync_job("handbook", True)
    finally:
        job_queue._current_service.reset(token)
    assert service.synced == [("handbook", True)]
    assert result["source"] == "handbook" and result["failed"] == 0


def test_a_sync_job_outside_archivist_worker_jobs_says_where_it_runs() -> None:
    with pytest.raises(ConfigError, match="archivist worker --jobs"):
        job_queue.run_sync_job("handbook")
