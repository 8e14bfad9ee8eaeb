"""The HTTP endpoint: Events API, slash commands and interactivity at /slack/events.

Bolt verifies each request's signature and timestamp and answers
``url_verification``; this module only moves requests between aiohttp and Bolt.
"""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

EVENTS_PATH = "/slack/events"
# Slack's payloads are small; anything bigger is not from Slack.
MAX_BODY_BYTES = 1024 * 1024


def build_web_app(bolt: AsyncApp, path: str = EVENTS_PATH) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        bolt_response = await bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.router.add_post(path, events)
    web_app.router.add_get("/healthz", health)
    return web_app
