"""`archivist sync`, `sources` and `worker`: keeping the index in line with the sources."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli import context
from bot.cli.console import SyncProgressView, err, out, render_report, render_sources_table
from core.errors import InputError, ServiceUnavailable, SourceError, user_message
from core.sync.service import SyncBusy


def sync(
    names: Annotated[list[str] | None, typer.Argument(help="Sources to sync (default: all).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-read and re-index every document.")] = False,
    queue: Annotated[
        bool, typer.Option("--queue", help="Put the syncs on the job queue for `archivist worker --jobs`.")
    ] = False,
) -> None:
    """Bring the index in line with the sources: add, update and delete documents."""
    if queue:
        application = context.application()
        for name in application.sync_service.resolve(names or []):
            out.print(application.job_queue.enqueue(name, full=full), markup=False)
        return
    sync_now(names or [], full)


def sync_now(names: list[str], full: bool) -> None:
    """Sync the named sources (all when none) in this process, with progress and a report each.

    Exits 1 when a source could not be synced at all, 3 when some of its documents could not be read.
    """
    service = context.application().sync_service
    partial = broken = False
    for name in service.resolve(names):  # a bad name fails before any work
        try:
            with SyncProgressView() as view:
                report = service.sync(name, full=full, progress=view)
        except (SourceError, SyncBusy) as exc:
            err.print(f"error: {user_message(exc, operator=True)}", markup=False)
            broken = True
            continue
        render_report(report)
        partial = partial or report.failed > 0
    if broken:
        raise typer.Exit(context.EXIT_ERROR)
    if partial:
        raise typer.Exit(context.EXIT_PARTIAL)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit (for cron).")] = False,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="Consume sync jobs from the Redis queue ([worker] queue = 'rq').")
    ] = False,
    burst: Annotated[
        bool, typer.Option("--burst", help="With --jobs: stop once the queue is empty.")
    ] = False,
) -> None:
    """Sync each source on its own schedule (interval_s in its config table)."""
    import threading

    application = context.application()
    if jobs:
        if application.settings.worker.queue != "rq":
            msg = '--jobs consumes the Redis job queue: set [worker] queue = "rq" in the config first'
            raise InputError(msg)
        application.job_queue.work(application, burst=burst)
        return
    scheduler = application.sync_worker()
    if once:
        for line in scheduler.run_once():
            out.print(line, markup=False)
        return
    stop = threading.Event()
    try:
        scheduler.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()


def sources() -> None:
    """List the configured sources, their last sync and when the worker runs them next."""
    import time
    from datetime import datetime

    import redis

    from core.sync.worker import next_run_at

    application = context.application()
    service = application.sync_service
    if not service.names:
        out.print("No sources configured. Add a [connectors.NAME] table to the config.", markup=False)
        return
    # The sync status lives in Redis, and reading it treats a dead Redis as "nothing recorded":
    # ask Redis once, so that a source is not reported as never synced when that is unknown.
    try:
        application.redis.ping()
        status_note = ""
    except (ServiceUnavailable, redis.RedisError, OSError):
        status_note = "status unavailable (Redis unreachable)"
    now = time.time()
    rows = []
    for name in service.names:
        connector = application.connector(name)
        interval = application.settings.connectors[name].interval_s
        if status_note:
            last, next_run = None, "unknown" if interval else None
        else:
            last = service.last_report(name)
            next_run = "running" if service.running(name) else next_run_at(interval, last, now)
            retry = last.retry_at(interval) if last is not None else None
            if retry is not None and next_run != "running":  # stopped by a passing outage
                when = "now" if retry <= now else datetime.fromtimestamp(retry).strftime("%H:%M")
                next_run = f"retry {when}"
        rows.append(
            (name, connector.kind, connector.describe(), application.store.count(name), last, next_run)
        )
    render_sources_table(rows, status_note=status_note)
