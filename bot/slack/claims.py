"""Shared marks in Redis, so several bot processes act as one.

* ``Once``: the first caller to claim a key wins (``SET NX`` with a TTL); used to
  drop Slack's retries and to answer each message once, whichever trigger fires.
* ``FollowedThreads``: the threads Archivist answered in, where replies continue
  the conversation without a new mention.

Without Redis both fall back to this process's memory and say so once in the log.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import redis

from bot.slack import blocking
from core.errors import ServiceUnavailable

log = logging.getLogger("archivist.slack")

_LOCAL_KEYS = 10_000  # per-process fallback memory; old keys fall out first
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, ServiceUnavailable, OSError)


class _Marks:
    def __init__(self, client: Callable[[], redis.Redis]) -> None:
        self._client = client
        self._local: OrderedDict[str, None] = OrderedDict()
        self._warned = False

    def _redis(self) -> redis.Redis | None:
        try:
            return self._client()
        except ServiceUnavailable as exc:
            self._down(exc)
            return None

    def _down(self, exc: BaseException) -> None:
        if not self._warned:
            log.warning("Redis is unreachable (%s); de-duplicating in this process only", exc)
            self._warned = True

    def _local_add(self, key: str) -> bool:
        if key in self._local:
            return False
        self._local[key] = None
        while len(self._local) > _LOCAL_KEYS:
            self._local.popitem(last=False)
        return True

    def set_nx(self, key: str, ttl_s: int) -> bool:
        client = self._redis()
        if client is not None:
            try:
                return bool(client.set(key, "1", nx=True, ex=ttl_s))
            except _REDIS_DOWN as exc:
                self._down(exc)
        return self._local_add(key)

    def exists(self, key: str) -> bool:
        client = self._redis()
        if client is not None:
            try:
                return bool(client.exists(key))
            except _REDIS_DOWN as exc:
                self._down(exc)
        return key in self._local


class Once(_Marks):
    """``await once.claim(key)`` is true for exactly one caller within ``ttl_s``."""

    def __init__(self, client: Callable[[], redis.Redis], prefix: str, ttl_s: int) -> None:
        super().__init__(client)
        self._prefix = prefix
        self._ttl_s = ttl_s

    async def claim(self, key: str) -> bool:
        return await blocking.quick(self.set_nx, f"{self._prefix}:{key}", self._ttl_s)


class FollowedThreads(_Marks):
    def __init__(self, client: Callable[[], redis.Redis], ttl_s: int) -> None:
        super().__init__(client)
        self._ttl_s = ttl_s

    @staticmethod
    def _key(team: str, channel: str, thread_ts: str) -> str:
        return f"archivist:slack:thread:{team}:{channel}:{thread_ts}"

    async def follow(self, team: str, channel: str, thread_ts: str) -> None:
        await blocking.quick(self._mark, self._key(team, channel, thread_ts))

    def _mark(self, key: str) -> None:
        client = self._redis()
        if client is not None:
            try:
                client.set(key, "1", ex=self._ttl_s)  # slides with each answer
                return
            except _REDIS_DOWN as exc:
                self._down(exc)
        self._local_add(key)

    async def followed(self, team: str, channel: str, thread_ts: str) -> bool:
        return await blocking.quick(self.exists, self._key(team, channel, thread_ts))
