"""What each source's last sync did, kept in Redis for `archivist sources` and the bots."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

import redis

log = logging.getLogger(__name__)
_KEY = "archivist:sync:{source}:last"
_CHECKPOINT_KEY = "archivist:sync:{source}:checkpoint"
_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
MAX_REPORTED_FAILURES = 20  # a summary, not a log: the first few say enough
# A sync stopped by a passing outage (an overloaded service, a timeout, a rate limit) is tried
# again this soon by the worker, however long the source's interval; an hour-long interval
# should not leave a source stale for an hour because of one 502.
TRANSIENT_RETRY_S = 300


def is_transient(exc: BaseException) -> bool:
    """Whether an error says the source will likely answer if asked again soon.

    Connectors mark such errors ``transient = True`` (retries ran out on 429, 5xx, timeouts).
    """
    return getattr(exc, "transient", False) is True


@dataclass
class SyncReport:
    source: str
    started_at: float
    finished_at: float = 0.0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    failures: list[str] = field(default_factory=list)
    full: bool = False
    error: str = ""
    resumed: bool = False  # this run picked up where an interrupted one stopped
    transient: bool = False  # it stopped on a passing outage: the worker retries it soon

    @property
    def finished(self) -> bool:
        return self.finished_at > 0

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    def note_failure(self, document_id: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(f"{document_id}: {reason}")

    def summary(self) -> str:
        text = (
            f"{self.source}: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} deleted, {self.failed} failed in {self.duration_s:.1f}s"
        )
        if not self.finished:
            return f"{self.source}: running or interrupted, {self.added + self.updated} indexed so far"
        if self.resumed:
            text += " (resumed an interrupted sync)"
        if self.error and self.transient:
            return f"{text} (stopped by a passing outage: {self.error})"
        return f"{text} (stopped: {self.error})" if self.error else text

    def retry_text(self, interval_s: int | None, now: float) -> str:
        """When a sync stopped by a passing outage is tried again, as every admin view says it
        ("retrying at 14:05", "retrying now"); "" for any other outcome."""
        if not (self.finished and self.error and self.transient):
            return ""
        retry = self.retry_at(interval_s)
        if retry is None:
            return "not retried on its own (no interval_s): sync it again once the outage has passed"
        return "retrying now" if retry <= now else f"retrying at {datetime.fromtimestamp(retry):%H:%M}"

    def stop_text(self, interval_s: int | None, now: float) -> str:
        """Why this sync stopped, and for a passing outage when it is tried again; "" if it did not."""
        if not (self.finished and self.error):
            return ""
        if not self.transient:
            return f"stopped: {self.error}"
        return f"stopped by a passing outage: {self.error}; {self.retry_text(interval_s, now)}"

    def retry_at(self, interval_s: int | None) -> float | None:
        """When the worker tries a source stopped by a passing outage again; None for any other
        stop, and for a source synced only on demand (``interval_s`` None)."""
        if interval_s is None or not (self.finished and self.error and self.transient):
            return None
        return self.finished_at + min(interval_s, TRANSIENT_RETRY_S)


class SyncStatusStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def save(self, report: SyncReport) -> None:
        try:
            self._client.set(_KEY.format(source=report.source), json.dumps(asdict(report)))
        except _REDIS_ERRORS as exc:
            log.warning("could not record the sync status of %s in Redis: %s", report.source, exc)

    def last(self, source: str) -> SyncReport | None:
        try:
            raw = self._client.get(_KEY.format(source=source))
        except _REDIS_ERRORS as exc:
            log.warning("could not read sync status from Redis: %s", exc)
            return None
        if not raw:
            return None
        known = set(SyncReport.__dataclass_fields__)
        return SyncReport(**{k: v for k, v in json.loads(raw).items() if k in known})

    # A polled source's cursor: saved after each indexed batch, so a killed sync resumes there.
    def checkpoint(self, source: str) -> str | None:
        try:
            return self._client.get(_CHECKPOINT_KEY.format(source=source))
        except _REDIS_ERRORS as exc:
            log.warning("could not read the checkpoint of %s (reading everything): %s", source, exc)
            return None

    def save_checkpoint(self, source: str, cursor: str) -> None:
        try:
            self._client.set(_CHECKPOINT_KEY.format(source=source), cursor)
        except _REDIS_ERRORS as exc:
            log.warning("could not save the checkpoint of %s: %s", source, exc)
