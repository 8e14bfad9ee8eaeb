"""Sync jobs on a Redis queue, for scale-out: one scheduler enqueues, several workers consume.

The queue is RQ (python-rq): it needs nothing but the Redis Archivist already
runs, its jobs are plain functions (a sync is blocking, CPU-bound code, not
async), failed jobs stay inspectable in Redis, and `rq info` shows the queue
without any Archivist code. Celery would add a broker config and a result
backend for no gain here; arq is asyncio-only.

Workers use RQ's SimpleWorker, which runs jobs in its own process instead of
forking one per job: the embedding model stays loaded between syncs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

if TYPE_CHECKING:
    from core.app import App

log = logging.getLogger(__name__)

QUEUE_NAME = "archivist-sync"
JOB_TIMEOUT_S = 6 * 3600  # a first sync of a big source can take hours on a small machine
_PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
_worker_app: App | None = None  # the App of the `archivist worker --jobs` process running the jobs


def run_sync_job(name: str, full: bool = False) -> dict[str, Any]:
    """The job itself: one source's sync through the shared SyncService."""
    from core.app import App
    from core.settings import load_settings

    app = _worker_app or App(load_settings())  # a plain forking `rq worker` has no App of ours
    report = app.sync_service.sync(name, full=full)
    return {"source": name, "summary": report.summary(), "failed": report.failed}


class SyncJobQueue:
    def __init__(self, connection: redis.Redis) -> None:
        self._connection = connection
        self._queue = Queue(QUEUE_NAME, connection=connection)

    def enqueue(self, name: str, *, full: bool = False) -> str:
        """Queue a sync of ``name`` unless one is already waiting or running; returns a log line."""
        job_id = f"sync-{name}"
        try:
            job = Job.fetch(job_id, connection=self._connection)
        except NoSuchJobError:
            job = None
        if job is not None:
            if job.get_status() in _PENDING:
                return f"{name}: a sync is already queued or running"
            job.delete()  # a finished or failed run of before; its report is in the sync status
        self._queue.enqueue_call(
            run_sync_job, args=(name, full), job_id=job_id, timeout=JOB_TIMEOUT_S, result_ttl=3600
        )
        return f"{name}: sync queued"

    def pending(self) -> int:
        return self._queue.count

    def work(self, app: App, *, burst: bool = False) -> None:
        """Consume sync jobs in this process; with ``burst``, stop once the queue is empty."""
        global _worker_app
        _worker_app = app
        SimpleWorker([self._queue], connection=self._connection).work(burst=burst, logging_level="WARNING")
