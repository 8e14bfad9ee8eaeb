"""Documents from Google Drive (API v3): Google Docs, Sheets and Slides, PDF, Word, Markdown, text, HTML.

``[connectors.NAME] type = "google_drive"``; options: ``folder_id`` (only this folder and its
subfolders; default everything the account can see, in My Drive and every shared drive),
``drive_id`` (one shared drive), ``api_url`` (``https://www.googleapis.com/drive/v3``; tests),
``credentials_env`` (``GOOGLE_DRIVE_CREDENTIALS``), ``delegate`` (a user's email, for a service
account with domain-wide delegation) and ``token_env`` (``GOOGLE_DRIVE_TOKEN``); for group
memberships, ``groups`` (``true``), ``directory_url`` (``https://admin.googleapis.com/admin/directory/v1``)
and ``directory_delegate`` (an administrator the service account acts as; default ``delegate``).

Credentials (see ``connectors/google_auth.py``): ``credentials_env`` names a variable holding a
service account key or a refresh token (the JSON, or the path of its file); ``google-auth``
renews the access token as it expires, so scheduled syncs keep working. Without it,
``token_env`` may hold a bare access token (``drive.readonly`` scope), which expires after an
hour: fine for a one-off sync, not for a worker.

Every listing asks for ``corpora=allDrives`` with ``includeItemsFromAllDrives`` and
``supportsAllDrives`` (or ``corpora=drive`` with ``driveId``): without them Drive searches only
the account's own corpus and shared-drive files are never seen.

Incremental by modified time: ``files.list`` with ``q = "trashed = false and modifiedTime >= T"``
(plus ``'FOLDER' in parents`` for each folder under ``folder_id``), ``pageToken`` pagination.
Drive documents that ``orderBy`` is ignored for accounts with very many files, so the order is
not trusted: the whole window since the position is listed (about 1 KB of metadata per file;
every file on a first sync) and sorted here by modified time and id. The position keeps the ids
delivered at its timestamp, so files sharing a modified time are neither lost nor read twice,
and a sync killed midway resumes after its last batch.

Google Docs are exported as HTML (headings survive), Sheets as CSV (the first sheet, as Drive
exports it) and Slides as text; other files are downloaded
(``alt=media``) and parsed by type. Files of other types are skipped.

Access comes from each file's permissions: ``anyone`` → public; ``user`` / ``group`` →
``google:user:EMAIL`` / ``google:group:EMAIL``; ``domain`` → ``google:domain:DOMAIN``; anything
else adds nobody. Files in shared drives carry no ``permissions`` in listings; they are read
with ``permissions.list``, and a file whose permissions cannot be read is private. The source's
``public`` / ``principals`` add to what Drive says. A permission change alone does not change a
file's modified time, so it reaches the index with the file's next edit or a ``--full`` sync.

Group memberships (for the identity map, asked by the worker): the Admin SDK Directory API's
``groups.list?userKey=EMAIL`` (scope ``admin.directory.group.readonly``) gives the groups a user
with a confirmed email is a direct member of, as ``google:group:EMAIL``; a file shared with a
group then reaches its members' DMs. Nested groups are not followed (members of a group inside
the shared group read less, never more). Without the scope Google answers 403: that is logged
once and the source answers no groups.

Errors: 401 names the credentials to fix; 429 and Google's 403 ``rateLimitExceeded`` /
``userRateLimitExceeded`` are retried with back-off, and so are 500, 502 and 504 (Google's
advice for ``backendError``); a listing of files with their permissions that times out (504
``DEADLINE_EXCEEDED`` or a read timeout) asks for half as many files, down to 10, and goes on
from the same page token; a sync that still meets them stops, prunes nothing and is marked
as a transient failure; a file that cannot
be read or exported (over Google's 10 MB export limit, say) is a ``LoadFailure``, retried on
the next poll. ``list_ids`` lists every non-trashed file of a supported type, ids only.
"""

from __future__ import annotations

import csv
import heapq
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import httpx
from pydantic import ValidationInfo, field_validator

from connectors.api_client import ApiClient, ApiError, PageSize
from connectors.google_auth import DIRECTORY_SCOPES, GoogleAuth, load_credentials
from connectors.options import ConnectorOptions, Email, EnvName, HttpUrl, Text
from connectors.parsers import PARSERS, parse_file, parse_html, parse_markdown
from connectors.saas import (
    Checkpoints,
    Position,
    acl_fingerprint,
    note_outcome,
    parse_time,
    read_cursor,
    retries,
    stops_sync,
    token_from_env,
    unparsable,
    with_grants,
)
from core.documents import Acl, Document, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://www.googleapis.com/drive/v3"
DEFAULT_DIRECTORY_URL = "https://admin.googleapis.com/admin/directory/v1"
GROUPS_PAGE_SIZE = 200  # groups.list's maximum maxResults
# Google asks clients to retry these with exponential back-off
# (developers.google.com/drive/api/guides/handle-errors#resolve_a_5xx_error).
TRANSIENT = (500, 502, 504)
BATCH_SIZE = 32
PAGE_SIZE = 100  # listings that carry permissions; Drive allows up to 1000
MIN_PAGE_SIZE = 10  # halved down to this when Drive times out on a page of files with permissions
IDS_PAGE_SIZE = 1000
MAX_FILE_BYTES = 25 * 1024 * 1024  # as for files on disk: bigger ones are exports or archives
MAX_FOLDERS = 5000  # a folder tree bigger than this is a whole drive: use drive_id instead
# Each "'ID' in parents" clause lengthens q; Google rejects very long queries, so a large folder
# tree is listed with several queries whose answers are merged by modified time.
PARENTS_PER_QUERY = 40

FOLDER = "application/vnd.google-apps.folder"
FILE_FIELDS = (
    "id,name,mimeType,modifiedTime,webViewLink,size,trashed,parents,driveId,permissionIds,"
    "permissions(id,type,role,emailAddress,domain,deleted)"
)
_RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _csv_table(data: bytes) -> tuple[str, str]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"))))
    lines = [
        "| " + " | ".join(cell.strip() for cell in row) + " |" for row in rows if any(c.strip() for c in row)
    ]
    return "", "\n".join(lines)


# Google's own formats: exported (files/{id}/export) as the type that keeps the most structure.
EXPORTS: dict[str, tuple[str, Callable[[bytes], tuple[str, str]]]] = {
    "application/vnd.google-apps.document": ("text/html", parse_html),
    "application/vnd.google-apps.spreadsheet": ("text/csv", _csv_table),
    "application/vnd.google-apps.presentation": ("text/plain", parse_markdown),
}
# Uploaded files, by MIME type; otherwise by the name's extension when a parser knows it.
DOWNLOADS = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/plain": ".txt",
    "text/html": ".html",
}


def _suffix(file: dict[str, Any]) -> str | None:
    """The parser suffix for a downloadable file, or None when it is not a type we read."""
    mime_type = str(file.get("mimeType", ""))
    if mime_type in DOWNLOADS:
        return DOWNLOADS[mime_type]
    suffix = PurePosixPath(str(file.get("name", ""))).suffix.lower()
    if suffix in PARSERS and not mime_type.startswith("application/vnd.google-apps."):
        return suffix
    return None


def supported(file: dict[str, Any]) -> bool:
    return str(file.get("mimeType", "")) in EXPORTS or _suffix(file) is not None


def drive_rate_limit_wait(response: httpx.Response) -> float | None:
    """Google's 403 rate limits carry no Retry-After: retry them with the client's back-off."""
    if response.status_code != 403:
        return None
    try:
        errors = response.json().get("error", {}).get("errors", [])
    except (ValueError, AttributeError):
        return None
    reasons = {str(e.get("reason")) for e in errors if isinstance(e, dict)}
    return 0.0 if reasons & _RATE_LIMIT_REASONS else None


class GoogleDriveOptions(ConnectorOptions):
    """The keys of a ``type = "google_drive"`` table."""

    folder_id: Text | None = None
    drive_id: Text | None = None
    api_url: HttpUrl = DEFAULT_API_URL
    token_env: EnvName = "GOOGLE_DRIVE_TOKEN"
    credentials_env: EnvName = "GOOGLE_DRIVE_CREDENTIALS"
    delegate: Email | None = None  # a user the service account acts as (domain-wide delegation)
    groups: bool = True  # ask the Directory API for users' groups (identity map)
    directory_url: HttpUrl = DEFAULT_DIRECTORY_URL
    directory_delegate: Email | None = None  # an administrator, for groups.list; default: delegate

    @field_validator("folder_id", "drive_id")
    @classmethod
    def _drive_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _ID.match(value):
            msg = f"'{info.field_name}' must be a Drive id (letters, digits, '-' and '_'), not {value!r}"
            raise ValueError(msg)
        return value


@dataclass
class GoogleDriveConnector:
    name: str
    grants: Acl  # what the config grants on top of each file's own permissions
    folder_id: str | None = None
    drive_id: str | None = None
    api_url: str = DEFAULT_API_URL
    token_env: str = "GOOGLE_DRIVE_TOKEN"
    credentials_env: str = "GOOGLE_DRIVE_CREDENTIALS"
    delegate: str | None = None
    groups: bool = True
    directory_url: str = DEFAULT_DIRECTORY_URL
    directory_delegate: str | None = None
    kind: str = "google_drive"
    cursor_keeps_failures: ClassVar[bool] = True  # failed ids ride in the cursor and are retried
    sleep: Callable[[float], None] = time.sleep  # tests pass a fast one
    _groups_refused: bool = field(default=False, repr=False)  # a 403 on groups.list was logged

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> GoogleDriveConnector:
        options = GoogleDriveOptions.parse(settings)
        return cls(
            name=name,
            grants=Acl(public=settings.public, principals=frozenset(settings.principals)),
            folder_id=options.folder_id,
            drive_id=options.drive_id,
            api_url=options.api_url,
            token_env=options.token_env,
            credentials_env=options.credentials_env,
            delegate=options.delegate,
            groups=options.groups,
            directory_url=options.directory_url,
            directory_delegate=options.directory_delegate,
        )

    def describe(self) -> str:
        where = f"folder {self.folder_id}" if self.folder_id else "every file the account can see"
        if self.drive_id:
            where += f" in shared drive {self.drive_id}"
        return f"Google Drive: {where}"

    # -- PollsChanges ---------------------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        with self._client() as api:
            state = read_cursor(self.name, cursor)
            stamp = acl_fingerprint(self.grants)
            if state.get("acl") != stamp:
                state = {"acl": stamp}  # the config's grants changed: send everything again
            checkpoints = Checkpoints(state, cursor)
            queries = self._queries(api)
            yield from self._retry(api, state, checkpoints)
            position = Position.from_json(state.get("files"))
            if position.since and not _STAMP.match(position.since):
                position = Position()
            batch: Batch = []
            for file in self._changed(api, queries, position):
                modified, file_id = str(file.get("modifiedTime", "")), str(file.get("id", ""))
                if not position.is_new(modified, file_id):
                    continue
                position = position.advanced(modified, file_id)
                if not supported(file):
                    continue
                item = self._load(api, file)
                note_outcome(state, file_id, item)
                if item is not None:
                    batch.append(item)
                if len(batch) >= BATCH_SIZE:
                    state["files"] = position.to_json()
                    yield from checkpoints.emit(batch)
                    batch = []
            state["files"] = position.to_json()
            yield from checkpoints.emit(batch)

    def list_ids(self) -> Iterator[str]:
        with self._client() as api:
            ids: list[str] = []
            for query in self._queries(api):
                for file in self._list(api, query, "files(id,name,mimeType)", IDS_PAGE_SIZE):
                    if supported(file):
                        ids.append(str(file["id"]))
        yield from ids  # only once every listing succeeded: a half listing would prune too much

    # -- GroupDirectory (the identity map) -------------------------------------------------

    def memberships(self, principals: frozenset[str]) -> frozenset[str] | None:
        """The Google groups of each ``google:user:EMAIL`` in ``principals`` (direct memberships)."""
        emails = sorted(p.removeprefix("google:user:") for p in principals if p.startswith("google:user:"))
        if not self.groups or not emails:
            return frozenset()
        found: set[str] = set()
        with self._client(directory=True) as api:
            for email in emails:
                params: dict[str, str | int] = {"userKey": email, "maxResults": GROUPS_PAGE_SIZE}
                try:
                    while True:
                        page = api.get_json("/groups", params=params)
                        # A user in no group gets no "groups" key at all (groups.list reference).
                        for group in page.get("groups") or []:
                            if isinstance(group, dict) and group.get("email"):
                                found.add(f"google:group:{str(group['email']).strip().lower()}")
                        if not page.get("nextPageToken"):
                            break
                        params["pageToken"] = str(page["nextPageToken"])
                except ApiError as exc:
                    # 403: the token lacks the scope; 401: Google would not issue one for it
                    # (unauthorized_client: the scope is not in the domain-wide delegation).
                    if exc.status in (401, 403) and not exc.rate_limited:
                        self._refused_groups(exc)
                        return frozenset()
                    if exc.status == 404:  # not an account of the domain: no groups here
                        continue
                    raise
        return frozenset(found)

    def _refused_groups(self, exc: ApiError) -> None:
        if not self._groups_refused:
            log.warning(
                "%s: Google would not list group memberships (%s); DMs read without Google groups. "
                "Grant the service account %s in domain-wide delegation, acting as an administrator "
                "(directory_delegate), or set groups = false",
                self.name,
                str(exc).removeprefix(f"source {self.name!r}: "),
                DIRECTORY_SCOPES[0],
            )
            self._groups_refused = True

    # -- listing --------------------------------------------------------------------------

    def _client(self, *, directory: bool = False) -> ApiClient:
        scopes = {"scopes": DIRECTORY_SCOPES} if directory else {}
        delegate = (self.directory_delegate or self.delegate) if directory else self.delegate
        base_url = self.directory_url if directory else self.api_url
        credentials = load_credentials(self.name, self.credentials_env, delegate=delegate, **scopes)
        if credentials is not None:
            return ApiClient(
                self.name,
                "Google Drive",
                base_url,
                auth=GoogleAuth(self.name, self.credentials_env, credentials),
                credential_hint=(
                    f"check {self.credentials_env}: the account needs the drive.readonly scope and "
                    "the files shared with it (or domain-wide delegation for 'delegate')"
                ),
                sleep=self.sleep,
                rate_limit_wait=drive_rate_limit_wait,
                transient=TRANSIENT,
            )
        if not os.environ.get(self.token_env, "").strip():
            msg = (
                f"source {self.name!r}: set {self.credentials_env} to a service account key or a refresh "
                f"token (JSON, or the path of its file), or {self.token_env} to an access token"
            )
            raise SourceError(msg)
        token = token_from_env(self.name, self.token_env, "an OAuth 2.0 access token")
        return ApiClient(
            self.name,
            "Google Drive",
            base_url,
            headers={"Authorization": f"Bearer {token}"},
            credential_hint=(
                f"set {self.token_env} to a fresh OAuth access token with the drive.readonly scope "
                f"(access tokens expire after an hour: set {self.credentials_env} for renewable credentials)"
            ),
            sleep=self.sleep,
            rate_limit_wait=drive_rate_limit_wait,
            transient=TRANSIENT,
        )

    def _scope(self) -> dict[str, str | int]:
        # Without corpora=allDrives (and both flags) files.list searches only the user's corpus.
        params: dict[str, str | int] = {
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
            "corpora": "allDrives",
        }
        if self.drive_id:
            params.update(corpora="drive", driveId=self.drive_id)
        return params

    def _list(
        self, api: ApiClient, q: str, fields: str, page_size: int | PageSize, order: bool = False
    ) -> Iterator[dict]:
        size = page_size
        if not isinstance(size, PageSize):  # a fixed size: cheap listings do not time out
            size = PageSize(self.name, "Google Drive", size, size)
        params: dict[str, str | int] = {**self._scope(), "q": q, "fields": f"nextPageToken,{fields}"}
        if order:
            params["orderBy"] = "modifiedTime"

        def get(count: int, timeout_attempts: int | None) -> Any:
            params["pageSize"] = count
            return api.get_json("/files", params=params, timeout_attempts=timeout_attempts)

        while True:
            page = size.fetch(get)
            yield from (f for f in page.get("files") or [] if isinstance(f, dict) and f.get("id"))
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    def _queries(self, api: ApiClient) -> list[str]:
        """The q of each listing: everything, or one query per group of folders under folder_id."""
        if not self.folder_id:
            return ["trashed = false"]
        folders = self._folders(api)
        groups = [folders[i : i + PARENTS_PER_QUERY] for i in range(0, len(folders), PARENTS_PER_QUERY)]
        return [
            "trashed = false and (" + " or ".join(f"'{f}' in parents" for f in group) + ")"
            for group in groups
        ]

    def _folders(self, api: ApiClient) -> list[str]:
        assert self.folder_id is not None
        try:
            root = api.get_json(
                f"/files/{self.folder_id}", params={"fields": "id,mimeType,trashed", **self._scope()}
            )
        except ApiError as exc:
            if exc.status == 404:
                msg = (
                    f"source {self.name!r}: folder {self.folder_id} does not exist in Google Drive, or it "
                    f"is not shared with the account of {self.token_env}"
                )
                raise SourceError(msg) from None
            raise
        if root.get("mimeType") != FOLDER or root.get("trashed"):
            msg = f"source {self.name!r}: {self.folder_id} is not a folder (or it is in the trash)"
            raise SourceError(msg)
        found, frontier = [self.folder_id], [self.folder_id]
        while frontier and len(found) < MAX_FOLDERS:
            group, frontier = frontier[:PARENTS_PER_QUERY], frontier[PARENTS_PER_QUERY:]
            parents = " or ".join(f"'{f}' in parents" for f in group)
            q = f"mimeType = '{FOLDER}' and trashed = false and ({parents})"
            for folder in self._list(api, q, "files(id)", IDS_PAGE_SIZE):
                if folder["id"] not in found:
                    found.append(str(folder["id"]))
                    frontier.append(str(folder["id"]))
        if frontier:
            log.warning(
                "%s: more than %d folders under %s; the rest are not read",
                self.name,
                MAX_FOLDERS,
                self.folder_id,
            )
        return found[:MAX_FOLDERS]

    def _changed(self, api: ApiClient, queries: list[str], start: Position) -> Iterator[dict[str, Any]]:
        size = PageSize(self.name, "Google Drive", PAGE_SIZE, MIN_PAGE_SIZE)  # shared: stays shrunk
        streams = [self._since(api, q, start, size) for q in queries]
        return heapq.merge(*streams, key=lambda f: str(f.get("modifiedTime", "")))

    def _since(self, api: ApiClient, q: str, start: Position, size: PageSize) -> Iterator[dict[str, Any]]:
        """Files matching q modified at or after the position, oldest first.

        ``orderBy`` is ignored for very large accounts, so the window is listed whole and sorted here.
        """
        window = q + (f" and modifiedTime >= '{start.since}'" if start.since else "")
        files = [
            file
            for file in self._list(api, window, f"files({FILE_FIELDS})", size)
            if _STAMP.match(str(file.get("modifiedTime", "")))
        ]
        files.sort(key=lambda f: (str(f["modifiedTime"]), str(f.get("id", ""))))
        for file in files:
            if start.is_new(str(file["modifiedTime"]), str(file.get("id", ""))):
                yield file

    # -- reading --------------------------------------------------------------------------

    def _load(self, api: ApiClient, file: dict[str, Any]) -> Document | LoadFailure | None:
        file_id = str(file["id"])
        mime_type = str(file.get("mimeType", ""))
        name = str(file.get("name") or file_id)

        def fail(reason: str) -> LoadFailure:
            return LoadFailure(file_id, self.name, reason)

        try:
            if mime_type in EXPORTS:
                export_type, parse = EXPORTS[mime_type]
                data = api.request(
                    "GET", f"/files/{file_id}/export", params={"mimeType": export_type}
                ).content
                _, text = parse(data)
                title = name
            else:
                size = int(file.get("size") or 0)
                if size > MAX_FILE_BYTES:
                    return fail(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
                params = {"alt": "media", "supportsAllDrives": "true"}
                data = api.request("GET", f"/files/{file_id}", params=params).content
                suffix = _suffix(file) or ".txt"
                mime_type, _, text = parse_file(PurePosixPath(f"file{suffix}"), data)
                title = PurePosixPath(name).stem if PurePosixPath(name).suffix.lower() == suffix else name
            acl = self._acl(api, file)
        except ApiError as exc:
            if stops_sync(exc):
                raise
            if exc.status == 404:
                return None  # deleted since it was listed; list_ids no longer has it either
            if "exportSizeLimitExceeded" in str(exc) or "too large to be exported" in str(exc):
                return fail("too large for Google to export (its limit is 10 MB)")
            return fail(str(exc).removeprefix(f"source {self.name!r}: "))
        except Exception as exc:  # noqa: BLE001 - parsers raise anything on hostile files
            return fail(unparsable(exc))
        if not text.strip():
            return fail("the file has no text")
        return Document(
            id=file_id,
            source=self.name,
            title=title.strip() or name,
            text=text,
            url=str(file.get("webViewLink") or f"https://drive.google.com/open?id={file_id}"),
            version=str(file.get("modifiedTime", "")),
            updated_at=_parse_time(file.get("modifiedTime")),
            acl=acl,
            mime_type=mime_type,
        )

    def _acl(self, api: ApiClient, file: dict[str, Any]) -> Acl:
        permissions = file.get("permissions")
        if permissions is None and file.get("permissionIds"):
            permissions = self._permissions(api, str(file["id"]))
        public, principals = False, set()
        for permission in permissions or []:
            if not isinstance(permission, dict) or permission.get("deleted"):
                continue
            kind = permission.get("type")
            email = str(permission.get("emailAddress") or "").strip().lower()
            domain = str(permission.get("domain") or "").strip().lower()
            if kind == "anyone":
                public = True
            elif kind in ("user", "group") and email:
                principals.add(f"google:{kind}:{email}")
            elif kind == "domain" and domain:
                principals.add(f"google:domain:{domain}")
        return with_grants(
            Acl(public=public, principals=frozenset(principals)), self.grants.public, self.grants.principals
        )

    def _permissions(self, api: ApiClient, file_id: str) -> list[dict[str, Any]] | None:
        """permissions.list, for shared-drive files; None (private) when they cannot be read."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {
            "supportsAllDrives": "true",
            "pageSize": 100,
            "fields": "nextPageToken,permissions(id,type,role,emailAddress,domain,deleted)",
        }
        try:
            while True:
                page = api.get_json(f"/files/{file_id}/permissions", params=params)
                found += page.get("permissions") or []
                if not page.get("nextPageToken"):
                    return found
                params["pageToken"] = page["nextPageToken"]
        except ApiError as exc:
            if stops_sync(exc):
                raise
            log.warning(
                "%s: cannot read the permissions of %s (%s); it stays private", self.name, file_id, exc
            )
            return None

    def _retry(
        self, api: ApiClient, state: dict[str, Any], checkpoints: Checkpoints
    ) -> Iterator[tuple[Batch, str]]:
        pending = retries(state)
        for start in range(0, len(pending), BATCH_SIZE):
            batch: Batch = []
            for file_id in pending[start : start + BATCH_SIZE]:
                item: Document | LoadFailure | None = None
                if _ID.match(file_id):
                    try:
                        file = api.get_json(
                            f"/files/{file_id}", params={"fields": FILE_FIELDS, **self._scope()}
                        )
                    except ApiError as exc:
                        if stops_sync(exc):
                            raise
                        file = None if exc.status == 404 else {"id": file_id, "error": str(exc)}
                    if file and "error" in file:
                        item = LoadFailure(
                            file_id, self.name, str(file["error"]).removeprefix(f"source {self.name!r}: ")
                        )
                    elif file and not file.get("trashed") and supported(file):
                        item = self._load(api, file)
                note_outcome(state, file_id, item)
                if item is not None:
                    batch.append(item)
            yield from checkpoints.emit(batch)


def _parse_time(value: object) -> datetime:
    return parse_time(value) or datetime.now(UTC)
