"""Pages from Notion, read through its public API by last-edited time.

How it reads
------------
``poll(cursor)`` asks ``POST /v1/search`` for pages, newest edit first (the search sorts by
``last_edited_time`` either way; newest first lets it stop at the first page edited before the
cursor instead of listing the whole workspace). The pages found are then read oldest first, in
batches: each page's text comes from ``GET /v1/blocks/{id}/children``, paginated and recursive
for blocks with children, and each batch's resume cursor is its newest ``last_edited_time``.
Notion rounds those times down to the minute, so a poll re-reads the cursor's own minute; the
engine finds those pages unchanged by content hash and embeds nothing.

``list_ids()`` pages through the same search without stopping: every page shared with the
integration that is neither archived nor in the trash. A page archived or deleted upstream is
therefore pruned.

Text: paragraphs, headings (as Markdown headings), bulleted and numbered lists, to-dos, toggles,
quotes, callouts, code, equations, tables and media captions, nested as in the page. Child pages
and child databases are skipped here: they are pages of their own, found by the search. A page
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from connectors.api_client import ApiClient, ApiError
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
BATCH_SIZE = 25  # pages per batch: a resume point every 25 pages, embeddings in useful groups
MAX_DEPTH = 12  # nested blocks deeper than this are not read; real pages rarely pass 5
MAX_BLOCKS = 20_000  # per page; bounds a runaway page (a giant pasted log) without stalling a sync
MAX_PARENT_HOPS = 64  # a parent chain longer than this is treated as outside root_pages
_ITEM_STATUSES_THAT_STOP = (401, 429, 503)  # credentials, rate limit, outage: not one page's fault

OPTIONS = {"token_env", "root_pages", "api_url", "notion_version"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID = re.compile(r"([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LIST_ITEMS = {"bulleted_list_item", "numbered_list_item", "to_do", "toggle"}  # children nest under them
_SKIPPED = {"child_page", "child_database"}  # pages of their own (the search finds them)
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

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> NotionConnector:
        options = settings.options(OPTIONS)
        token_env = options.get("token_env", DEFAULT_TOKEN_ENV)
        if not isinstance(token_env, str) or not _ENV_NAME.match(token_env):
            msg = f"'token_env' must name an environment variable, not {token_env!r}"
            raise ValueError(msg)
        roots = options.get("root_pages", [])
        if isinstance(roots, str):
            roots = [roots]
        if not isinstance(roots, list):
            msg = "'root_pages' must be a list of Notion page ids or page URLs"
            raise ValueError(msg)
        root_ids = []
        for root in roots:
            root_id = normalise_id(root) if isinstance(root, str) else None
            if root_id is None:
                msg = f"'root_pages' holds {root!r}, which is not a Notion page id or page URL"
                raise ValueError(msg)
            root_ids.append(root_id)
        api_url = options.get("api_url", API_URL)
        parts = urlsplit(api_url) if isinstance(api_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            msg = f"'api_url' must be an absolute http(s) URL, not {api_url!r}"
            raise ValueError(msg)
        version = options.get("notion_version", NOTION_VERSION)
        if not isinstance(version, str) or not _VERSION.match(version):
            msg = (
                f"'notion_version' must be a Notion API version date such as \"2022-06-28\", not {version!r}"
            )
            raise ValueError(msg)
        return cls(
            name=name,
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            token_env=token_env,
            root_pages=tuple(dict.fromkeys(root_ids)),
            api_url=str(api_url).rstrip("/"),
            notion_version=version,
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
        )

    def _search(self, client: ApiClient, direction: str) -> Iterator[dict]:
        body: dict[str, Any] = {
            "filter": {"property": "object", "value": "page"},
            "sort": {"timestamp": "last_edited_time", "direction": direction},
            "page_size": PAGE_SIZE,
        }
        for result in _paginate(lambda cursor: client.post_json("/v1/search", _with_cursor(body, cursor))):
            if result.get("object") == "page":
                yield result

    def _listed(self, client: ApiClient, pages: Iterable[dict]) -> list[_Listed]:
        """The pages found, in order, less those archived, in the trash or outside root_pages."""
        listed: list[_Listed] = []
        for page in pages:
            page_id = normalise_id(str(page.get("id") or ""))
            if page_id is None or page.get("archived") or page.get("in_trash"):
                continue
            url = page.get("url")
            listed.append(
                _Listed(
                    id=page_id,
                    edited=parse_time(page.get("last_edited_time")) or datetime.now(UTC),
                    title=page_title(page) or "Untitled",
                    url=url if isinstance(url, str) else f"https://www.notion.so/{page_id.replace('-', '')}",
                    parent=_parent(page),
                )
            )
        if not self.root_pages:
            return listed
        # Parents listed by the same search need no lookup: note them all before walking any chain.
        scope = _Scope(client, self.root_pages, {page.id: page.parent for page in listed})
        return [page for page in listed if scope.contains(page.id)]

    def _document(self, client: ApiClient, page: _Listed) -> Document | LoadFailure | None:
        try:
            budget = [MAX_BLOCKS]
            lines = self._lines(client, page.id, 0, budget)
        except ApiError as exc:
            if exc.status in _ITEM_STATUSES_THAT_STOP:
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

    def _lines(self, client: ApiClient, block_id: str, depth: int, budget: list[int]) -> list[str]:
        """Markdown lines of a block's children, read page by page, recursing into nested blocks."""
        lines: list[str] = []
        number = 0
        path = f"/v1/blocks/{quote(block_id, safe='-')}/children"
        for block in _paginate(
            lambda cursor: client.get_json(path, params=_with_cursor({"page_size": PAGE_SIZE}, cursor))
        ):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            kind = str(block.get("type") or "")
            if kind in _SKIPPED:
                continue
            number = number + 1 if kind == "numbered_list_item" else 0
            lines += block_lines(block, number)
            child_id = str(block.get("id") or "")
            if block.get("has_children") and child_id and depth < MAX_DEPTH:
                children = self._lines(client, child_id, depth + 1, budget)
                indent = "  " if kind in _LIST_ITEMS else ""
                lines += [indent + line if line else line for line in children]
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
                if exc.status in _ITEM_STATUSES_THAT_STOP:
                    raise
                found = {}  # not shared with the integration: the chain ends outside the roots
            self._parents[object_id] = _parent(found) if isinstance(found, Mapping) else None
        return self._parents[object_id]


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


def _paginate(fetch: Callable[[str | None], Any]) -> Iterator[dict]:
    """Every result of a Notion list endpoint, following next_cursor while has_more is true."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        answer = fetch(cursor)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("results"), list):
            msg = f"{SERVICE} answered with something other than a list of results"
            raise SourceError(msg)
        yield from (result for result in answer["results"] if isinstance(result, dict))
        cursor = answer.get("next_cursor")
        if not answer.get("has_more") or not isinstance(cursor, str) or not cursor or cursor in seen:
            return
        seen.add(cursor)  # a cursor that repeats would loop forever
