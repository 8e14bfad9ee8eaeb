"""The one way syncs are started: CLI, Slack and Discord admin commands all call this.

Only one sync of a source runs at a time across every process: a Redis lock with
a short expiry that the running sync keeps renewing, so a killed worker frees its
source within a minute instead of leaving it stuck.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from connectors.base import Connector
from core.errors import ArchivistError, InputError, SourceError
from core.sync import ProgressCallback, SyncEngine
from core.sync_status import SyncReport, SyncStatusStore

log = logging.getLogger(__name__)

_LOCK_KEY = "archivist:sync:{source}:lock"
LOCK_TTL_S = 60  # a killed holder frees the source after this; a live one renews every third of it
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
)


class SyncBusy(ArchivistError):
    """Another process is syncing this source now."""


@dataclass(frozen=True)
class SyncOutcome:
    source: str
    report: SyncReport | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.report is not None and not self.error


class SyncService:
    def __init__(
        self,
        names: Sequence[str],
        connector: Callable[[str], Connector],
        engine: SyncEngine,
        client: redis.Redis | None,
        status: SyncStatusStore | None,
        lock_ttl_s: int = LOCK_TTL_S,
    ) -> None:
        self._lock_ttl_s = lock_ttl_s
        self._names = list(names)
        self._connector = connector
        self._engine = engine
        self._client = client
        self._status = status

    @property
    def names(self) -> list[str]:
        return sorted(self._names)

    def resolve(self, names: Sequence[str]) -> list[str]:
        """``[]`` or ``["all"]`` mean every source; unknown names fail before any work."""
        if not self._names:
            msg = "no sources are configured: add a [connectors.NAME] table to the config"
            raise InputError(msg)
        if not names or list(names) == ["all"]:
            return self.names
        for name in names:
            self._connector(name)  # raises UnknownSourceError with the configured names
        return list(dict.fromkeys(names))

    def running(self, name: str) -> bool:
        """Whether any process holds this source's sync lock now."""
        if self._client is None:
            return False
        try:
            return bool(self._client.exists(_LOCK_KEY.format(source=name)))
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def last_report(self, name: str) -> SyncReport | None:
        return self._status.last(name) if self._status else None

    def sync(self, name: str, *, full: bool = False, progress: ProgressCallback | None = None) -> SyncReport:
        connector = self._connector(name)
        token = self._acquire(name)
        stop_renewing = self._keep_renewing(name, token)
        try:
            return self._engine.sync(connector, full=full, progress=progress)
        finally:
            stop_renewing.set()
            self._release(name, token)

    def sync_many(
        self, names: Sequence[str], *, full: bool = False, progress: ProgressCallback | None = None
    ) -> list[SyncOutcome]:
        """Sync each source in turn; one source failing does not stop the others."""
        outcomes = []
        for name in self.resolve(names):
            try:
                outcomes.append(SyncOutcome(name, self.sync(name, full=full, progress=progress)))
            except (SourceError, SyncBusy) as exc:
                outcomes.append(SyncOutcome(name, None, str(exc)))
        return outcomes

    def _acquire(self, name: str) -> str | None:
        if self._client is None:
            return None
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"  # who holds it, for operators
        try:
            taken = self._client.set(_LOCK_KEY.format(source=name), token, nx=True, ex=self._lock_ttl_s)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("Redis is unreachable (%s); syncing %s without the cross-process lock", exc, name)
            return None
        if not taken:
            msg = f"a sync of {name!r} is already running; try again when it has finished"
            raise SyncBusy(msg)
        return token

    def _keep_renewing(self, name: str, token: str | None) -> threading.Event:
        """Renew the lock in the background until the returned event is set."""
        stop = threading.Event()
        if self._client is None or token is None:
            return stop
        client, key, ttl = self._client, _LOCK_KEY.format(source=name), self._lock_ttl_s

        def renew() -> None:
            while not stop.wait(ttl / 3):
                try:
                    if not client.eval(_RENEW, 1, key, token, ttl):
                        log.warning("the sync lock of %s was lost; another sync may start", name)
                        return
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("could not renew the sync lock of %s: %s", name, exc)

        threading.Thread(target=renew, name=f"sync-lock-{name}", daemon=True).start()
        return stop

    def _release(self, name: str, token: str | None) -> None:
        if self._client is None or token is None:
            return
        try:
            self._client.eval(_RELEASE, 1, _LOCK_KEY.format(source=name), token)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("could not release the sync lock of %s (it expires by itself): %s", name, exc)
