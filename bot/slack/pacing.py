"""Slack's rate limits, kept on our side: a token bucket per method and workspace.

Slack limits most Web API methods per method *per workspace* (not per message), in
tiers (https://api.slack.com/apis/rate-limits): ``chat.update`` is Tier 3, about 50
calls a minute; the streaming methods ``chat.startStream`` / ``appendStream`` /
``stopStream`` are Tier 4, about 100; ``chat.postMessage`` allows about one message a
second per channel, with short bursts. Past a limit Slack answers 429 with
``Retry-After``, and the SDK's retry handler then sleeps mid-answer. So every answer
streaming in a workspace draws from one shared budget: edits that only show progress
are skipped when the budget is low, and the edits that must happen (the final answer)
wait their turn instead of being refused.

A bucket of ``capacity`` tokens refilled at ``per_minute / 60`` a second never makes more
than ``capacity + per_minute`` calls in any minute: each limit below keeps that sum under
Slack's figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    capacity: float  # the burst allowed at once
    per_second: float  # the sustained rate


# 10 + 40 a minute < Tier 3's 50.
UPDATE = Limit(capacity=10, per_second=40 / 60)
# 20 + 75 a minute < Tier 4's 100.
STREAM = Limit(capacity=20, per_second=75 / 60)
# 3 + 0.7/s: at most 10 in any 10 seconds, 45 a minute, in one channel.
POST = Limit(capacity=3, per_second=0.7)

STREAM_METHODS = "chat.*Stream"  # the three streaming methods share one budget here


class _Bucket:
    def __init__(self, limit: Limit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._tokens = limit.capacity
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self._limit.capacity, self._tokens + (now - self._at) * self._limit.per_second)
        self._at = now
        return self._tokens

    def try_take(self, reserve: float) -> bool:
        if self._refill() - reserve >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_s(self) -> float:
        return max(0.0, (1 - self._refill()) / self._limit.per_second)


class RateBudget:
    """One process's share of each workspace's rate limits (several processes: see docs/slack.md)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._finals: dict[tuple[str, ...], int] = {}  # answers in flight, each owed a final call

    def _bucket(self, key: tuple[str, ...], limit: Limit) -> _Bucket:
        if key not in self._buckets:
            self._buckets[key] = _Bucket(limit, self._clock)
        return self._buckets[key]

    def optional(self, key: tuple[str, ...], limit: Limit) -> bool:
        """A token for a call that may be skipped (a progress edit), if the finals owed can spare it."""
        return self._bucket(key, limit).try_take(reserve=self._finals.get(key, 0))

    async def take(self, key: tuple[str, ...], limit: Limit) -> None:
        """Wait for a token for a call that must happen."""
        bucket = self._bucket(key, limit)
        while not bucket.try_take(reserve=0):
            await asyncio.sleep(bucket.wait_s() + 0.01)

    def owe(self, key: tuple[str, ...], count: int) -> None:
        """Count (or, negative, release) final calls promised to answers in flight."""
        self._finals[key] = max(0, self._finals.get(key, 0) + count)


def update_key(team: str) -> tuple[str, ...]:
    return ("chat.update", team)


def stream_key(team: str) -> tuple[str, ...]:
    return (STREAM_METHODS, team)


def post_key(team: str, channel: str) -> tuple[str, ...]:
    return ("chat.postMessage", team, channel)
