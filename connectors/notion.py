"""Pages from Notion, read through its public API by last-edited time.

How it reads
------------
``/v1/search`` is documented as neither exhaustive nor immediately consistent, so it is a
shortcut here, never the only word on what exists.

A first or ``--full`` sync (``poll(None)``) walks the workspace: it starts from the pages and
databases the search lists (or from ``root_pages``), reads each page's blocks
(``GET /v1/blocks/{id}/children``, paginated and recursive), follows every child page and child
database block it meets, and lists each database's rows (``POST /v1/databases/{id}/query``).
A page the search missed is found through its parent and indexed all the same.

A later ``poll(cursor)`` asks the search for pages, newest edit first, and stops at the first
page edited before the cursor; the pages found are read oldest first, in batches, and each
batch's resume cursor is its newest ``last_edited_time``. Notion rounds those times down to the
minute, so a poll re-reads the cursor's own minute; the engine finds those pages unchanged by
content hash and embeds nothing. A page the search has not caught up with yet is read when it
shows up there, or by the next ``--full`` sync.

``list_ids()`` pages through the search: every page it lists that is neither archived nor in
the trash. Because the search can miss a page, the engine then asks ``still_there(ids)`` about
every indexed page the listing left out: each is looked up (``GET /v1/pages/{id}``) and pruned
only when Notion answers 404 or shows it archived, in the trash or moved out of
``root_pages``. A lookup that fails otherwise stops the sync and prunes nothing.

Bad days: 429 waits for ``Retry-After``; 502, 504 and 529 (Notion overloaded) are retried with
doubling back-off. A page that times out twice (504 ``gateway_timeout``, or a read timeout) is
asked for again with half the ``page_size`` (down to 10, for the rest of the run) from the same
cursor. A sync that still meets them stops, prunes nothing, and is marked as a transient
failure that the next run retries.

Text: paragraphs, headings (as Markdown headings), bulleted and numbered lists, to-dos, toggles,
quotes, callouts, code, equations, tables and media captions, nested as in the page. Child pages
and child databases are pages of their own: they are followed, not inlined. A page
whose blocks cannot be read (HTTP 500, a permission error) is a ``LoadFailure`` and the rest of
the batch goes on; a page gone since it was listed (404) is left for pruning.

Who may read a page
-------------------
Notion's API tells an integration nothing about who may read a page, so every page has the
source's configured readers (``public`` / ``principals``; private when neither is set). Share
with the integration only pages that all of those readers may see, or limit the source with
``root_pages``.

Options (``[connectors.NAME] type = "notion"``): ``token_env`` (``NOTION_TOKEN``: the
integration's internal secret), ``root_pages`` (page ids or URLs; only those pages and the pages
below them are indexed; by default everything shared with the integration), ``api_url``
(``https://api.notion.com``, for a proxy), ``notion_version`` (``2022-06-28``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import field_validator

from connectors.api_client import ApiClient, ApiError, PageSize
from connectors.options import ConnectorOptions, EnvName, HttpUrl, Strings, Text
from connectors.saas import parse_time
from core.documents import Acl, Document, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch

log = logging.getLogger(__name__)

SERVICE = "Notion"
DEFAULT_TOKEN_ENV = "NOTION_TOKEN"
API_URL = "https://api.notion.com"
NOTION_VERSION = "2022-06-28"  # the version whose page, block and search shapes this module reads
PAGE_SIZE = 100  # Notion's maximum for search and block children
MIN_PAGE_SIZE = 10  # halved down to this when Notion times out (504) on a full page
BATCH_SIZE = 25  # pages per batch: a resume point every 25 pages, embeddings in useful groups
MAX_DEPTH = 12  # nested blocks deeper than this are not read; real pages rarely pass 5
MAX_BLOCKS = 20_000  # per page; bounds a runaway page (a giant pasted log) without stalling a sync
MAX_PARENT_HOPS = 64  # a parent chain longer than this is treated as outside root_pages
_ITEM_STATUSES_THAT_STOP = (401, 429, 503)  # credentials, rate limit, outage: not one page's fault
# Statuses Notion answers when briefly overloaded (529) or slow (502, 504); retried like 429.
TRANSIENT = (502, 504, 529)

_ID = re.compile(r"([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LIST_ITEMS = {"bulleted_list_item", "numbered_list_item", "to_do", "toggle"}  # children nest under them
_SKIPPED = {"child_page", "child_database"}  # pages of their own: followed by the walk
_CAPTIONED = {"image", "video", "file", "pdf", "audio", "bookmark", "embed"}


def normalise_id(value: str) -> str | None:
    """A Notion id in its dashed form, from an id or a page URL ("...Title-0123abcd..."); None if none."""
    text = value.strip()
    if "://" in text:
        text = urlsplit(text).path.rstrip("/")
    match = _ID.search(text)
    if not match:
        return None
    raw = match.group(1).replace("-", "").lower()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def plain(rich_text: object) -> str:
    """The plain text of a rich text array (text, mentions and equations alike)."""
    if not isinstance(rich_text, list):
        return ""
    return "".join(str(part.get("plain_text") or "") for part in rich_text if isinstance(part, Mapping))


def page_title(page: Mapping[str, Any]) -> str:
    """The page's title property, whatever it is named ("title" on pages, e.g. "Name" in databases)."""
    properties = page.get("properties")
    if isinstance(properties, Mapping):
        for value in properties.values():
            if isinstance(value, Mapping) and value.get("type") == "title":
                return plain(value.get("title")).strip()
    return ""


def block_lines(block: Mapping[str, Any], number: int) -> list[str]:
    """One block as Markdown lines, without its children; ``number`` counts numbered list items."""
    kind = str(block.get("type") or "")
    data = block.get(kind)
    if not isinstance(data, Mapping):
        data = {}
    text = plain(data.get("rich_text"))
    if kind in ("heading_1", "heading_2", "heading_3"):
        return ["", "#" * int(kind[-1]) + " " + text, ""] if text else []
    if kind == "paragraph":
        return ["", text, ""] if text else []
    if kind == "bulleted_list_item" or kind == "toggle":
        return [f"- {text}"]
    if kind == "numbered_list_item":
        return [f"{number}. {text}"]
    if kind == "to_do":
        return [f"- [{'x' if data.get('checked') else ' '}] {text}"]
    if kind in ("quote", "callout"):
        icon = data.get("icon") if kind == "callout" else None
        emoji = icon.get("emoji") if isinstance(icon, Mapping) and icon.get("type") == "emoji" else ""
        lines = f"{emoji} {text}".strip().splitlines() or [""]
        return ["", *(f"> {line}" for line in lines), ""] if text else []
    if kind == "code":
        language = str(data.get("language") or "").replace(" ", "")
        return ["", f"```{language}", text, "```", ""]
    if kind == "equation":
        return ["", str(data.get("expression") or ""), ""]
    if kind == "table_row":
        cells = data.get("cells")
        cells = cells if isinstance(cells, list) else []
        return ["| " + " | ".join(plain(cell) for cell in cells) + " |"]
    if kind in _CAPTIONED:
        caption = plain(data.get("caption"))
        return ["", caption, ""] if caption else []
    return ["", text, ""] if text else []  # a block type added later that carries rich text


@dataclass
class _Listed:
    """A page found by the search: what its document needs besides the text."""

    id: str
    edited: datetime
    title: str
    url: str
    parent: tuple[str, str] | None


class NotionOptions(ConnectorOptions):
    """The keys of a ``type = "notion"`` table."""

    token_env: EnvName = DEFAULT_TOKEN_ENV
    root_pages: Strings = ()  # page ids or URLs; stored as dashed ids
    api_url: HttpUrl = API_URL
    notion_version: Text = NOTION_VERSION

    @field_validator("root_pages")
    @classmethod
    def _page_ids(cls, roots: tuple[str, ...]) -> tuple[str, ...]:
        ids = []
        for root in roots:
            root_id = normalise_id(root)
            if root_id is None:
                msg = f"'root_pages' holds {root!r}, which is not a Notion page id or page URL"
                raise ValueError(msg)
            ids.append(root_id)
        return tuple(dict.fromkeys(ids))

    @field_validator("notion_version")
    @classmethod
    def _version(cls, version: str) -> str:
        if not _VERSION.match(version):
            msg = f"'notion_version' must be an API version date such as \"2022-06-28\", not {version!r}"
            raise ValueError(msg)
        return version


@dataclass
class NotionConnector:
    name: str
    acl: Acl  # Notion's API exposes no page permissions: every page has the source's readers
    token_env: str = DEFAULT_TOKEN_ENV
    root_pages: tuple[str, ...] = ()
    api_url: str = API_URL
    notion_version: str = NOTION_VERSION
    kind: str = "notion"
    batch_size: int = BATCH_SIZE
    # Injected by tests: a fast sleep for Retry-After, or a transport.
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    transport: httpx.BaseTransport | None = field(default=None, repr=False)
    # Every listing of a run asks for this many items; a timeout shrinks it for the rest of the run.
    _page: PageSize = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._page = PageSize(self.name, SERVICE, PAGE_SIZE, MIN_PAGE_SIZE)

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> NotionConnector:
        options = NotionOptions.parse(settings)
        return cls(
            name=name,
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            token_env=options.token_env,
            root_pages=options.root_pages,
            api_url=options.api_url,
            notion_version=options.notion_version,
        )

    def describe(self) -> str:
        where = (
            f"under {len(self.root_pages)} root page(s)" if self.root_pages else "shared with the integration"
        )
        return f"Notion pages {where} ({self.api_url})"

    # -- the PollsChanges capability ------------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        since = parse_time(cursor)
        if cursor and since is None:
            log.warning("%s: ignoring the unreadable cursor %r; reading every page", self.name, cursor)
        with self._client() as client:
            if since is None:
                yield from self._walk_everything(client)
                return
            found: list[dict] = []
            for page in self._search(client, direction="descending"):
                edited = parse_time(page.get("last_edited_time"))
                if since is not None and edited is not None and edited < since:
                    break  # newest first: every page from here on is older than the cursor
                found.append(page)
            changed = self._listed(client, reversed(found))  # oldest change first
            for start in range(0, len(changed), self.batch_size):
                group = changed[start : start + self.batch_size]
                batch: Batch = [item for page in group if (item := self._document(client, page)) is not None]
                yield batch, max(page.edited for page in group).isoformat()

    def list_ids(self) -> Iterator[str]:
        with self._client() as client:
            pages = list(self._search(client, direction="ascending"))
            yield from (page.id for page in self._listed(client, pages))

    # -- the ConfirmsVanished capability: the search is not exhaustive ---------------------------

    def still_there(self, ids: Sequence[str]) -> set[str]:
        """Which indexed pages the search left out still exist (one lookup each)."""
        present: list[_Listed] = []
        with self._client() as client:
            for page_id in ids:
                listed = self._retrieve_page(client, page_id)
                if listed is not None:
                    present.append(listed)
            if self.root_pages:
                scope = _Scope(client, self.root_pages, {page.id: page.parent for page in present})
                present = [page for page in present if scope.contains(page.id)]
        if present:
            log.info("%s: %d page(s) the search did not list still exist; kept", self.name, len(present))
        return {page.id for page in present}

    # -- the walk ---------------------------------------------------------------------------------

    def _walk_everything(self, client: ApiClient) -> Iterator[tuple[Batch, str]]:
        """Every page reachable from what the search lists (or from root_pages), oldest listed first."""
        queue: deque[_Listed] = deque(
            self._listed(client, reversed(list(self._search(client, "descending"))))
        )
        seen = {page.id for page in queue}
        databases: deque[str] = deque()
        if self.root_pages:
            for root in self.root_pages:
                if root not in seen and (listed := self._retrieve_page(client, root)) is not None:
                    seen.add(root)
                    queue.append(listed)
        else:
            databases.extend(self._search(client, "descending", kind="database", ids_only=True))
        walked_databases: set[str] = set()
        newest: datetime | None = None
        group: list[_Listed] = []
        batch: Batch = []
        while queue or databases:
            if not queue:
                database = databases.popleft()
                if database in walked_databases:
                    continue
                walked_databases.add(database)
                for row in self._rows(client, database):
                    if row.id not in seen:
                        seen.add(row.id)
                        queue.append(row)
                continue
            page = queue.popleft()
            children: list[tuple[str, str]] = []
            item = self._document(client, page, children)
            for kind, child_id in children:
                if kind == "database":
                    databases.append(child_id)
                elif child_id not in seen and (listed := self._retrieve_page(client, child_id)) is not None:
                    seen.add(child_id)
                    queue.append(listed)
            group.append(page)
            if item is not None:
                batch.append(item)
            newest = max(newest or page.edited, page.edited)
            if len(group) >= self.batch_size:
                yield batch, newest.isoformat()
                group, batch = [], []
        if group and newest is not None:
            yield batch, newest.isoformat()

    def _retrieve_page(self, client: ApiClient, page_id: str) -> _Listed | None:
        """One page's metadata; None when it is gone, archived or in the trash."""
        try:
            page = client.get_json(f"/v1/pages/{quote(page_id, safe='-')}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _to_listed(page) if isinstance(page, Mapping) else None

    def _rows(self, client: ApiClient, database_id: str) -> Iterator[_Listed]:
        """A database's pages (its query lists them all, unlike the search)."""
        path = f"/v1/databases/{quote(database_id, safe='-')}/query"
        try:
            for row in _paginate(
                self._page,
                lambda cursor, size, tries: client.post_json(
                    path, _with_cursor({"page_size": size}, cursor), timeout_attempts=tries
                ),
            ):
                if row.get("object") == "page" and (listed := _to_listed(row)) is not None:
                    yield listed
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.info(
                "%s: database %s is not shared with the integration; skipping it", self.name, database_id
            )

    # -- reading --------------------------------------------------------------------------------

    def _client(self) -> ApiClient:
        token = os.environ.get(self.token_env, "").strip()
        if not token:
            msg = (
                f"source {self.name!r}: set {self.token_env} to the Notion integration's secret "
                "(notion.so/profile/integrations), and share the pages to index with the integration"
            )
            raise SourceError(msg)
        return ApiClient(
            self.name,
            SERVICE,
            self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Notion-Version": self.notion_version,
                "Accept": "application/json",
            },
            credential_hint=f"check {self.token_env}: the integration's secret, which may have been revoked",
            sleep=self.sleep,
            transport=self.transport,
            transient=TRANSIENT,
        )

    def _search(
        self, client: ApiClient, direction: str, kind: str = "page", *, ids_only: bool = False
    ) -> Iterator[Any]:
        body: dict[str, Any] = {
            "filter": {"property": "object", "value": kind},
            "sort": {"timestamp": "last_edited_time", "direction": direction},
        }
        for result in _paginate(
            self._page,
            lambda cursor, size, tries: client.post_json(
                "/v1/search", _with_cursor({**body, "page_size": size}, cursor), timeout_attempts=tries
            ),
        ):
            if result.get("object") != kind:
                continue
            if not ids_only:
                yield result
            elif (object_id := normalise_id(str(result.get("id") or ""))) is not None:
                yield object_id

    def _listed(self, client: ApiClient, pages: Iterable[dict]) -> list[_Listed]:
        """The pages found, in order, less those archived, in the trash or outside root_pages."""
        listed = [item for page in pages if (item := _to_listed(page)) is not None]
        if not self.root_pages:
            return listed
        # Parents listed by the same search need no lookup: note them all before walking any chain.
        scope = _Scope(client, self.root_pages, {page.id: page.parent for page in listed})
        return [page for page in listed if scope.contains(page.id)]

    def _document(
        self, client: ApiClient, page: _Listed, children: list[tuple[str, str]] | None = None
    ) -> Document | LoadFailure | None:
        """The page as a document; ``children`` collects its child pages and databases."""
        try:
            budget = [MAX_BLOCKS]
            lines = self._lines(client, page.id, 0, budget, children)
        except ApiError as exc:
            if exc.status in _ITEM_STATUSES_THAT_STOP or exc.rate_limited:
                raise
            if exc.status == 404:  # deleted or unshared since it was listed: list_ids prunes it
                log.info("%s: page %s is gone; skipping it", self.name, page.id)
                return None
            return LoadFailure(page.id, self.name, str(exc))
        if budget[0] <= 0:
            log.warning(
                "%s: page %s has over %d blocks; indexing the first ones", self.name, page.id, MAX_BLOCKS
            )
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        return Document(
            id=page.id,
            source=self.name,
            title=page.title,
            text=text or page.title,  # an empty page is still found by its title
            url=page.url,
            version=page.edited.isoformat(),
            updated_at=page.edited,
            acl=self.acl,
        )

    def _lines(
        self,
        client: ApiClient,
        block_id: str,
        depth: int,
        budget: list[int],
        children: list[tuple[str, str]] | None = None,
    ) -> list[str]:
        """Markdown lines of a block's children, read page by page, recursing into nested blocks."""
        lines: list[str] = []
        number = 0
        path = f"/v1/blocks/{quote(block_id, safe='-')}/children"
        for block in _paginate(
            self._page,
            lambda cursor, size, tries: client.get_json(
                path, params=_with_cursor({"page_size": size}, cursor), timeout_attempts=tries
            ),
        ):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            kind = str(block.get("type") or "")
            if kind in _SKIPPED:
                found_id = normalise_id(str(block.get("id") or ""))
                if children is not None and found_id is not None:
                    children.append(("page" if kind == "child_page" else "database", found_id))
                continue
            number = number + 1 if kind == "numbered_list_item" else 0
            lines += block_lines(block, number)
            child_id = str(block.get("id") or "")
            if block.get("has_children") and child_id and depth < MAX_DEPTH:
                nested = self._lines(client, child_id, depth + 1, budget, children)
                indent = "  " if kind in _LIST_ITEMS else ""
                lines += [indent + line if line else line for line in nested]
        return lines


class _Scope:
    """Whether a page lies under one of the root pages, walking parents through the API (cached)."""

    def __init__(
        self, client: ApiClient, roots: tuple[str, ...], parents: dict[str, tuple[str, str] | None]
    ) -> None:
        self._client = client
        self._roots = set(roots)
        self._inside: dict[str, bool] = {}
        self._parents = dict(parents)  # object id -> (kind, parent id); None at the workspace

    def contains(self, page_id: str) -> bool:
        walked: list[str] = []
        current: tuple[str, str] | None = ("page", page_id)
        inside = False
        while current is not None and len(walked) < MAX_PARENT_HOPS:
            kind, object_id = current
            if object_id in self._roots or object_id in self._inside:
                inside = object_id in self._roots or self._inside[object_id]
                break
            walked.append(object_id)
            current = self._parent_of(kind, object_id)
        for object_id in walked:
            self._inside[object_id] = inside
        return inside

    def _parent_of(self, kind: str, object_id: str) -> tuple[str, str] | None:
        if object_id not in self._parents:
            collection = {"page": "pages", "database": "databases"}.get(kind, "blocks")
            try:
                found = self._client.get_json(f"/v1/{collection}/{quote(object_id, safe='-')}")
            except ApiError as exc:
                if exc.status in _ITEM_STATUSES_THAT_STOP or exc.rate_limited:
                    raise
                found = {}  # not shared with the integration: the chain ends outside the roots
            self._parents[object_id] = _parent(found) if isinstance(found, Mapping) else None
        return self._parents[object_id]


def _to_listed(page: Mapping[str, Any]) -> _Listed | None:
    """A page object as the walk and the batches need it; None when archived or in the trash."""
    page_id = normalise_id(str(page.get("id") or ""))
    if page_id is None or page.get("archived") or page.get("in_trash"):
        return None
    url = page.get("url")
    return _Listed(
        id=page_id,
        edited=parse_time(page.get("last_edited_time")) or datetime.now(UTC),
        title=page_title(page) or "Untitled",
        url=url if isinstance(url, str) else f"https://www.notion.so/{page_id.replace('-', '')}",
        parent=_parent(page),
    )


def _parent(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, id) of a Notion object's parent: a page, a database or a block; None at the workspace."""
    parent = item.get("parent")
    if not isinstance(parent, Mapping):
        return None
    kind = str(parent.get("type") or "")
    if kind not in ("page_id", "database_id", "block_id"):
        return None
    parent_id = normalise_id(str(parent.get(kind) or ""))
    return (kind.removesuffix("_id"), parent_id) if parent_id else None


def _with_cursor(body: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    return {**body, "start_cursor": cursor} if cursor else body


def _paginate(page: PageSize, fetch: Callable[[str | None, int, int | None], Any]) -> Iterator[dict]:
    """Every result of a Notion list endpoint, following next_cursor while has_more is true.

    ``fetch(cursor, page_size, timeout_attempts)``; a page that times out is asked for again,
    smaller, from the same cursor (Notion's cursors do not depend on the page size).
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        answer = page.fetch(lambda size, tries, at=cursor: fetch(at, size, tries))
        if not isinstance(answer, Mapping) or not isinstance(answer.get("results"), list):
            msg = f"{SERVICE} answered with something other than a list of results"
            raise SourceError(msg)
        yield from (result for result in answer["results"] if isinstance(result, dict))
        cursor = answer.get("next_cursor")
        if not answer.get("has_more") or not isinstance(cursor, str) or not cursor or cursor in seen:
            return
        seen.add(cursor)  # a cursor that repeats would loop forever
