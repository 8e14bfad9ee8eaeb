"""A local stand-in for Notion's public API (version 2022-06-28), speaking its wire format.

Routes:

- ``POST /v1/search`` with ``filter`` (``{"property": "object", "value": "page"|"database"}``),
  ``sort`` (``{"timestamp": "last_edited_time", "direction": "ascending"|"descending"}``),
  ``page_size`` (at most 100) and ``start_cursor``. Archived pages and pages in the trash are not
  returned. Results are paged by ``next_cursor`` / ``has_more``; a cursor is the id of the next
  result, and an unknown one is a 400, as Notion answers.
- ``GET /v1/blocks/{id}/children?page_size=&start_cursor=`` the blocks of a page or block.
- ``GET /v1/pages/{id}``, ``GET /v1/databases/{id}``, ``GET /v1/blocks/{id}``.

Ids are accepted with or without dashes. Requests need ``Authorization: Bearer <token>`` (else
401 ``unauthorized``) and a ``Notion-Version`` header (else 400 ``missing_version``). Edit times
are whole minutes, as Notion rounds them. ``rate_limited`` answers that many requests with 429
``rate_limited`` and ``Retry-After``; reading the blocks of a page in ``broken`` answers 500, and
of one in ``unshared`` 404 (as after the page was unshared or deleted).
Every request is recorded.

- ``POST /v1/databases/{id}/query`` with ``page_size`` and ``start_cursor``: the database's
  pages (not archived, not in the trash).
- ``search_misses``: pages and databases the search does not return although they are shared;
  the search "is not guaranteed to return everything" and is not immediately consistent
  (developers.notion.com/reference/post-search). Walking block children and querying databases
  still finds them.
- ``overloads``: statuses answered, one each, to the next requests: 504 ``gateway_timeout``
  (developers.notion.com/reference/status-codes) and 529, which Notion's edge answers when it is
  overloaded (the overload Onyx's Notion connector retries).
- ``times_out_above``: a search, database query or block listing asking for more than this many
  items answers 504 ``gateway_timeout`` ("Notion timed out while attempting to complete this
  request", developers.notion.com/reference/status-codes), as big pages do on heavy workspaces.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_service import KeepAliveHandler, serve, server_url, shut_down, write_json

START_TIME = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
USER = {"object": "user", "id": "ee5f0f84-409a-440f-983a-a5315961c6e4"}


def rich(text: str) -> list[dict[str, Any]]:
    annotations = {"bold": False, "italic": False, "strikethrough": False, "underline": False, "code": False}
    return [
        {
            "type": "text",
            "text": {"content": text, "link": None},
            "annotations": {**annotations, "color": "default"},
            "plain_text": text,
            "href": None,
        }
    ]


@dataclass
class Block:
    type: str
    data: dict[str, Any]
    children: list[Block] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def paragraph(text: str, *children: Block) -> Block:
    return Block("paragraph", {"rich_text": rich(text), "color": "default"}, list(children))


def heading(level: int, text: str) -> Block:
    return Block(f"heading_{level}", {"rich_text": rich(text), "color": "default", "is_toggleable": False})


def bullet(text: str, *children: Block) -> Block:
    return Block("bulleted_list_item", {"rich_text": rich(text), "color": "default"}, list(children))


def numbered(text: str, *children: Block) -> Block:
    return Block("numbered_list_item", {"rich_text": rich(text), "color": "default"}, list(children))


def todo(text: str, checked: bool = False) -> Block:
    return Block("to_do", {"rich_text": rich(text), "checked": checked, "color": "default"})


def toggle(text: str, *children: Block) -> Block:
    return Block("toggle", {"rich_text": rich(text), "color": "default"}, list(children))


def code(text: str, language: str = "python") -> Block:
    return Block("code", {"rich_text": rich(text), "caption": [], "language": language})


def quote(text: str) -> Block:
    return Block("quote", {"rich_text": rich(text), "color": "default"})


def callout(text: str, emoji: str = "💡") -> Block:
    icon = {"type": "emoji", "emoji": emoji}
    return Block("callout", {"rich_text": rich(text), "icon": icon, "color": "gray_background"})


def table(*rows: list[str]) -> Block:
    cells = [Block("table_row", {"cells": [rich(cell) for cell in row]}) for row in rows]
    width = len(rows[0]) if rows else 0
    return Block("table", {"table_width": width, "has_column_header": True, "has_row_header": False}, cells)


def image(caption: str) -> Block:
    data = {"caption": rich(caption), "type": "external", "external": {"url": "https://img.example/x.png"}}
    return Block("image", data)


@dataclass
class FakePage:
    id: str
    title: str
    blocks: list[Block]
    edited: datetime
    parent: dict[str, Any] = field(default_factory=lambda: {"type": "workspace", "workspace": True})
    archived: bool = False
    in_trash: bool = False
    title_property: str = "title"  # pages in a database name it after the database's title column


def _dashed(value: str) -> str:
    raw = value.replace("-", "").lower()
    if not re.fullmatch(r"[0-9a-f]{32}", raw):
        return value
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "object": "error",
        "status": status,
        "code": code,
        "message": message,
        "request_id": str(uuid.uuid4()),
    }


class FakeNotion:
    def __init__(self, token: str = "secret_notion_test_token") -> None:
        self.token = token
        self.pages: dict[str, FakePage] = {}
        self.databases: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.rate_limited = 0
        self.retry_after = "3"
        self.broken: set[str] = set()
        self.unshared: set[str] = set()  # listed by the search, but their blocks answer 404
        self.search_misses: set[str] = set()
        self.overloads: list[int] = []
        self.overload_prefix = "/"  # only requests under this path meet the overloads
        self.times_out_above: int | None = None
        self._clock = START_TIME
        self._block_index: dict[str, tuple[Block, dict[str, Any], FakePage]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- the workspace, as tests edit it ---------------------------------------------------------

    @property
    def api_url(self) -> str:
        return server_url(self._server)

    def tick(self, minutes: int = 1) -> datetime:
        self._clock += timedelta(minutes=minutes)
        return self._clock

    def add(
        self,
        title: str,
        *blocks: Block,
        parent: FakePage | str | None = None,
        same_minute: bool = False,
        **fields: Any,
    ) -> FakePage:
        """A page at the workspace root, under a page, or in a database (``parent`` = a database id)."""
        with self._lock:
            edited = self._clock if same_minute else self.tick()
            page = FakePage(str(uuid.uuid4()), title, list(blocks), edited, **fields)
            if isinstance(parent, FakePage):
                page.parent = {"type": "page_id", "page_id": parent.id}
                parent.blocks.append(Block("child_page", {"title": title}, id=page.id))
            elif isinstance(parent, str):
                page.parent = {"type": "database_id", "database_id": parent}
                page.title_property = "Name"
            self.pages[page.id] = page
            return page

    def add_database(self, title: str, parent: FakePage) -> str:
        database_id = str(uuid.uuid4())
        self.databases[database_id] = {"title": title, "parent": {"type": "page_id", "page_id": parent.id}}
        parent.blocks.append(Block("child_database", {"title": title}, id=database_id))
        return database_id

    def edit(self, page_id: str, *blocks: Block) -> FakePage:
        with self._lock:
            page = self.pages[page_id]
            page.blocks = list(blocks)
            page.edited = self.tick()
            return page

    def searches(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/search"]

    # -- the wire format -------------------------------------------------------------------------

    def _page_json(self, page: FakePage) -> dict[str, Any]:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", page.title).strip("-")
        return {
            "object": "page",
            "id": page.id,
            "created_time": _iso(START_TIME),
            "last_edited_time": _iso(page.edited),
            "created_by": USER,
            "last_edited_by": USER,
            "cover": None,
            "icon": None,
            "parent": page.parent,
            "archived": page.archived,
            "in_trash": page.in_trash,
            "properties": {page.title_property: {"id": "title", "type": "title", "title": rich(page.title)}},
            "url": f"https://www.notion.so/{slug}-{page.id.replace('-', '')}",
            "public_url": None,
        }

    def _block_json(self, block: Block, parent: dict[str, Any], edited: datetime) -> dict[str, Any]:
        has_children = bool(block.children)
        if block.type == "child_page" and block.id in self.pages:
            has_children = bool(self.pages[block.id].blocks)
        return {
            "object": "block",
            "id": block.id,
            "parent": parent,
            "created_time": _iso(START_TIME),
            "last_edited_time": _iso(edited),
            "created_by": USER,
            "last_edited_by": USER,
            "has_children": has_children,
            "archived": False,
            "in_trash": False,
            "type": block.type,
            block.type: block.data,
        }

    def _find_block(self, block_id: str) -> tuple[Block, dict[str, Any], FakePage] | None:
        """A block anywhere in the workspace, with its parent reference and its page."""
        found = self._block_index.get(block_id)
        if found is None or found[2].id not in self.pages:
            self._block_index = self._index_blocks()  # pages changed since: index them again
            found = self._block_index.get(block_id)
        return found

    def _index_blocks(self) -> dict[str, tuple[Block, dict[str, Any], FakePage]]:
        index: dict[str, tuple[Block, dict[str, Any], FakePage]] = {}

        def walk(blocks: list[Block], parent: dict[str, Any], page: FakePage) -> None:
            for block in blocks:
                index.setdefault(block.id, (block, parent, page))
                walk(block.children, {"type": "block_id", "block_id": block.id}, page)

        for page in self.pages.values():
            walk(page.blocks, {"type": "page_id", "page_id": page.id}, page)
        return index

    def _search(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        size = body.get("page_size", 100)
        if not isinstance(size, int) or not 1 <= size <= 100:
            return _error(
                400, "validation_error", "body failed validation: body.page_size should be ≤ `100`."
            )
        wanted = {"page", "database"}
        if "filter" in body:
            flt = body["filter"]
            if flt.get("property") != "object" or flt.get("value") not in wanted:
                return _error(
                    400,
                    "validation_error",
                    "body failed validation: body.filter.value should be page or database",
                )
            wanted = {flt["value"]}
        direction = None
        if "sort" in body:
            sort = body["sort"]
            if sort.get("timestamp") != "last_edited_time" or sort.get("direction", "descending") not in (
                "ascending",
                "descending",
            ):
                return _error(400, "validation_error", "body failed validation: body.sort is invalid")
            direction = sort.get("direction", "descending")
        with self._lock:
            found: list[dict[str, Any]] = []
            if "page" in wanted:
                pages = [
                    p
                    for p in self.pages.values()
                    if not p.archived and not p.in_trash and p.id not in self.search_misses
                ]
                if direction:
                    pages.sort(key=lambda p: (p.edited, p.id), reverse=direction == "descending")
                found = [self._page_json(p) for p in pages]
            if "database" in wanted:
                found += [
                    self._database_json(database_id)
                    for database_id in self.databases
                    if database_id not in self.search_misses
                ]
        start = 0
        if body.get("start_cursor"):
            ids = [item["id"] for item in found]
            cursor = _dashed(str(body["start_cursor"]))
            if cursor not in ids:
                return _error(400, "validation_error", "The start_cursor provided is invalid: " + cursor)
            start = ids.index(cursor)
        window = found[start : start + size]
        more = start + size < len(found)
        return 200, {
            "object": "list",
            "results": window,
            "next_cursor": found[start + size]["id"] if more else None,
            "has_more": more,
            "type": "page_or_database",
            "page_or_database": {},
            "request_id": str(uuid.uuid4()),
        }

    def _children(self, block_id: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        block_id = _dashed(block_id)
        size = int(query.get("page_size", "100"))
        if not 1 <= size <= 100:
            return _error(400, "validation_error", "query failed validation: page_size should be ≤ `100`.")
        with self._lock:
            if block_id in self.pages:
                page = self.pages[block_id]
                if block_id in self.broken:
                    return _error(500, "internal_server_error", "Unexpected error occurred.")
                if block_id in self.unshared:
                    return _error(404, "object_not_found", f"Could not find block with ID: {block_id}.")
                blocks, parent = page.blocks, {"type": "page_id", "page_id": page.id}
            elif found := self._find_block(block_id):
                block, _, page = found
                blocks, parent = block.children, {"type": "block_id", "block_id": block.id}
            else:
                return _error(404, "object_not_found", f"Could not find block with ID: {block_id}.")
            results = [self._block_json(b, parent, page.edited) for b in blocks]
        start = 0
        if query.get("start_cursor"):
            ids = [item["id"] for item in results]
            if _dashed(query["start_cursor"]) not in ids:
                return _error(400, "validation_error", "The start_cursor provided is invalid.")
            start = ids.index(_dashed(query["start_cursor"]))
        more = start + size < len(results)
        return 200, {
            "object": "list",
            "results": results[start : start + size],
            "next_cursor": results[start + size]["id"] if more else None,
            "has_more": more,
            "type": "block",
            "block": {},
            "request_id": str(uuid.uuid4()),
        }

    def _query_database(self, database_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        database_id = _dashed(database_id)
        size = body.get("page_size", 100)
        if not isinstance(size, int) or not 1 <= size <= 100:
            return _error(
                400, "validation_error", "body failed validation: body.page_size should be ≤ `100`."
            )
        with self._lock:
            if database_id not in self.databases:
                return _error(404, "object_not_found", f"Could not find database with ID: {database_id}.")
            rows = [
                self._page_json(p)
                for p in self.pages.values()
                if p.parent.get("database_id") == database_id and not p.archived and not p.in_trash
            ]
        start = 0
        if body.get("start_cursor"):
            ids = [row["id"] for row in rows]
            if _dashed(str(body["start_cursor"])) not in ids:
                return _error(400, "validation_error", "The start_cursor provided is invalid.")
            start = ids.index(_dashed(str(body["start_cursor"])))
        more = start + size < len(rows)
        return 200, {
            "object": "list",
            "results": rows[start : start + size],
            "next_cursor": rows[start + size]["id"] if more else None,
            "has_more": more,
            "type": "page_or_database",
            "page_or_database": {},
            "request_id": str(uuid.uuid4()),
        }

    def _database_json(self, object_id: str) -> dict[str, Any]:
        database = self.databases[object_id]
        return {
            "object": "database",
            "id": object_id,
            "title": rich(database["title"]),
            "parent": database["parent"],
            "archived": False,
            "in_trash": False,
            "is_inline": False,
            "properties": {"Name": {"id": "title", "name": "Name", "type": "title", "title": {}}},
            "url": f"https://www.notion.so/{object_id.replace('-', '')}",
        }

    def _retrieve(self, collection: str, object_id: str) -> tuple[int, dict[str, Any]]:
        object_id = _dashed(object_id)
        with self._lock:
            if collection == "pages" and object_id in self.pages:
                return 200, self._page_json(self.pages[object_id])
            if collection == "databases" and object_id in self.databases:
                return 200, self._database_json(object_id)
            if collection == "blocks" and (found := self._find_block(object_id)):
                block, parent, page = found
                return 200, self._block_json(block, parent, page.edited)
        return _error(404, "object_not_found", f"Could not find {collection[:-1]} with ID: {object_id}.")

    # -- the server ------------------------------------------------------------------------------

    def start(self) -> FakeNotion:
        fake = self

        class Handler(KeepAliveHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                body = json.loads(raw) if raw else {}
                with fake._lock:
                    fake.requests.append({"method": method, "path": parts.path, "query": query, "body": body})
                    limited = fake.rate_limited > 0
                    fake.rate_limited -= 1 if limited else 0
                    overloaded = (
                        fake.overloads and not limited and parts.path.startswith(fake.overload_prefix)
                    )
                    overload = fake.overloads.pop(0) if overloaded else None
                if overload is not None:
                    code = "gateway_timeout" if overload == 504 else "service_unavailable"
                    self._json(*_error(overload, code, "Notion is temporarily unavailable."))
                elif limited:
                    message = "You have been rate limited. Please try again in a few minutes."
                    self._json(*_error(429, "rate_limited", message), {"Retry-After": fake.retry_after})
                elif self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._json(*_error(401, "unauthorized", "API token is invalid."))
                elif not self.headers.get("Notion-Version"):
                    self._json(*_error(400, "missing_version", "Notion-Version header failed validation."))
                elif fake.times_out_above is not None and _asked(body, query) > fake.times_out_above:
                    message = "Notion timed out while attempting to complete this request."
                    self._json(*_error(504, "gateway_timeout", message))
                elif method == "POST" and parts.path == "/v1/search":
                    self._json(*fake._search(body))
                elif method == "POST" and (match := re.fullmatch(r"/v1/databases/([^/]+)/query", parts.path)):
                    self._json(*fake._query_database(match.group(1), body))
                elif method == "GET" and (match := re.fullmatch(r"/v1/blocks/([^/]+)/children", parts.path)):
                    self._json(*fake._children(match.group(1), query))
                elif method == "GET" and (
                    match := re.fullmatch(r"/v1/(pages|databases|blocks)/([^/]+)", parts.path)
                ):
                    self._json(*fake._retrieve(match.group(1), match.group(2)))
                else:
                    self._json(*_error(400, "invalid_request_url", "Invalid request URL."))

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                write_json(self, status, payload, headers, content_type="application/json; charset=utf-8")

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)


@contextmanager
def fake_notion() -> Iterator[FakeNotion]:
    server = FakeNotion().start()
    try:
        yield server
    finally:
        server.stop()


def _asked(body: dict[str, Any], query: dict[str, str]) -> int:
    """The page size a list request asks for (Notion's default is 100)."""
    size = body.get("page_size") if isinstance(body, dict) else None
    if size is None:
        size = query.get("page_size", 100)
    try:
        return int(size)
    except (TypeError, ValueError):
        return 100
