"""The one way syncs are started: CLI, Slack and Discord admin commands all call this.

Only one sync of a source runs at a time across every process. Two locks guard it:
a lock file under the data dir, which the operating system frees when its holder
dies (so it holds on this host even while Redis is down), and a Redis lock with a
short expiry that the running sync keeps renewing, for workers on other hosts that
share the index. Without Redis the file lock alone holds; there is never no lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from filelock import FileLock, Timeout

from core.errors import ArchivistError, InputError, SourceError, StorageError
from core.sync.connector import Connector
from core.sync.engine import ProgressCallback, SyncEngine
from core.sync.status import SyncReport, SyncStatusStore

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
        *,
        lock_dir: Path,
        lock_ttl_s: int = LOCK_TTL_S,
    ) -> None:
        self._lock_dir = lock_dir
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
        try:
            with self._lock_file(name).acquire(timeout=0):
                pass
        except Timeout:
            return True
        except OSError:
            pass  # a data dir we cannot write: no local sync can be running either
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
        with self._local_lock(name):
            token = self._acquire(name)
            stop_renewing = self._keep_renewing(name, token)
            try:
                return self._engine.sync(connector, full=full, progress=progress)
            finally:
                stop_renewing.set()
                self._release(name, token)

    def _lock_file(self, name: str) -> FileLock:
        # Source names are free text: keep the readable part, and a digest so two names never collide.
        readable = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40]
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        return FileLock(self._lock_dir / f"sync-{readable}-{digest}.lock")

    @contextmanager
    def _local_lock(self, name: str) -> Iterator[None]:
        """This host's lock on the source; the OS releases it if the process dies."""
        lock = self._lock_file(name)
        try:
            self._lock_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=0)
        except Timeout:
            msg = f"a sync of {name!r} is already running; try again when it has finished"
            raise SyncBusy(msg) from None
        except OSError as exc:
            msg = f"cannot take the sync lock in {self._lock_dir}: {exc.strerror or exc}"
            raise StorageError(msg) from exc
        try:
            yield
        finally:
            lock.release()

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
            log.warning("Redis is unreachable (%s); syncing %s under this host's lock file only", exc, name)
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
