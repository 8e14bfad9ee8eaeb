"""What the three parts of the GitHub connector (files, issues, discussions) share."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from connectors.api_client import ApiClient, ApiError, retry_after
from connectors.saas import parse_time as parse_iso_time
from core.documents import Acl, LoadFailure
from core.errors import SourceError

BATCH_SIZE = 32
PER_PAGE = 100  # the REST API's maximum page size
# GitHub's advice for a secondary rate limit that names no wait: "wait for at least one minute".
SECONDARY_LIMIT_WAIT_S = 60.0
# A GraphQL answer naming the secondary rate limit (HTTP 200) is waited out this many times.
SECONDARY_LIMIT_RETRIES = 3
# GitHub's gateway answers these when a query runs long (GraphQL above all); retried with back-off.
TRANSIENT = (502, 504)


@dataclass(frozen=True)
class Repo:
    """One repository as one poll sees it."""

    api: ApiClient
    source: str
    full_name: str  # owner/name
    html_url: str  # https://github.com/owner/name, or the GHE equivalent
    branch: str
    acl: Acl

    @property
    def rest(self) -> str:
        return f"/repos/{self.full_name}"

    def failure(self, item_id: str, exc: ApiError) -> LoadFailure:
        return LoadFailure(item_id, self.source, str(exc).removeprefix(f"source {self.source!r}: "))


def github_rate_limit_wait(response: httpx.Response) -> float | None:
    """How long GitHub asks us to wait (primary and secondary limits), or None for a plain 403.

    GitHub answers 403 or 429 for both. Retry-After wins; else x-ratelimit-remaining: 0 with
    x-ratelimit-reset (epoch seconds); else a message naming the secondary limit means a minute.
    A 403 with none of these is a permission problem and is not retried.
    """
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    if headers.get("retry-after"):
        return retry_after(headers["retry-after"], SECONDARY_LIMIT_WAIT_S)
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, int(reset) - time.time()) + 1.0  # +1: the reset second itself
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    if "rate limit" in message.lower():
        return SECONDARY_LIMIT_WAIT_S
    return None


def parse_time(value: object) -> datetime:
    """GitHub's ISO 8601 stamps ("2024-05-01T10:00:00Z"); now when missing or malformed."""
    return parse_iso_time(value) or datetime.now(UTC)


def login(user: object) -> str:
    if isinstance(user, dict) and user.get("login"):
        return f"@{user['login']}"
    return "a deleted user"


def paged(api: ApiClient, path: str, params: dict[str, str | int]) -> Iterator[list[dict]]:
    """The pages of a REST listing, following the Link header's rel="next" as GitHub documents."""
    url: str | None = path
    query: dict[str, str | int] | None = params
    while url:
        response = api.request("GET", url, params=query)
        page = response.json()
        if not isinstance(page, list):
            msg = f"source {api.source!r}: GitHub answered {path} with something other than a list"
            raise SourceError(msg)
        yield page
        url = response.links.get("next", {}).get("url")
        query = None  # the next link carries every parameter
