"""Slack retries an event it thinks was not received; each event is handled once.

The first process to ``SET NX`` ``team_id:event_id`` handles the event; retries
(and copies delivered to other processes) are acked and dropped. The TTL covers
Slack's retry window (three retries over about five minutes) with a wide margin.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.claims import Once

log = logging.getLogger("archivist.slack")

EVENT_TTL_S = 3600


def _header(req: AsyncBoltRequest, name: str) -> str:
    values = req.headers.get(name) or []
    return values[0] if values else ""


def event_deduper(once: Once) -> Callable[..., Awaitable[BoltResponse]]:
    async def dedupe(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:  # noqa: A002 - bolt's name
        event_id = req.body.get("event_id")
        if not event_id:  # commands, actions, views: answered synchronously, not retried
            return await next()
        team = req.body.get("team_id") or req.context.team_id or "-"
        retry = _header(req, "x-slack-retry-num")
        if await once.claim(f"{team}:{event_id}"):
            if retry:
                log.info(
                    "handling retry %s of %s (%s)", retry, event_id, _header(req, "x-slack-retry-reason")
                )
            return await next()
        log.info("dropping duplicate delivery of %s (retry %s)", event_id, retry or "none")
        return BoltResponse(status=200, body="")

    return dedupe
