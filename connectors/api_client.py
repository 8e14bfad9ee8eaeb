"""One HTTP client for the SaaS connectors' JSON APIs (Confluence, Notion, GitHub, Drive, Slack).

What every one of those APIs needs, in one place:

- 429 and 503 are retried after ``Retry-After`` (seconds or an HTTP date), a few times, with
  doubling back-off when no header is given; a wait longer than ``max_wait_s`` stops the sync
  with a message saying when to come back, instead of hanging a worker. A service names the
  other statuses it answers when briefly overloaded (``transient``: Confluence 502/504, Notion
  504/529, Drive 500/502/504, GitHub 502/504); they are retried the same way.
- When the retries run out, ``ApiError.transient`` is true: the sync stops (nothing is pruned)
  and ``archivist sources`` says it will be tried again. A caller may allow fewer
  ``timeout_attempts`` (a listing that shrinks its page on a timeout gives up sooner on the big page).
- 401 means the credentials are missing, wrong or expired: the sync stops with a message that
  names the environment variable to fix. Nothing is pruned after such a stop.
- Timeouts and refused connections are retried once, then reported as "cannot reach" (an
  ``ApiError`` with status 0 that is ``transient``; ``timed_out`` when the service was slow).
- Any other error answer raises ``ApiError``, which a connector turns into a ``LoadFailure``
  for one document or lets through to stop the sync when a listing failed.
- ``PageSize``: a listing whose big pages time out (HTTP 504 or a read timeout) asks for half as
  many items a request, down to a floor, and goes on from where it was (as Onyx's connectors do):
  Confluence searches, Drive listings with permissions, Notion searches, queries and blocks.
- Services that signal rate limits in other ways (GitHub: 403 with ``x-ratelimit-remaining: 0``;
  Google: 403 ``rateLimitExceeded``) pass ``rate_limit_wait``: it reads a response and says how
  long to wait, or None when the response is not a rate limit. ``ApiError.rate_limited`` is
  true when a sync stopped because of one, so connectors stop instead of failing item by item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from core.errors import SourceError

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
MAX_ATTEMPTS = 5  # for 429 / 503 answers
MAX_TRANSPORT_ATTEMPTS = 2
BACKOFF_S = 1.0
MAX_WAIT_S = 120.0
_RETRY = (429, 503)  # every service means these as "come back later"
# A big page that times out is tried this often before it is halved (the floor is tried fully).
ATTEMPTS_BEFORE_SHRINKING = 2
T = TypeVar("T")


class ApiError(SourceError):
    """An error answer from a source's API; ``status`` is the HTTP status (0: no answer).

    ``rate_limited``: the sync must stop rather than fail item by item (rate limit, overload).
    ``transient``: the retries ran out on an overload or a timeout; a later sync will likely pass.
    ``timed_out``: the service took too long (HTTP 504 or a read timeout); asking for less helps.
    """

    def __init__(
        self,
        message: str,
        status: int,
        *,
        rate_limited: bool = False,
        transient: bool = False,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.rate_limited = rate_limited
        self.transient = transient
        self.timed_out = timed_out or status == 504


# Seconds to wait before retrying a response the service means as a rate limit (the client waits
# at least its own doubling back-off), or None when the response is not a rate limit.
RateLimitWait = Callable[[httpx.Response], float | None]


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class PageSize:
    """How many items a listing asks for, halved when the service times out on that many.

    One instance serves a whole listing (or a whole sync), so once shrunk it stays shrunk.
    """

    def __init__(self, source: str, service: str, size: int, smallest: int) -> None:
        self.source = source
        self.service = service
        self.size = size
        self.smallest = min(smallest, size)

    def fetch(self, get: Callable[[int, int | None], T]) -> T:
        """``get(size, timeout_attempts)``, again with half the size while it times out."""
        while True:
            shrinkable = self.size > self.smallest
            try:
                return get(self.size, ATTEMPTS_BEFORE_SHRINKING if shrinkable else None)
            except ApiError as exc:
                if not (exc.timed_out and shrinkable):
                    raise
                before, self.size = self.size, max(self.smallest, self.size // 2)
                log.warning(
                    "%s: %s timed out on %d items at once; asking for %d",
                    self.source,
                    self.service,
                    before,
                    self.size,
                )


class ApiClient:
    """JSON requests to one service for one source; see the module docstring for the error rules."""

    def __init__(
        self,
        source: str,
        service: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        credential_hint: str = "",
        max_wait_s: float = MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        rate_limit_wait: RateLimitWait | None = None,
        transient: Collection[int] = (),
    ) -> None:
        self.source = source
        self.service = service
        self.credential_hint = credential_hint
        self._max_wait_s = max_wait_s
        self.sleep = sleep
        self._rate_limit_wait = rate_limit_wait
        self._retry_statuses = frozenset((*_RETRY, *transient))
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=dict(headers or {}),
            auth=auth,
            timeout=TIMEOUT,
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, timeout_attempts: int | None = None
    ) -> Any:
        return self.request("GET", path, params=params, timeout_attempts=timeout_attempts).json()

    def post_json(
        self,
        path: str,
        body: Any,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_attempts: int | None = None,
    ) -> Any:
        return self.request("POST", path, params=params, json=body, timeout_attempts=timeout_attempts).json()

    def request(
        self, method: str, path: str, *, timeout_attempts: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request with the retry rules; returns a 2xx response or raises.

        ``timeout_attempts`` caps the tries when the service times out (504 or a read timeout).
        """
        slow_most = max(1, min(timeout_attempts or MAX_ATTEMPTS, MAX_ATTEMPTS))
        attempt = transport_attempt = timeouts = 0
        while True:
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                transport_attempt += 1
                if transport_attempt >= min(slow_most, MAX_TRANSPORT_ATTEMPTS):
                    where = f"{self.service} at {self._client.base_url}"
                    msg = f"source {self.source!r}: cannot reach {where}: {exc}"
                    slow = isinstance(exc, httpx.TimeoutException)
                    raise ApiError(msg, 0, rate_limited=True, transient=True, timed_out=slow) from exc
                self.sleep(BACKOFF_S)
                continue
            delay = self._retry_delay(response, attempt)
            timeouts += response.status_code == 504  # only repeated timeouts count against slow_most
            spent = timeouts >= slow_most if response.status_code == 504 else attempt + 1 >= MAX_ATTEMPTS
            if delay is not None and not spent and attempt + 1 < MAX_ATTEMPTS:
                if delay > self._max_wait_s:
                    msg = (
                        f"source {self.source!r}: {self.service} is rate limiting and asked to wait "
                        f"{delay:.0f} s; sync again later"
                    )
                    raise ApiError(msg, response.status_code, rate_limited=True, transient=True)
                log.info("%s: HTTP %s, retrying in %.1f s", self.service, response.status_code, delay)
                self.sleep(delay)
                attempt += 1
                continue
            if delay is not None:
                msg = (
                    f"source {self.source!r}: {self.service} still answered HTTP {response.status_code} "
                    f"after {attempt + 1} attempts (rate limited or overloaded); sync again later"
                )
                raise ApiError(msg, response.status_code, rate_limited=True, transient=True)
            self._raise_for_status(response)
            return response

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying ``response``, or None when it is not worth a retry."""
        backoff = BACKOFF_S * 2**attempt
        if self._rate_limit_wait is not None and response.status_code >= 400:
            wait = self._rate_limit_wait(response)
            if wait is not None:
                return max(wait, backoff)
        if response.status_code in self._retry_statuses:
            return retry_after(response.headers.get("retry-after"), backoff)
        return None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            hint = f": {self.credential_hint}" if self.credential_hint else ""
            msg = (
                f"source {self.source!r}: {self.service} refused the credentials "
                f"(HTTP 401: missing, wrong or expired){hint}"
            )
            raise ApiError(msg, status)
        detail = _error_detail(response)
        where = response.request.url.path
        msg = f"source {self.source!r}: {self.service} answered HTTP {status} for {where}{detail}"
        raise ApiError(msg, status)


def _error_detail(response: httpx.Response) -> str:
    """The service's own error message, short, when it sent one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("message", "error", "error_description"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return f": {value[:200]}"
    return ""
