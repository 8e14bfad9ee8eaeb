"""A local stand-in for the Google Drive API v3 (developers.google.com/drive/api/reference/rest/v3).

- ``GET /files``: ``q`` (the search grammar's ``and`` / ``or`` / parentheses over ``trashed``,
  ``mimeType``, ``modifiedTime`` comparisons and ``'ID' in parents``; anything else is HTTP 400
  "Invalid Value", as Drive answers), ``orderBy=modifiedTime``, ``pageSize`` (1-1000),
  ``pageToken`` / ``nextPageToken`` (bound to its query), ``fields`` (only the requested fields
  of each file come back; ``permissions`` are left out for shared-drive files, as Drive does).
- ``GET /files/{id}``: metadata, or the content with ``alt=media`` (403 ``fileNotDownloadable``
  for Google Docs formats).
- ``GET /files/{id}/export?mimeType=``: Docs as HTML or text, Sheets as CSV, Slides as text;
  403 ``exportSizeLimitExceeded`` for files marked too large.
- ``GET /files/{id}/permissions``: paginated permissions.
- Errors in Google's shape: ``{"error": {"code", "message", "errors": [{"reason"}], "status"}}``;
  401 without the right ``Authorization: Bearer`` token (the static ``token`` or one the token
  endpoint issued and has not expired).
- ``POST /token``: Google's OAuth 2.0 token endpoint (developers.google.com/identity/protocols/oauth2):
  a refresh token grant for a registered ``(client_id, client_secret, refresh_token)``, or a
  service account's signed JWT (``urn:ietf:params:oauth:grant-type:jwt-bearer``, RS256, checked
  against the registered public key; ``sub`` is recorded for domain-wide delegation). A JWT with
  ``sub`` asking for a scope the Admin console has not granted the service account
  (``delegated_scopes``) gets 401 ``unauthorized_client``, as Google answers
  (developers.google.com/identity/protocols/oauth2/service-account#error-codes).

Quirks of the real service:

- Shared-drive files are listed only with ``corpora=allDrives`` (or ``corpora=drive`` and its
  ``driveId``), ``includeItemsFromAllDrives=true`` and ``supportsAllDrives=true``; without them
  ``files.list`` searches the user's corpus only
  (developers.google.com/drive/api/guides/enable-shareddrives).
- ``times_out_above``: a ``files.list`` that asks for the files' ``permissions`` with a larger
  ``pageSize`` answers 504 ``DEADLINE_EXCEEDED`` (cloud.google.com/apis/design/errors; Drive's
  own advice for 5xx is to retry with back-off: developers.google.com/drive/api/guides/handle-errors).
- ``order_by_ignored``: ``orderBy`` is ignored, as for accounts with about a million files
  (developers.google.com/drive/api/reference/rest/v3/files/list, ``orderBy``).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.http_service import FakeService, Request, Response, json_response

TOKEN = "ya29.test-access-token"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.readonly"
FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    modified: str
    parents: list[str]
    content: bytes = b""  # uploaded bytes, or for Google formats the exported text (HTML for Docs)
    permissions: list[dict[str, Any]] = field(default_factory=list)
    trashed: bool = False
    shared_drive: str | None = None
    too_large_to_export: bool = False


def google_error(status: int, message: str, reason: str) -> Response:
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        504: "DEADLINE_EXCEEDED",
    }
    payload = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": names.get(status, "UNKNOWN"),
        }
    }
    return json_response(status, payload)


class QueryError(ValueError):
    pass


@functools.lru_cache(maxsize=256)
def _tokens(q: str) -> tuple[str, ...]:
    return tuple(re.findall(r"'(?:[^'\\]|\\.)*'|\(|\)|>=|<=|!=|=|<|>|[A-Za-z_]+", q))


def matches(q: str, file: DriveFile) -> bool:
    """Evaluate Drive's search grammar (the part the connector uses) against one file."""
    tokens = _tokens(q)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise QueryError("unexpected end of query")
        position += 1
        return tokens[position - 1]

    def either() -> bool:
        value = both()
        while peek() == "or":
            take()
            value = both() or value
        return value

    def both() -> bool:
        value = atom()
        while peek() == "and":
            take()
            value = atom() and value
        return value

    def atom() -> bool:
        if peek() == "(":
            take()
            value = either()
            if take() != ")":
                raise QueryError("missing )")
            return value
        left = take()
        operator = take()
        if left.startswith("'") and operator == "in":
            if take() != "parents":
                raise QueryError("only 'ID' in parents is supported")
            return left.strip("'") in file.parents
        right = take()
        value = right.strip("'")
        if left == "trashed" and operator == "=" and right in ("true", "false"):
            return file.trashed == (right == "true")
        if left == "mimeType" and operator in ("=", "!="):
            return (file.mime_type == value) == (operator == "=")
        if left == "modifiedTime" and right.startswith("'"):
            compare = {">": file.modified > value, ">=": file.modified >= value, "<": file.modified < value,
                       "<=": file.modified <= value, "=": file.modified == value}  # fmt: skip
            if operator in compare:
                return compare[operator]
        raise QueryError(f"unsupported term {left} {operator} {right}")

    result = either()
    if position != len(tokens):
        raise QueryError("trailing tokens")
    return result


def _requested(fields: str, inner: str = "files") -> set[str] | None:
    """Top-level file fields named in ``fields`` (``nextPageToken,files(id,name)``); None = all."""
    match = re.search(rf"{inner}\(([^()]*(?:\([^()]*\)[^()]*)*)\)", fields)
    if not match:
        return None
    names, depth, current = set(), 0, ""
    for char in match.group(1):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            names.add(current.strip())
            current = ""
            continue
        if depth == 0 and char not in "()":
            current += char
    names.add(current.strip())
    return {name for name in names if name}


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class FakeDrive(FakeService):
    token: str = TOKEN
    files: dict[str, DriveFile] = field(default_factory=dict)
    clock: datetime = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    order_by_ignored: bool = False
    times_out_above: int | None = None
    # The token endpoint: refresh tokens and service accounts it knows, and what it issued.
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> client id, secret
    service_accounts: dict[str, Any] = field(default_factory=dict)  # client_email -> public key
    issued: dict[str, str] = field(default_factory=dict)  # access token -> who it was issued to
    issued_scopes: dict[str, set[str]] = field(default_factory=dict)  # access token -> its scopes
    delegated_scopes: set[str] = field(default_factory=lambda: {DRIVE_SCOPE})  # domain-wide delegation
    token_grants: list[dict[str, str]] = field(default_factory=list)

    def expire_tokens(self) -> None:
        """Every issued access token stops working, as an hour later."""
        self.issued.clear()

    def tick(self) -> str:
        self.clock += timedelta(seconds=1, milliseconds=250)
        return self.stamp()

    def stamp(self) -> str:
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.clock.microsecond // 1000:03d}Z"

    def add(
        self,
        name: str,
        mime_type: str,
        content: bytes | str = b"",
        *,
        parents: list[str] | None = None,
        **kwargs: Any,
    ) -> DriveFile:
        file_id = kwargs.pop("file_id", None) or f"f{len(self.files) + 1:04d}" + "x" * 8
        modified = kwargs.pop("modified", None) or self.tick()
        data = content.encode() if isinstance(content, str) else content
        file = DriveFile(file_id, name, mime_type, modified, parents or ["root"], data, **kwargs)
        self.files[file_id] = file
        return file

    def edit(self, file_id: str, content: bytes | str) -> None:
        file = self.files[file_id]
        file.content = content.encode() if isinstance(content, str) else content
        file.modified = self.tick()

    # -- serving ---------------------------------------------------------------------------

    def error_body(self, status: int) -> bytes:
        reason = "rateLimitExceeded" if status in (403, 429) else "backendError"
        return google_error(status, f"simulated HTTP {status}", reason)[2]

    def route(self, request: Request) -> Response:
        if request.path == "/token" and request.method == "POST":
            return self._grant(request)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer != self.token and bearer not in self.issued:
            return google_error(401, "Request had invalid authentication credentials.", "authError")
        if request.path == "/files":
            return self._list(request)
        match = re.match(r"^/files/([^/]+)(/export|/permissions)?$", request.path)
        if not match:
            return google_error(404, "Not Found", "notFound")
        file = self.files.get(match.group(1))
        if file is None:
            return google_error(404, f"File not found: {match.group(1)}.", "notFound")
        if match.group(2) == "/export":
            return self._export(request, file)
        if match.group(2) == "/permissions":
            return self._permissions(request, file)
        if request.query.get("alt") == "media":
            if file.mime_type.startswith("application/vnd.google-apps."):
                return google_error(
                    403,
                    "Only files with binary content can be downloaded. Use Export.",
                    "fileNotDownloadable",
                )
            return 200, {"Content-Type": file.mime_type}, file.content
        return json_response(200, self._json(file, _requested(f"files({request.query.get('fields', '')})")))

    def _json(self, file: DriveFile, wanted: set[str] | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": "drive#file",
            "id": file.id,
            "name": file.name,
            "mimeType": file.mime_type,
            "modifiedTime": file.modified,
            "parents": file.parents,
            "trashed": file.trashed,
            "webViewLink": f"https://docs.google.com/document/d/{file.id}/edit",
            "permissionIds": [p.get("id", f"p{i}") for i, p in enumerate(file.permissions)],
        }
        if not file.mime_type.startswith("application/vnd.google-apps."):
            data["size"] = str(len(file.content))
        if file.shared_drive:
            data["driveId"] = file.shared_drive  # and no "permissions": Drive leaves them out
        else:
            data["permissions"] = file.permissions
        if wanted is None:
            return data
        return {key: value for key, value in data.items() if key in wanted}

    def _grant(self, request: Request) -> Response:
        form = request.form()
        grant = form.get("grant_type", "")
        who, scopes = "", {DRIVE_SCOPE}
        if grant == "refresh_token":
            known = self.refresh_tokens.get(form.get("refresh_token", ""))
            if known and known == (form.get("client_id"), form.get("client_secret")):
                who = f"refresh:{known[0]}"
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            who, scopes = self._check_assertion(form.get("assertion", ""))
        if who == "unauthorized_client":
            description = (
                "Client is unauthorized to retrieve access tokens using this method, or client not "
                "authorized for any of the scopes requested."
            )
            return json_response(401, {"error": "unauthorized_client", "error_description": description})
        if not who:
            payload = {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}
            return json_response(400, payload)
        self.token_grants.append({"grant_type": grant, "who": who})
        access = "ya29." + secrets.token_urlsafe(16)
        self.issued[access] = who
        self.issued_scopes[access] = scopes
        return json_response(200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> tuple[str, set[str]]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, signature = assertion.split(".")
            claims = json.loads(_b64url(body))
            key = self.service_accounts[claims["iss"]]
            key.verify(_b64url(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:  # noqa: BLE001 - any malformed or forged assertion is an invalid grant
            return "", set()
        # The audience is always Google's token endpoint, wherever the JWT is posted.
        if claims.get("aud") != "https://oauth2.googleapis.com/token" or claims.get("exp", 0) < time.time():
            return "", set()
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & {DRIVE_SCOPE, DIRECTORY_SCOPE}:
            return "", set()
        if claims.get("sub") and not scopes <= self.delegated_scopes:
            return "unauthorized_client", set()
        return f"sa:{claims['iss']}" + (f" as {claims['sub']}" if claims.get("sub") else ""), scopes

    def _list(self, request: Request) -> Response:
        q = request.query.get("q", "")
        page_size = int(request.query.get("pageSize", 100))
        if not 1 <= page_size <= 1000:
            return google_error(400, "Invalid value for pageSize", "invalid")
        heavy = "permissions" in request.query.get("fields", "")
        if heavy and self.times_out_above is not None and page_size > self.times_out_above:
            return google_error(504, "Deadline expired before operation could complete.", "backendError")
        try:
            chosen = [f for f in self.files.values() if matches(q, f)] if q else list(self.files.values())
        except QueryError as exc:
            return google_error(400, f"Invalid Value: {exc}", "invalid")
        chosen = [f for f in chosen if self._in_corpora(f, request.query)]
        if request.query.get("orderBy") == "modifiedTime":
            # Ignored for very large accounts: the files come in whatever order Drive keeps them.
            chosen.sort(
                key=lambda f: f.id if self.order_by_ignored else f.modified, reverse=self.order_by_ignored
            )
        elif request.query.get("orderBy"):
            return google_error(400, "Invalid orderBy", "invalid")
        start = 0
        token = request.query.get("pageToken")
        if token:
            decoded = json.loads(base64.b64decode(token))
            if decoded["q"] != q:
                return google_error(400, "Invalid pageToken: the query changed", "invalid")
            start = decoded["offset"]
        chunk = chosen[start : start + page_size]
        wanted = _requested(request.query.get("fields", ""))
        payload: dict[str, Any] = {"kind": "drive#fileList", "files": [self._json(f, wanted) for f in chunk]}
        if start + page_size < len(chosen):
            payload["nextPageToken"] = base64.b64encode(
                json.dumps({"q": q, "offset": start + page_size}).encode()
            ).decode()
        return json_response(200, payload)

    @staticmethod
    def _in_corpora(file: DriveFile, query: dict[str, str]) -> bool:
        """Whether files.list searches where ``file`` lives (the user's corpus unless told otherwise)."""
        corpora = query.get("corpora", "user")
        if corpora == "drive":
            return file.shared_drive is not None and file.shared_drive == query.get("driveId")
        if file.shared_drive is None:
            return True
        every = query.get("includeItemsFromAllDrives") == "true" and query.get("supportsAllDrives") == "true"
        return corpora == "allDrives" and every

    def _export(self, request: Request, file: DriveFile) -> Response:
        wanted = request.query.get("mimeType", "")
        formats = {DOC: {"text/html", "text/plain"}, SHEET: {"text/csv"}, SLIDES: {"text/plain"}}
        if wanted not in formats.get(file.mime_type, set()):
            return google_error(
                400, f"Export of {file.mime_type} to {wanted} is not supported.", "badRequest"
            )
        if file.too_large_to_export:
            return google_error(403, "This file is too large to be exported.", "exportSizeLimitExceeded")
        content = file.content
        if file.mime_type == DOC and wanted == "text/plain":
            content = re.sub(rb"<[^>]+>", b"", content)
        return 200, {"Content-Type": wanted}, content

    def _permissions(self, request: Request, file: DriveFile) -> Response:
        size = int(request.query.get("pageSize", 100))
        start = int(request.query.get("pageToken") or 0)
        payload: dict[str, Any] = {"permissions": file.permissions[start : start + size]}
        if start + size < len(file.permissions):
            payload["nextPageToken"] = str(start + size)
        return json_response(200, payload)
