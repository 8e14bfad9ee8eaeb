"""Blocking calls (Redis, the store, syncs) run off the event loop, in pools of their own.

The core's model generation occupies the loop's default executor for the length of
an answer; Redis calls made while acking must never wait behind it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Short calls only (Redis round trips, counts): a few threads keep acks fast.
_QUICK = ThreadPoolExecutor(max_workers=4, thread_name_prefix="archivist-slack-io")
# Syncs take minutes; one per admin request, kept apart from quick calls.
_LONG = ThreadPoolExecutor(max_workers=2, thread_name_prefix="archivist-slack-sync")


async def quick(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_QUICK, functools.partial(fn, *args, **kwargs))


async def long(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_LONG, functools.partial(fn, *args, **kwargs))
