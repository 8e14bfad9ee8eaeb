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
  401 without the right ``Authorization: Bearer`` token.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.http_service import FakeService, Request, Response, json_response

TOKEN = "ya29.test-access-token"
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


@dataclass
class FakeDrive(FakeService):
    token: str = TOKEN
    files: dict[str, DriveFile] = field(default_factory=dict)
    clock: datetime = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

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
        if request.headers.get("authorization") != f"Bearer {self.token}":
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

    def _list(self, request: Request) -> Response:
        q = request.query.get("q", "")
        page_size = int(request.query.get("pageSize", 100))
        if not 1 <= page_size <= 1000:
            return google_error(400, "Invalid value for pageSize", "invalid")
        try:
            chosen = [f for f in self.files.values() if matches(q, f)] if q else list(self.files.values())
        except QueryError as exc:
            return google_error(400, f"Invalid Value: {exc}", "invalid")
        if request.query.get("orderBy") == "modifiedTime":
            chosen.sort(key=lambda f: f.modified)
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
