"""`archivist worker`: run each source's sync on its own schedule.

A source with ``interval_s`` in its config table is synced that many seconds
after its last run finished (at once when it never ran); sources without one
sync only on demand. Every sync goes through the one SyncService, so the Redis
lock keeps a scheduled run and an admin's `/archivist sync` from overlapping.

Where a sync runs is the dispatcher's business: inline in this process (the
default), or as a job on a Redis queue that several `archivist worker --jobs`
processes consume (see core/sync/job_queue.py).

The worker also keeps the identity map's group memberships fresh (``refresh_groups``: see
core/answering/identities.py), at most once every ``GROUPS_TICK_S``: each source that can say
who is in which group is asked about the chat users whose answer is due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.errors import SourceError
from core.sync.service import SyncBusy, SyncService
from core.sync.status import SyncReport

log = logging.getLogger(__name__)

Dispatch = Callable[[str], str]  # runs or enqueues one source's sync; returns a line for the log
RefreshGroups = Callable[[], int]  # asks the sources' directories; returns how many answers were stored
GROUPS_TICK_S = 60.0


def next_run_at(interval_s: int | None, last: SyncReport | None, now: float) -> float | None:
    """When a source is next due; None when it syncs only on demand."""
    if interval_s is None:
        return None
    if last is None:
        return now
    retry = last.retry_at(interval_s)  # stopped by a passing outage: sooner than the interval
    if retry is not None:
        return retry
    # An interrupted run counts from its start, so a crash loop cannot spin faster than the interval.
    return (last.finished_at if last.finished else last.started_at) + interval_s


@dataclass(frozen=True)
class Schedule:
    intervals: Mapping[str, int | None]

    def due(self, service: SyncService, now: float) -> list[str]:
        due = []
        for name, interval in sorted(self.intervals.items()):
            when = next_run_at(interval, service.last_report(name), now)
            if when is not None and when <= now and not service.running(name):
                due.append(name)
        return due


def inline_dispatch(service: SyncService) -> Dispatch:
    def run(name: str) -> str:
        try:
            return service.sync(name).summary()
        except (SourceError, SyncBusy) as exc:
            return f"{name}: {exc}"

    return run


class SyncWorker:
    def __init__(
        self,
        service: SyncService,
        schedule: Schedule,
        dispatch: Dispatch,
        *,
        clock: Callable[[], float] = time.time,
        tick_s: float = 5.0,
        refresh_groups: RefreshGroups | None = None,
    ) -> None:
        self._service = service
        self._schedule = schedule
        self._dispatch = dispatch
        self._clock = clock
        self._tick_s = tick_s
        self._refresh_groups = refresh_groups
        self._groups_at: float | None = None

    def run_once(self) -> list[str]:
        """Dispatch every source that is due now; returns one line per source."""
        lines = []
        for name in self._schedule.due(self._service, self._clock()):
            line = self._dispatch(name)
            log.info("%s", line)
            lines.append(line)
        groups = self._groups()
        if groups:
            log.info("%s", groups)
            lines.append(groups)
        return lines

    def _groups(self) -> str | None:
        now = self._clock()
        if self._refresh_groups is None:
            return None
        if self._groups_at is not None and now - self._groups_at < GROUPS_TICK_S:
            return None
        self._groups_at = now
        try:
            stored = self._refresh_groups()
        except Exception as exc:  # noqa: BLE001 - the schedule must go on whatever a directory does
            log.warning("group memberships: not refreshed (%s)", exc)
            return None
        return f"group memberships: {stored} answer(s) refreshed" if stored else None

    def run_forever(self, stop: threading.Event) -> None:
        log.info("worker started: %s", _describe(self._schedule))
        while not stop.is_set():
            self.run_once()
            stop.wait(self._tick_s)


def _describe(schedule: Schedule) -> str:
    parts = [f"{name} every {interval}s" for name, interval in sorted(schedule.intervals.items()) if interval]
    return ", ".join(parts) or "no source has interval_s set; nothing will run on a schedule"
