"""The HTTP endpoint: Events API, slash commands and interactivity at /slack/events.

Bolt verifies each request's signature and timestamp and answers
``url_verification``. This module moves requests between aiohttp and Bolt and
refuses, before Bolt sees them, requests Slack never sends: anything malformed
gets a 4xx and at most one log line, never a 500 with a traceback.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from core.errors import ConfigError

log = logging.getLogger("archivist.slack")

EVENTS_PATH = "/slack/events"
# Slack's payloads are small; anything bigger is not from Slack (aiohttp answers 413).
MAX_BODY_BYTES = 1024 * 1024
# https://api.slack.com/authentication/verifying-requests-from-slack: Unix seconds, and
# "v0=" + the hex HMAC-SHA256. Checked here because slack_sdk's verifier raises on a
# timestamp int() cannot read and on a non-ASCII signature (hmac.compare_digest).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# The payload fields Bolt routes on, with the types Slack documents: Bolt's own middleware
# and matchers index into them unguarded, so any other type would end as a 500 inside Bolt.
_ENVELOPE = {"type": str, "event": dict, "view": dict, "actions": list, "command": str, "callback_id": str}


def build_web_app(bolt: AsyncApp, path: str = EVENTS_PATH) -> web.Application:
    # An endpoint anyone can reach must check signatures; Socket Mode apps may have no secret.
    if not getattr(bolt, "_signing_secret", ""):
        msg = "SLACK_SIGNING_SECRET is not set: the HTTP endpoint refuses to accept unverified requests"
        raise ConfigError(msg)

    async def events(request: web.Request) -> web.Response:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not (_TIMESTAMP.fullmatch(timestamp) and _SIGNATURE.fullmatch(signature)):
            return web.Response(status=401, text="invalid request signature headers")
        body = await request.read()  # raises 413 past MAX_BODY_BYTES
        try:
            # Slack sends UTF-8; Bolt parses JSON or form bodies and reads their ids here.
            bolt_request = AsyncBoltRequest(
                body=body.decode("utf-8"), query=request.query_string, headers=dict(request.headers)
            )
        except Exception as error:  # noqa: BLE001 - whatever Bolt cannot parse is the sender's fault
            return _bad_request(error)
        if not _well_formed(bolt_request.body):
            return _bad_request(TypeError("not a Slack payload"))
        try:
            bolt_response = await bolt.async_dispatch(bolt_request)
        except Exception as error:  # noqa: BLE001 - one line, no traceback: the input was at fault
            return _bad_request(error)
        return await to_aiohttp_response(bolt_response)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.router.add_post(path, events)
    web_app.router.add_get("/healthz", health)
    return web_app


def _well_formed(body: object) -> bool:
    """An object (not a JSON list or string) whose routing fields have the types Slack sends."""
    if not isinstance(body, dict):
        return False
    if not all(isinstance(body[key], kind) for key, kind in _ENVELOPE.items() if key in body):
        return False
    return isinstance(body.get("event", {}).get("type", ""), str)


def _bad_request(error: Exception) -> web.Response:
    # Only the error's type: its message may quote attacker-chosen bytes.
    log.info("refused a malformed Slack request (%s)", type(error).__name__)
    return web.Response(status=400, text="malformed request")
