"""A local stand-in for Confluence Cloud's REST API (v1), speaking its wire format.

Routes, under ``/wiki`` as on Cloud:

- ``GET /wiki/rest/api/content/search?cql=...&limit=&expand=`` runs the CQL subset the connector
  uses (``space in (...)``, ``space = X``, ``type in (...)``, ``type = X``, ``lastmodified >=|>|<=|<
  "yyyy/MM/dd HH:mm"`` and ``order by lastmodified asc|desc``, joined by ``and``); anything else is
  a 400 "Could not parse cql", as Confluence answers. Trashed pages are not current and are never
  returned. Results are paged with ``limit`` (capped as Cloud caps it: 50 when bodies are
  expanded, 200 with other expansions, 1,000 without) and ``_links.next``, a relative link that
  carries an opaque ``cursor`` token.
- ``GET /wiki/rest/api/content/{id}?expand=`` one page, or 404.

Only what ``expand`` asks for is returned (``body.storage``, ``version``, ``history.lastUpdated``,
``space``, ``restrictions.read.restrictions.user|group``, ``ancestors`` and
``ancestors.restrictions.read.restrictions.user|group``); the rest is listed in ``_expandable``.
Requests need HTTP basic auth with ``email`` and ``token`` (else 401). ``rate_limited`` answers
that many requests with 429 and ``Retry-After``; a page in ``broken`` makes every request that
renders its body answer 500, as a page with a broken macro does. Every request is recorded.

Overload and bugs the real service has, for the connector to survive:

- ``overloads``: statuses (502, 504) answered, one each, to the next requests, with the HTML
  body Atlassian's edge sends; ``times_out_above``: a search expanding bodies with a larger
  ``limit`` answers 504, as a big expansion does on Cloud.
- ``ancestor_bug``: pages whose ``ancestors.restrictions`` expansion answers 404 for the whole
  request (a draft, outdated or trashed ancestor; a known Cloud bug that Onyx works around in
  backend/onyx/connectors/confluence/onyx_confluence.py).
- ``GET /wiki/rest/api/content/{id}/restriction/byOperation/read``: one page's read
  restrictions (404 for pages that are not current, or listed in ``restrictions_gone``).
- ``GET /wiki/rest/api/user?accountId=``: a user; ``email`` is empty unless the user's profile
  shows it (``users``: accountId -> email, "" for a hidden one), as the API documents
  ("Depending on the user's privacy setting, this may return an empty string").
- ``GET /wiki/rest/api/search/user?cql=type=user&start=&limit=``: the site's users, each as
  ``{"user": {"accountId", "email", ...}, "entityType": "user"}``; ``email`` is null when the
  profile hides it (developer.atlassian.com/cloud/confluence/rest/v1/api-group-search/
  #api-wiki-rest-api-search-user-get: "some user fields may be set to null").
- ``GET /wiki/rest/api/user/memberof?accountId=&start=&limit=``: the groups of a user
  (``groups``: group name -> accountIds), ``limit`` capped at 200, ``_links.next`` while more
  remain; 404 for an unknown account. Both answer 403 when the API user lacks the permission to
  browse users (``can_browse_users = False``), as Cloud does for such accounts
  (api-group-users/#api-wiki-rest-api-user-memberof-get).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from tests.fakes.http_service import (
    KeepAliveHandler,
    serve,
    server_url,
    shut_down,
    write_body,
    write_json,
)

CONTEXT = "/wiki"
START_TIME = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@dataclass
class FakePage:
    id: str
    title: str
    body: str  # storage-format XHTML
    space: str = "ENG"
    when: datetime = START_TIME
    version: int = 1
    type: str = "page"
    status: str = "current"  # or "trashed"
    parent: str | None = None
    read_users: list[str] = field(default_factory=list)  # accountIds
    read_groups: list[str] = field(default_factory=list)  # group names


class CqlError(ValueError):
    pass


@dataclass
class Query:
    spaces: set[str] | None = None
    types: set[str] | None = None
    times: list[tuple[str, datetime]] = field(default_factory=list)
    descending: bool | None = None

    def matches(self, page: FakePage) -> bool:
        if page.status != "current":
            return False
        if self.spaces is not None and page.space not in self.spaces:
            return False
        if self.types is not None and page.type not in self.types:
            return False
        compare = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b}
        compare["<"] = lambda a, b: a < b
        # CQL compares at minute resolution: a page modified at 10:05:30 is >= "10:05" and not > it.
        minute = page.when.replace(second=0, microsecond=0)
        return all(compare[op](minute, when) for op, when in self.times)


_VALUES = r"\(([^)]*)\)"


def parse_cql(cql: str, zone: str) -> Query:
    query = Query()
    text = cql.strip()
    order = re.search(r"\s+order\s+by\s+lastmodified(?:\s+(asc|desc))?\s*$", text, re.IGNORECASE)
    if order:
        query.descending = (order.group(1) or "asc").lower() == "desc"
        text = text[: order.start()]
    for clause in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
        clause = clause.strip()
        if match := re.fullmatch(rf"space\s+in\s*{_VALUES}", clause, re.IGNORECASE):
            query.spaces = _values(match.group(1))
        elif match := re.fullmatch(r'space\s*=\s*"?([^"\s]+)"?', clause, re.IGNORECASE):
            query.spaces = {match.group(1)}
        elif match := re.fullmatch(rf"type\s+in\s*{_VALUES}", clause, re.IGNORECASE):
            query.types = _values(match.group(1))
        elif match := re.fullmatch(r'type\s*=\s*"?(\w+)"?', clause, re.IGNORECASE):
            query.types = {match.group(1)}
        elif match := re.fullmatch(
            r'lastmodified\s*(>=|>|<=|<)\s*"(\d{4}[/-]\d{2}[/-]\d{2})(?: (\d{2}):(\d{2}))?"',
            clause,
            re.IGNORECASE,
        ):
            day = datetime.strptime(match.group(2).replace("-", "/"), "%Y/%m/%d")
            hours, minutes = int(match.group(3) or 0), int(match.group(4) or 0)
            local = day.replace(hour=hours, minute=minutes, tzinfo=ZoneInfo(zone))
            query.times.append((match.group(1), local.astimezone(UTC)))
        else:
            msg = f"Could not parse cql : {cql}"
            raise CqlError(msg)
    return query


def _values(listed: str) -> set[str]:
    values = {value.strip().strip('"').strip("'") for value in listed.split(",")}
    if not values or "" in values:
        raise CqlError("empty list in cql")
    return values


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeConfluence:
    def __init__(self, email: str = "bot@example.com", token: str = "confluence-test-token") -> None:
        self.email = email
        self.token = token
        self.pages: dict[str, FakePage] = {}
        self.requests: list[dict[str, Any]] = []
        self.rate_limited = 0
        self.retry_after = "7"
        self.broken: set[str] = set()
        self.max_limit: int | None = None  # a lower cap than Cloud's, to page small test spaces
        self.timezone = "UTC"  # the API user's profile time zone, in which CQL reads dates
        self.offsite_next = False  # answer a next link to another host (the connector must not follow)
        self.overloads: list[int] = []
        self.times_out_above: int | None = None
        self.ancestor_bug: set[str] = set()
        self.restrictions_gone: set[str] = set()
        self.users: dict[str, str] = {}  # accountId -> email as the profile shows it ("" when hidden)
        self.groups: dict[str, set[str]] = {}  # group name -> member accountIds
        self.can_browse_users = True
        self._clock = START_TIME
        self._ids = 100000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- the site's content, as tests edit it ----------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{server_url(self._server)}{CONTEXT}"

    def tick(self, minutes: float = 1.0) -> datetime:
        self._clock += timedelta(minutes=minutes)
        return self._clock

    def add(self, title: str, body: str, **fields: Any) -> FakePage:
        with self._lock:
            self._ids += 1
            page = FakePage(id=str(self._ids), title=title, body=body, when=self.tick(), **fields)
            self.pages[page.id] = page
            return page

    def edit(self, page_id: str, body: str | None = None, title: str | None = None) -> FakePage:
        with self._lock:
            page = self.pages[page_id]
            page.body = body if body is not None else page.body
            page.title = title if title is not None else page.title
            page.version += 1
            page.when = self.tick()
            return page

    def search_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/content/search")]

    # -- the wire format -------------------------------------------------------------------------

    def _content(self, page: FakePage, expand: set[str]) -> dict[str, Any]:
        def wants(prefix: str) -> bool:
            return any(e == prefix or e.startswith(prefix + ".") for e in expand)

        links = {
            "webui": f"/spaces/{page.space}/pages/{page.id}/{re.sub(r'[^A-Za-z0-9]+', '+', page.title)}",
            "self": f"{self.base_url}/rest/api/content/{page.id}",
            "tinyui": f"/x/{page.id}",
        }
        content: dict[str, Any] = {
            "id": page.id,
            "type": page.type,
            "status": page.status,
            "title": page.title,
            "_links": links,
        }
        expandable: dict[str, str] = {}
        if wants("body"):
            body: dict[str, Any] = {"_expandable": {"view": "", "export_view": ""}}
            if wants("body.storage"):
                body["storage"] = {"value": page.body, "representation": "storage", "embeddedContent": []}
            content["body"] = body
        else:
            expandable["body"] = ""
        if wants("version"):
            content["version"] = {
                "by": {"type": "known", "accountId": "557058:editor", "displayName": "Editor"},
                "when": _iso(page.when),
                "number": page.version,
                "minorEdit": False,
            }
        else:
            expandable["version"] = ""
        if wants("history"):
            history: dict[str, Any] = {"latest": True, "createdDate": _iso(START_TIME)}
            if wants("history.lastUpdated"):
                history["lastUpdated"] = {"when": _iso(page.when), "number": page.version}
            content["history"] = history
        else:
            expandable["history"] = f"/rest/api/content/{page.id}/history"
        if wants("space"):
            content["space"] = {
                "id": 98304,
                "key": page.space,
                "name": f"{page.space} space",
                "type": "global",
            }
        else:
            expandable["space"] = f"/rest/api/space/{page.space}"
        asked = {e.removeprefix("restrictions.") for e in expand if e.startswith("restrictions.")}
        restrictions = self._restrictions(page, asked)
        if restrictions is not None:
            content["restrictions"] = restrictions
        else:
            expandable["restrictions"] = ""
        if wants("ancestors"):
            inner = {e.removeprefix("ancestors.") for e in expand if e.startswith("ancestors.")}
            content["ancestors"] = [self._content(ancestor, inner) for ancestor in self._ancestors(page)]
        else:
            expandable["ancestors"] = ""
        content["_expandable"] = expandable
        return content

    def _restrictions(self, page: FakePage, expand: set[str]) -> dict[str, Any] | None:
        read = {e.removeprefix("read.") for e in expand if e == "read" or e.startswith("read.")}
        if not read:
            return None
        inner: dict[str, Any] = {}
        expandable: dict[str, str] = {}
        subjects = {"user": page.read_users, "group": page.read_groups}
        for kind, names in subjects.items():
            if f"restrictions.{kind}" not in read:
                expandable[kind] = f"/rest/api/content/{page.id}/restriction/byOperation/read/{kind}"
                continue
            if kind == "user":
                results = [{"type": "known", "accountId": a, "displayName": a} for a in names]
            else:
                results = [{"type": "group", "name": n, "id": f"id-{n}"} for n in names]
            inner[kind] = {"results": results, "start": 0, "limit": 200, "size": len(results)}
        return {
            "read": {
                "operation": "read",
                "restrictions": {**inner, "_expandable": expandable},
                "_links": {
                    "self": f"{self.base_url}/rest/api/content/{page.id}/restriction/byOperation/read"
                },
            },
            "_expandable": {"update": ""},
        }

    def _ancestors(self, page: FakePage) -> list[FakePage]:
        chain: list[FakePage] = []
        parent = page.parent
        while parent and parent in self.pages and len(chain) < 50:
            chain.append(self.pages[parent])
            parent = self.pages[parent].parent
        return list(reversed(chain))  # root first, as Confluence lists them

    def _search(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            cql = parse_cql(query.get("cql", ""), self.timezone)
        except CqlError as exc:
            return 400, {
                "statusCode": 400,
                "message": f"com.atlassian.confluence.api.service.exceptions.BadRequestException: {exc}",
            }
        expand = {e for e in query.get("expand", "").split(",") if e}
        cap = 50 if any(e.startswith("body") for e in expand) else 200 if expand else 1000
        cap = min(cap, self.max_limit or cap)
        limit = max(0, min(int(query.get("limit", "25")), cap))
        start = int(query.get("start", "0"))
        if "cursor" in query:
            start = int(base64.urlsafe_b64decode(query["cursor"].encode()).decode().removeprefix("offset:"))
        with self._lock:
            found = [p for p in self.pages.values() if cql.matches(p)]
        if cql.descending is not None:
            found.sort(key=lambda p: (p.when, p.id), reverse=cql.descending)
        # A big expansion takes Cloud longer than its gateway waits: HTTP 504.
        # (developer.atlassian.com/cloud/confluence/rest/v1/intro/#expansion: "expand ... sparingly")
        if self.times_out_above is not None and "body.storage" in expand and limit > self.times_out_above:
            return 504, {"statusCode": 504, "message": "Gateway Timeout"}
        window = found[start : start + limit]
        if self._hits_ancestor_bug(window, expand):
            return 404, {"statusCode": 404, "message": "No content found with id: ContentId{id=0}"}
        if "body.storage" in expand and any(p.id in self.broken for p in window):
            return 500, {"statusCode": 500, "message": "java.lang.RuntimeException: could not render a macro"}
        links: dict[str, str] = {
            "base": self.base_url,
            "context": CONTEXT,
            "self": f"{self.base_url}/rest/api/content/search?{urlencode(query)}",
        }
        if start + limit < len(found) and limit:
            token = base64.urlsafe_b64encode(f"offset:{start + limit}".encode()).decode()
            following = {k: v for k, v in query.items() if k not in ("cursor", "start")}
            following = {"next": "true", "cursor": token, **following, "start": str(start + limit)}
            links["next"] = f"/rest/api/content/search?{urlencode(following)}"
            if self.offsite_next:
                links["next"] = "https://evil.example" + links["next"]
        return 200, {
            "results": [self._content(p, expand) for p in window],
            "start": start,
            "limit": limit,
            "size": len(window),
            "totalSize": len(found),
            "cqlQuery": query.get("cql", ""),
            "_links": links,
        }

    def _user(self, account_id: str) -> tuple[int, dict[str, Any]]:
        if account_id not in self.users:
            return 404, {"statusCode": 404, "message": f"No user found with accountId: {account_id}"}
        return 200, {
            "type": "known",
            "accountId": account_id,
            "accountType": "atlassian",
            "email": self.users[account_id],
            "publicName": account_id,
            "displayName": account_id,
        }

    def _listing(self, path: str, query: dict[str, str], items: list[Any]) -> dict[str, Any]:
        """A start/limit page of ``items`` with a relative ``_links.next`` while more remain."""
        limit = max(1, min(int(query.get("limit", "25")), self.max_limit or 200))
        start = int(query.get("start", "0"))
        window = items[start : start + limit]
        links = {"base": self.base_url, "context": CONTEXT}
        if start + limit < len(items):
            links["next"] = f"{path}?{urlencode({**query, 'start': str(start + limit), 'limit': str(limit)})}"
        return {"results": window, "start": start, "limit": limit, "size": len(window), "_links": links}

    def _search_users(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self.can_browse_users:
            return 403, {"statusCode": 403, "message": "Not permitted to use confluence"}
        if query.get("cql", "").replace(" ", "") != "type=user":
            return 400, {"statusCode": 400, "message": "cql: only type=user is supported here"}
        users = [
            {"user": {"type": "known", "accountId": account, "accountType": "atlassian",
                      "email": email or None, "publicName": account, "displayName": account},
             "title": account, "entityType": "user"}
            for account, email in sorted(self.users.items())
        ]  # fmt: skip
        return 200, self._listing("/rest/api/search/user", query, users)

    def _memberof(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self.can_browse_users:
            return 403, {"statusCode": 403, "message": "Not permitted to use confluence"}
        account = query.get("accountId", "")
        if account not in self.users:
            return 404, {"statusCode": 404, "message": f"No user found with accountId: {account}"}
        groups = [
            {"type": "group", "name": name, "id": f"group-{name}"}
            for name, members in sorted(self.groups.items())
            if account in members
        ]
        return 200, self._listing("/rest/api/user/memberof", query, groups)

    def _hits_ancestor_bug(self, pages: list[FakePage], expand: set[str]) -> bool:
        # Expanding ancestors' restrictions 404s the whole request when one ancestor is a draft,
        # outdated or trashed (Cloud bug; see Onyx onyx_confluence.py, "restrictions" fallback).
        wants = any(e.startswith("ancestors.restrictions") for e in expand)
        return wants and any(p.id in self.ancestor_bug for p in pages)

    def _read_restriction(self, page_id: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        page = self.pages.get(page_id)
        if page is None or page.status != "current" or page_id in self.restrictions_gone:
            return 404, {"statusCode": 404, "message": f"No content found with id: ContentId{{id={page_id}}}"}
        expand = {e for e in query.get("expand", "").split(",") if e}
        found = self._restrictions(page, {f"read.{e}" for e in expand})
        assert found is not None
        return 200, found["read"]

    def _one(self, page_id: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        expand = {e for e in query.get("expand", "").split(",") if e}
        page = self.pages.get(page_id)
        if page is None or page.status != "current":
            return 404, {"statusCode": 404, "message": f"No content found with id: ContentId{{id={page_id}}}"}
        if self._hits_ancestor_bug([page], expand):
            return 404, {"statusCode": 404, "message": "No content found with id: ContentId{id=0}"}
        if page.id in self.broken and "body.storage" in expand:
            return 500, {"statusCode": 500, "message": "java.lang.RuntimeException: could not render a macro"}
        return 200, self._content(page, expand)

    # -- the server ------------------------------------------------------------------------------

    def _authorised(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def start(self) -> FakeConfluence:
        fake = self

        class Handler(KeepAliveHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                with fake._lock:
                    fake.requests.append({"path": parts.path, "query": query})
                    limited = fake.rate_limited > 0
                    fake.rate_limited -= 1 if limited else 0
                    overload = fake.overloads.pop(0) if fake.overloads and not limited else None
                if overload is not None:
                    # Atlassian's edge answers an overload with an HTML page, not JSON.
                    # (developer.atlassian.com/cloud/confluence/rate-limiting/)
                    body = f"<html><body><h1>{overload} Bad Gateway</h1></body></html>".encode()
                    write_body(self, overload, {"Content-Type": "text/html"}, body)
                elif limited:
                    self._json(429, {"message": "Rate limit exceeded"}, {"Retry-After": fake.retry_after})
                elif not fake._authorised(self.headers.get("Authorization")):
                    self._json(
                        401,
                        {
                            "message": "Client must be authenticated to access this resource.",
                            "statusCode": 401,
                        },
                    )
                elif parts.path == f"{CONTEXT}/rest/api/content/search":
                    self._json(*fake._search(query))
                elif parts.path == f"{CONTEXT}/rest/api/search/user":
                    self._json(*fake._search_users(query))
                elif parts.path == f"{CONTEXT}/rest/api/user/memberof":
                    self._json(*fake._memberof(query))
                elif parts.path == f"{CONTEXT}/rest/api/user":
                    self._json(*fake._user(query.get("accountId", "")))
                elif match := re.fullmatch(
                    rf"{CONTEXT}/rest/api/content/(\d+)/restriction/byOperation/read", parts.path
                ):
                    self._json(*fake._read_restriction(match.group(1), query))
                elif match := re.fullmatch(rf"{CONTEXT}/rest/api/content/(\d+)", parts.path):
                    self._json(*fake._one(match.group(1), query))
                else:
                    self._json(404, {"statusCode": 404, "message": f"null for uri: {self.path}"})

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                write_json(self, status, payload, headers, content_type="application/json;charset=UTF-8")

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)


@contextmanager
def fake_confluence() -> Iterator[FakeConfluence]:
    server = FakeConfluence().start()
    try:
        yield server
    finally:
        server.stop()
