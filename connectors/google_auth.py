"""Google credentials that renew themselves, through ``google-auth``, as an ``httpx.Auth``.

A static access token expires after an hour, so a scheduled sync needs credentials it can renew:

- a **service account** key (JSON with ``"type": "service_account"``), optionally acting as a
  user of the domain (``delegate``: domain-wide delegation), or
- an OAuth **refresh token** (JSON with ``"type": "authorized_user"``: ``client_id``,
  ``client_secret``, ``refresh_token``), as ``gcloud auth application-default login`` writes.

The environment variable named by the source holds the JSON itself or the path of a file that
holds it (secrets come only from the environment). Its ``token_uri`` says where tokens are
fetched (Google's ``https://oauth2.googleapis.com/token`` unless the JSON says otherwise).

Tokens are fetched through httpx (no ``requests``), before the first request and whenever the
current one is about to expire; a 401 answer refreshes once and sends the request again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx
from google.auth import exceptions as google_exceptions
from google.auth.credentials import Credentials
from google.auth.transport import Response as GoogleResponse
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from connectors.api_client import ApiError
from core.errors import SourceError

DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive.readonly",)
# groups.list by member (Admin SDK Directory API); with a service account, granted in the Admin
# console's domain-wide delegation and used acting as an administrator.
DIRECTORY_SCOPES = ("https://www.googleapis.com/auth/admin.directory.group.readonly",)
TOKEN_TIMEOUT_S = 30.0  # the token endpoint answers in well under a second; don't hang a sync on it


class _Answer(GoogleResponse):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class _HttpxRequest:
    """google-auth's transport interface (a callable request) on top of httpx."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> GoogleResponse:
        try:
            with httpx.Client(transport=self._transport, timeout=timeout or TOKEN_TIMEOUT_S) as client:
                return _Answer(client.request(method, url, content=body, headers=dict(headers or {})))
        except httpx.HTTPError as exc:
            raise google_exceptions.TransportError(str(exc)) from exc


def load_credentials(
    source: str, variable: str, *, scopes: tuple[str, ...] = DRIVE_SCOPES, delegate: str | None = None
) -> Credentials | None:
    """The credentials ``variable`` holds (JSON or a path to it); None when it is not set."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    text = value
    if not value.startswith("{"):
        try:
            text = Path(value).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"source {source!r}: {variable} names {value!r}, which cannot be read: {exc.strerror}"
            raise SourceError(msg) from None
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        msg = f"source {source!r}: {variable} must hold a Google credentials JSON (or the path of one)"
        raise SourceError(msg)
    kind = info.get("type")
    try:
        if kind == "service_account":
            found = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
            return found.with_subject(delegate) if delegate else found
        if kind == "authorized_user":
            user = user_credentials.Credentials.from_authorized_user_info(info, scopes=list(scopes))
            # google-auth sets Google's endpoint here whatever the JSON says; honour the JSON.
            return user.with_token_uri(info["token_uri"]) if info.get("token_uri") else user
    except (ValueError, KeyError) as exc:
        msg = f"source {source!r}: the credentials in {variable} are incomplete: {exc}"
        raise SourceError(msg) from None
    msg = (
        f"source {source!r}: {variable} holds credentials of type {kind!r}; use a service account key "
        "(type service_account) or a refresh token (type authorized_user)"
    )
    raise SourceError(msg)


class GoogleAuth(httpx.Auth):
    """Adds a fresh bearer token to each request, refreshing it when needed."""

    def __init__(
        self,
        source: str,
        variable: str,
        credentials: Credentials,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._source = source
        self._variable = variable
        self._credentials = credentials
        self._request = _HttpxRequest(transport)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._credentials.valid:
            self._refresh()
        request.headers["Authorization"] = f"Bearer {self._credentials.token}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: one fresh token, one more try
            self._refresh()
            request.headers["Authorization"] = f"Bearer {self._credentials.token}"
            yield request

    def _refresh(self) -> None:
        try:
            self._credentials.refresh(self._request)
        except google_exceptions.RefreshError as exc:
            reason = exc.args[0] if exc.args else exc
            msg = f"source {self._source!r}: Google refused the credentials in {self._variable}: {reason}"
            raise ApiError(msg, 401) from None  # as a 401 answer: the credentials need fixing
        except google_exceptions.TransportError as exc:
            msg = f"source {self._source!r}: cannot reach Google's token endpoint: {exc}"
            raise SourceError(msg) from None
