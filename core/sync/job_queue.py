"""Sync jobs on a Redis queue, for scale-out: one scheduler enqueues, several workers consume.

The queue is RQ (python-rq): it needs nothing but the Redis Archivist already
runs, its jobs are plain functions (a sync is blocking, CPU-bound code, not
async), failed jobs stay inspectable in Redis, and `rq info` shows the queue
without any Archivist code. Celery would add a broker config and a result
backend for no gain here; arq is asyncio-only.

Workers use RQ's SimpleWorker, which runs jobs in its own process instead of
forking one per job: the embedding model stays loaded between syncs. The worker
is handed the process's SyncService (`SyncJobQueue.work`) and runs each job
with it; this module never builds an App (the composition root builds it and
imports this module, not the other way round).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.sync.service import SyncService

log = logging.getLogger(__name__)

QUEUE_NAME = "archivist-sync"
JOB_TIMEOUT_S = 6 * 3600  # a first sync of a big source can take hours on a small machine
_PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
# The SyncService of the job worker running the current job: set by SyncJobWorker around each
# job it executes, so a job runs with the service of the worker that took it.
_current_service: ContextVar[SyncService | None] = ContextVar("archivist_sync_service", default=None)


class HasSyncService(Protocol):
    """What `SyncJobQueue.work` needs of the application: its shared SyncService."""

    @property
    def sync_service(self) -> SyncService: ...


def run_sync_job(name: str, full: bool = False) -> dict[str, Any]:
    """The job itself: one source's sync through the worker's shared SyncService."""
    service = _current_service.get()
    if service is None:
        msg = "sync jobs run in `archivist worker --jobs` (a plain `rq worker` has no Archivist app)"
        raise ConfigError(msg)
    report = service.sync(name, full=full)
    return {"source": name, "summary": report.summary(), "failed": report.failed}


class SyncJobWorker(SimpleWorker):
    """RQ's in-process worker, running each job with the SyncService it was given."""

    def __init__(self, *args: Any, sync_service: SyncService, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sync_service = sync_service

    def execute_job(self, job: Job, queue: Queue) -> None:
        token = _current_service.set(self.sync_service)
        try:
            super().execute_job(job, queue)
        finally:
            _current_service.reset(token)


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

    def work(self, app: HasSyncService, *, burst: bool = False) -> None:
        """Consume sync jobs in this process with ``app``'s SyncService; with ``burst``, stop once
        the queue is empty."""
        worker = SyncJobWorker([self._queue], connection=self._connection, sync_service=app.sync_service)
        worker.work(burst=burst, logging_level="WARNING")
