"""The one way syncs are started: CLI, Slack and Discord admin commands all call this.

Only one sync of a source runs at a time across every process: a Redis lock with
an expiry, so a crashed worker cannot hold a source forever.
"""

from __future__ import annotations

import logging
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
# Longer than any sync of a reasonable source; a crashed holder frees the source after this.
LOCK_TTL_S = 2 * 3600
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


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
    ) -> None:
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
        try:
            return self._engine.sync(connector, full=full, progress=progress)
        finally:
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
        token = uuid.uuid4().hex
        try:
            taken = self._client.set(_LOCK_KEY.format(source=name), token, nx=True, ex=LOCK_TTL_S)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("Redis is unreachable (%s); syncing %s without the cross-process lock", exc, name)
            return None
        if not taken:
            msg = f"a sync of {name!r} is already running; try again when it has finished"
            raise SyncBusy(msg)
        return token

    def _release(self, name: str, token: str | None) -> None:
        if self._client is None or token is None:
            return
        try:
            self._client.eval(_RELEASE, 1, _LOCK_KEY.format(source=name), token)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("could not release the sync lock of %s (it expires by itself): %s", name, exc)
