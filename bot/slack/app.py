"""Composition of the Slack adapter: a Bolt AsyncApp over the core, served two ways.

``build_slack_app`` wires middleware and listeners; ``serve_slack`` runs it in
Socket Mode (``SLACK_APP_TOKEN``) or as an HTTP endpoint at ``/slack/events``.
Bolt's safe defaults stay on: request signatures and timestamps are checked,
``url_verification`` is answered, and Archivist's own events are ignored. The
HTTP endpoint binds 127.0.0.1 unless told otherwise, and SIGTERM stops either
mode cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.extras import MissingExtra, is_missing  # before the optional packages it explains

try:
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
    )
    from slack_sdk.web.async_client import AsyncWebClient
except ImportError as exc:
    if is_missing(exc, "slack_bolt", "slack_sdk", "aiohttp"):
        raise MissingExtra("slack") from exc
    raise

from bot.slack.admin import AdminHandlers
from bot.slack.answering import Answerer
from bot.slack.ask import MESSAGE_TTL_S, AskHandlers
from bot.slack.assistant import AssistantHandlers
from bot.slack.claims import FollowedThreads, Once
from bot.slack.credentials import SlackCredentials
from bot.slack.dedupe import EVENT_TTL_S, event_deduper
from bot.slack.failures import log_failure
from bot.slack.feedback import FeedbackHandlers
from bot.slack.home import HomeTab
from bot.slack.server import EVENTS_PATH, build_web_app
from bot.slack.streaming import UPDATE_INTERVAL_S
from core.api import PROGRESS_INTERVAL_S, CoreAPI

if TYPE_CHECKING:
    from core.app import App

log = logging.getLogger("archivist.slack")

# Web API calls: an explicit timeout (Slack answers in well under a second), and
# retries: 429s after their Retry-After (up to 5 times, so no answer is lost to a
# burst), dropped connections twice.
WEB_API_TIMEOUT_S = 30
RATE_LIMIT_RETRIES = 5
CONNECTION_RETRIES = 2


@dataclass(frozen=True)
class Tuning:
    """Pacing knobs; tests shorten them, production keeps the defaults."""

    stream_interval_s: float = UPDATE_INTERVAL_S
    progress_interval_s: float = PROGRESS_INTERVAL_S
    workspace_admins: bool = False  # also treat Slack workspace admins/owners as Archivist admins


def web_client(credentials: SlackCredentials) -> AsyncWebClient:
    client = AsyncWebClient(token=credentials.bot_token, timeout=WEB_API_TIMEOUT_S)
    if credentials.api_url:
        client.base_url = credentials.api_url
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]
    return client


def build_slack_app(
    core: App,
    credentials: SlackCredentials,
    *,
    client: AsyncWebClient | None = None,
    tuning: Tuning = Tuning(),
) -> AsyncApp:
    client = client or web_client(credentials)
    api = CoreAPI(core)
    bolt = AsyncApp(
        client=client,  # carries the bot token
        signing_secret=credentials.signing_secret,
        # Always on: Bolt skips it for Socket Mode requests (they carry no signature), and
        # build_web_app refuses an app without a secret, so HTTP is never served unverified.
        request_verification_enabled=True,
        logger=logging.getLogger("archivist.slack.bolt"),
    )
    redis_client = api.redis  # called when needed: Redis may start later or be down
    bolt.use(event_deduper(Once(redis_client, "archivist:slack:event", EVENT_TTL_S)))
    threads = FollowedThreads(redis_client, api.settings.redis.history_ttl_s)
    answerer = Answerer(api, threads, interval_s=tuning.stream_interval_s)
    messages = Once(redis_client, "archivist:slack:answered", MESSAGE_TTL_S)
    ask = AskHandlers(api, answerer, messages, threads)
    # Before the message listeners: it takes the messages of assistant threads for itself.
    titled = Once(redis_client, "archivist:slack:assistant:titled", api.settings.redis.history_ttl_s)
    bolt.assistant(AssistantHandlers(api, answerer, ask, titled).build())
    ask.register(bolt)
    FeedbackHandlers(api).register(bolt)
    admin = AdminHandlers(
        api,
        workspace_admins=tuning.workspace_admins or api.settings.slack.workspace_admins,
        progress_interval_s=tuning.progress_interval_s,
    )
    admin.register(bolt)
    HomeTab(api, admin).register(bolt)

    @bolt.error
    async def on_error(error: Exception) -> None:  # what escaped a listener: logged, never silent
        log_failure(error, "handling a Slack request")

    return bolt


# Loopback unless told otherwise: in front of the endpoint there is usually a TLS proxy.
DEFAULT_HOST = "127.0.0.1"


def serve_slack(
    core: App,
    *,
    http: bool,
    port: int,
    host: str = DEFAULT_HOST,
    credentials: SlackCredentials | None = None,
) -> None:
    """Run until interrupted or SIGTERM: Socket Mode by default, or HTTP at /slack/events."""
    credentials = credentials or SlackCredentials.from_env(socket=not http)
    bolt = build_slack_app(core, credentials)
    serving = _serve_http(bolt, host, port) if http else _serve_socket(bolt, credentials)
    try:
        asyncio.run(_until_sigterm(serving))
    except KeyboardInterrupt:
        log.info("stopped")


async def _until_sigterm(serving: Awaitable[None]) -> None:
    """Serve until SIGTERM (docker stop, systemd), then return normally: the server's own
    cleanup runs, then the process's exit hooks (the embedded Redis child stops with them)."""
    task = asyncio.ensure_future(serving)
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:  # a second SIGTERM must not interrupt the cleanup the first started
            stopping = True
            task.cancel()

    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not stopping:  # cancelled from outside (Ctrl-C): not ours to swallow
            raise
        log.warning("stopped (SIGTERM)")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # leaves SIG_DFL: put back what was there
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


async def _serve_http(bolt: AsyncApp, host: str, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(build_web_app(bolt))
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port).start()
    for address in runner.addresses:  # the real ones: port 0 picks a free port
        bound_host, bound_port = address[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        log.warning("Archivist is listening for Slack on http://%s:%d%s", shown, bound_port, EVENTS_PATH)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _serve_socket(bolt: AsyncApp, credentials: SlackCredentials) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bolt, credentials.app_token)
    log.warning("Archivist is connecting to Slack in Socket Mode")
    try:
        await handler.start_async()  # type: ignore[no-untyped-call]
    finally:  # on SIGTERM too: close the WebSocket rather than drop it
        await handler.close_async()  # type: ignore[no-untyped-call]
