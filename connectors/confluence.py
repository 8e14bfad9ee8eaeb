"""Pages from Confluence Cloud, read through its REST API by last-modified time.

How it reads
------------
``poll(cursor)`` runs one CQL content search, oldest change first::

    space in ("ENG","OPS") and type in (page) and lastmodified >= "2026/11/21 09:30"
    order by lastmodified asc

expanding each result's storage-format body, version, read restrictions and its ancestors'
read restrictions, so one request returns up to 50 whole pages. Each page of results is one
batch; its resume cursor is the newest ``version.when`` in it (an ISO time). CQL compares at
minute resolution, so the next poll re-reads the cursor's own minute; the engine finds those
pages unchanged by content hash and embeds nothing. Pagination follows the ``_links.next`` the
API answers with (a cursor token on Cloud), and only within this site: a next link to another
host is never followed, so the credentials never leave it.

``list_ids()`` runs the same search without the time clause and without expansions (up to 1,000
ids a request): every current page in the spaces. Trashed and deleted pages are not current, so
they are pruned.

Bad days: Confluence Cloud's edge answers 502 and 504 when it is overloaded; those are retried
with back-off (honouring ``Retry-After``), and a sync that still meets them stops without
pruning anything and says it will be tried again. A search expanding 50 bodies can take longer
than the gateway waits (504, or a read timeout): the page of results is then halved, down to
``MIN_PAGE_SIZE``, and the walk goes on from the same place.

Expanding ancestors' read restrictions answers 404 for the whole request when one ancestor is a
draft, outdated or trashed (a known Cloud bug). The page of results is then read again with the
ancestors' ids only, and each ancestor's restrictions are read on their own
(``/content/{id}/restriction/byOperation/read``, cached for the run); an ancestor whose
restrictions cannot be read at all keeps its pages private. Either way the cursor moves on.

One broken page (Confluence answers HTTP 500 when it cannot render a page's body or macros)
fails a whole page of search results. The connector then lists that page of results without
bodies and reads each page alone: the broken one becomes a ``LoadFailure`` (its old chunks stay
searchable) and the rest of the batch goes on.

Who may read a page
-------------------
A page without read restrictions (on itself or any ancestor) has the source's configured readers
(``public`` / ``principals``; private when neither is set): set them to whoever can see the
spaces. A page with read restrictions is readable only by ``confluence:user:<accountId>`` and
``confluence:group:<group name>`` principals, plus ``email:<address>`` for each such user whose
address Confluence shows (``GET /rest/api/user?accountId=``, looked up once per account and kept
while the process runs): the identity map gives that principal to a chat user whose platform
confirmed the address, so Ada's Slack DM reads a page restricted to Ada's account. Confluence lets
a reader through only if every restricted level (the page and each restricted ancestor) admits
them; since group membership is not known here, the principals are the users listed at every
restricted level plus the groups listed at every restricted level. That never grants more than
Confluence does, and can grant less (a user admitted at one level only through a group).
Restriction changes that do not edit the page (on it or on an ancestor) are picked up by a full
sync (``archivist sync --full``).

Group memberships (for the identity map, asked by the worker): a chat user's Confluence account
is the one their principals name (``confluence:user:<accountId>``, an admin link) or the one whose
address Confluence shows equal to their confirmed email (the site's users, listed once an hour
through ``GET /rest/api/search/user?cql=type=user``); its groups come from
``GET /rest/api/user/memberof?accountId=``, as ``confluence:group:<name>``, so a page restricted
to group ``eng`` reaches the DMs of eng's members. When the API user may not browse users and
groups (HTTP 403), that is logged once and the source answers no groups.

Options (``[connectors.NAME] type = "confluence"``): ``base_url`` (``https://TEAM.atlassian.net/wiki``),
``email`` (the account the API token belongs to), ``spaces`` (space keys; required, so personal
spaces are never indexed by accident), ``token_env`` (``CONFLUENCE_API_TOKEN``), ``content_types``
(``["page"]``; add ``"blogpost"`` for blog posts), ``timezone`` (``"UTC"``: the time zone of the
API user's Confluence profile, in which CQL reads dates).
"""

from __future__ import annotations

import html
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import BeforeValidator, Field, field_validator

from connectors.api_client import ApiClient, ApiError, PageSize
from connectors.options import ConnectorOptions, Email, EnvName, Strings, Text
from connectors.parsers import UnreadableFile, parse_html
from connectors.saas import parse_time
from core.documents import Acl, Document, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch

log = logging.getLogger(__name__)

SERVICE = "Confluence"
DEFAULT_TOKEN_ENV = "CONFLUENCE_API_TOKEN"
SEARCH_PATH = "/rest/api/content/search"
# Confluence Cloud caps a content search that expands bodies at 50 results a request, and one
# without expansions at 1,000; asking for more only returns the cap.
PAGE_SIZE = 50
ID_PAGE_SIZE = 1000
# On a timeout the page of results is halved down to this; smaller pages cost more requests
# than they save, and a single page that still times out is a real outage.
MIN_PAGE_SIZE = 5
# Statuses Atlassian's edge answers when briefly overloaded; retried like 429 and 503.
TRANSIENT = (502, 504)
# Every level's read restrictions come with the page, so no request per page is needed for ACLs.
EXPAND = (
    "body.storage",
    "version",
    "history.lastUpdated",
    "space",
    "restrictions.read.restrictions.user",
    "restrictions.read.restrictions.group",
    "ancestors.restrictions.read.restrictions.user",
    "ancestors.restrictions.read.restrictions.group",
)
# Without the ancestors' restrictions: what the Cloud bug above leaves us to ask for.
EXPAND_WITHOUT_ANCESTOR_RESTRICTIONS = (
    *(e for e in EXPAND if not e.startswith("ancestors.")),
    "ancestors",
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the cursor of a batch whose pages carry no times
USERS_PAGE_SIZE = 200  # users and group memberships a request (Cloud caps both at 200)
ACCOUNTS_TTL_S = 3600.0  # the site's email -> account table is listed again after this
_ITEM_STATUSES_THAT_STOP = (401, 429, 503)  # credentials, rate limit, outage: not one page's fault

CONTENT_TYPES = ("page", "blogpost")
_SPACE_KEY = re.compile(r"^~?[A-Za-z0-9_-]{1,255}$")  # "~" starts a personal space's key
_CODE_BODY = re.compile(
    r"<ac:plain-text-body>\s*<!\[CDATA\[(.*?)\]\]>\s*</ac:plain-text-body>", re.DOTALL | re.IGNORECASE
)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)


def storage_to_text(storage: str) -> str:
    """Markdown-ish text of a page's storage-format XHTML.

    Code and no-format macros keep their text in CDATA sections, which an HTML parser drops;
    they become <pre> blocks first. Macros themselves (ac:*) are unknown tags whose text stays.
    """
    storage = _CODE_BODY.sub(lambda m: f"<pre>{html.escape(m.group(1))}</pre>", storage)
    storage = _CDATA.sub(lambda m: html.escape(m.group(1)), storage)
    _, text = parse_html(f"<html><body>{storage}</body></html>".encode())
    return text


class ConfluenceOptions(ConnectorOptions):
    """The keys of a ``type = "confluence"`` table."""

    base_url: Annotated[
        str,
        BeforeValidator(lambda value: _base_url(value)),
        Field(description='the site\'s wiki, e.g. "https://TEAM.atlassian.net/wiki"'),
    ]
    email: Annotated[Email, Field(description="the Atlassian account the API token belongs to")]
    spaces: Annotated[Strings, Field(description='a list of space keys such as ["ENG"]')]
    token_env: EnvName = DEFAULT_TOKEN_ENV
    content_types: Strings = ("page",)
    timezone: Text = "UTC"  # the API user's profile time zone, in which CQL reads dates

    @field_validator("spaces")
    @classmethod
    def _space_keys(cls, spaces: tuple[str, ...]) -> tuple[str, ...]:
        if not spaces:
            msg = "'spaces' is required for a confluence source: a list of space keys such as [\"ENG\"]"
            raise ValueError(msg)
        for key in spaces:
            if not _SPACE_KEY.match(key):
                msg = f"'spaces' holds {key!r}, which is not a Confluence space key (letters, digits, _ or -)"
                raise ValueError(msg)
        return spaces

    @field_validator("content_types")
    @classmethod
    def _types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        if not types or not set(types) <= set(CONTENT_TYPES):
            msg = f"'content_types' must list some of {list(CONTENT_TYPES)}, not {list(types)!r}"
            raise ValueError(msg)
        return types

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"'timezone' must be a time zone name such as \"Europe/Amsterdam\", not {zone!r}"
            raise ValueError(msg) from None
        return zone


@dataclass
class ConfluenceConnector:
    name: str
    base_url: str
    email: str
    spaces: tuple[str, ...]
    acl: Acl  # readers of pages without read restrictions
    token_env: str = DEFAULT_TOKEN_ENV
    content_types: tuple[str, ...] = ("page",)
    timezone: str = "UTC"
    kind: str = "confluence"
    page_size: int = PAGE_SIZE
    # Injected by tests: a fast sleep for Retry-After, or a transport.
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    transport: httpx.BaseTransport | None = field(default=None, repr=False)
    _restriction_cache: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    _emails: dict[str, str] = field(default_factory=dict, repr=False)  # accountId -> email ("" hidden)
    _accounts: dict[str, str] = field(default_factory=dict, repr=False)  # email -> accountId, site-wide
    _accounts_at: float | None = field(default=None, repr=False)
    _groups_refused: bool = field(default=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> ConfluenceConnector:
        options = ConfluenceOptions.parse(settings)
        return cls(
            name=name,
            base_url=options.base_url,
            email=options.email,
            spaces=options.spaces,
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            token_env=options.token_env,
            content_types=options.content_types,
            timezone=options.timezone,
        )

    def describe(self) -> str:
        return f"Confluence {'/'.join(self.content_types)}s in {', '.join(self.spaces)} at {self.base_url}"

    # -- the PollsChanges capability ------------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        since = parse_time(cursor)
        if cursor and since is None:
            log.warning("%s: ignoring the unreadable cursor %r; reading every page", self.name, cursor)
        params = {
            "cql": self._cql(since) + " order by lastmodified asc",
            "limit": str(self.page_size),
            "expand": ",".join(EXPAND),
        }
        newest = since or EPOCH
        with self._client() as client:
            for batch, modified in self._walk(client, params, self._read_batch):
                newest = max([newest, *modified])
                if batch:
                    yield batch, newest.isoformat()

    def list_ids(self) -> Iterator[str]:
        params = {"cql": self._cql(None), "limit": str(ID_PAGE_SIZE)}

        def ids(client: ApiClient, path: str, query: dict[str, str]) -> tuple[Any, list[str]]:
            answer = client.get_json(path, params=query)
            return answer, [str(page["id"]) for page in _results(answer) if page.get("id") is not None]

        with self._client() as client:
            for page_ids in self._walk(client, params, ids):
                yield from page_ids

    # -- GroupDirectory (the identity map) -------------------------------------------------------

    def memberships(self, principals: frozenset[str]) -> frozenset[str] | None:
        """The account behind ``principals`` (by admin link or confirmed email) and its groups."""
        user = "confluence:user:"
        accounts = {p.removeprefix(user) for p in principals if p.startswith(user)}
        emails = {p.removeprefix("email:") for p in principals if p.startswith("email:")}
        if not accounts and not emails:
            return frozenset()
        found: set[str] = set()
        with self._client() as client:
            try:
                if emails:
                    by_email = self._accounts_by_email(client)
                    for email in emails:
                        if by_email.get(email):
                            accounts.add(by_email[email])
                            found.add(f"confluence:user:{by_email[email]}")
                for account in sorted(accounts):
                    found |= self._groups_of(client, account)
            except ApiError as exc:
                if exc.status == 403 and not exc.rate_limited:
                    if not self._groups_refused:
                        log.warning(
                            "%s: Confluence would not show users and their groups (%s); DMs read without "
                            "Confluence groups. Give %s the global permission to browse users",
                            self.name,
                            str(exc).removeprefix(f"source {self.name!r}: "),
                            self.email,
                        )
                        self._groups_refused = True
                    return frozenset()
                raise
        return frozenset(found)

    def _accounts_by_email(self, client: ApiClient) -> dict[str, str]:
        """The site's users whose address Confluence shows, by email (listed once an hour)."""
        known = {email: account for account, email in self._emails.items() if email}
        if self._accounts_at is not None and self.clock() - self._accounts_at < ACCOUNTS_TTL_S:
            return {**known, **self._accounts}
        accounts: dict[str, str] = {}
        for answer in self._pages(client, "/rest/api/search/user", {"cql": "type=user"}):
            for hit in _results(answer):
                user = hit.get("user")
                # email is null when the user's profile hides it (search/user reference).
                if isinstance(user, dict) and isinstance(user.get("email"), str) and user.get("accountId"):
                    accounts[user["email"].strip().lower()] = str(user["accountId"])
        self._accounts, self._accounts_at = accounts, self.clock()
        return {**known, **accounts}

    def _groups_of(self, client: ApiClient, account: str) -> set[str]:
        groups: set[str] = set()
        try:
            for answer in self._pages(client, "/rest/api/user/memberof", {"accountId": account}):
                groups |= {
                    f"confluence:group:{group['name']}"
                    for group in _results(answer)
                    if isinstance(group.get("name"), str) and group["name"]
                }
        except ApiError as exc:
            if exc.status != 404:  # 404: no such account on this site
                raise
        return groups

    def _pages(self, client: ApiClient, path: str, params: dict[str, str]) -> Iterator[Any]:
        """Each answer of a start/limit listing, following its ``_links.next`` on this site."""
        query = {**params, "limit": str(USERS_PAGE_SIZE)}
        seen: set[str] = set()
        while True:
            answer = client.get_json(path, params=query)
            yield answer
            step = self._next(answer)
            if step is None or repr(step) in seen:
                return
            seen.add(repr(step))
            path, query = step

    # -- reading --------------------------------------------------------------------------------

    def _cql(self, since: datetime | None) -> str:
        spaces = ",".join(f'"{key}"' for key in self.spaces)  # keys were checked: no quotes inside
        cql = f"space in ({spaces}) and type in ({','.join(self.content_types)})"
        if since is not None:
            local = since.astimezone(ZoneInfo(self.timezone))
            cql += f' and lastmodified >= "{local:%Y/%m/%d %H:%M}"'
        return cql

    def _client(self) -> ApiClient:
        token = os.environ.get(self.token_env, "").strip()
        if not token:
            msg = (
                f"source {self.name!r}: set {self.token_env} to an Atlassian API token for {self.email} "
                "(create one at https://id.atlassian.com/manage-profile/security/api-tokens)"
            )
            raise SourceError(msg)
        return ApiClient(
            self.name,
            SERVICE,
            self.base_url,
            headers={"Accept": "application/json"},
            auth=(self.email, token),
            credential_hint=f"check {self.token_env}: an API token for {self.email}, not a password",
            sleep=self.sleep,
            transport=self.transport,
            transient=TRANSIENT,
        )

    def _walk(
        self, client: ApiClient, params: dict[str, str], read: Callable[[ApiClient, str, dict[str, str]], Any]
    ) -> Iterator[Any]:
        """What ``read`` makes of each page of search results, following the API's next links."""
        path, query = SEARCH_PATH, params
        followed: set[str] = set()
        while True:
            answer, value = read(client, path, query)
            yield value
            step = self._next(answer)
            if step is None:
                return
            key = step[0] + "?" + repr(sorted(step[1].items()))
            if key in followed:  # a next link that repeats would loop forever
                return
            followed.add(key)
            # The next link repeats the query, but a page read without bodies must not set the rest,
            # and a page size shrunk after a timeout stays shrunk.
            keep = {key: query[key] for key in ("expand", "limit") if key in query}
            path, query = step[0], {**step[1], **keep}

    def _read_batch(
        self, client: ApiClient, path: str, query: dict[str, str]
    ) -> tuple[Any, tuple[Batch, list[datetime]]]:
        """One page of search results as a batch, with the modified times it covers.

        Confluence answers 500 for the whole page of results when it cannot render one page's
        body; the results are then listed without bodies and each page is read on its own.
        """
        try:
            answer = self._search(client, path, query)
            pages = _results(answer)
            base = self._site_base(answer)
            batch: Batch = [self._with_emails(client, self._document(page, base)) for page in pages]
        except ApiError as exc:
            if exc.status != 500:
                raise
            log.warning(
                "%s: a page of search results failed (%s); reading its pages one by one", self.name, exc
            )
            answer = client.get_json(path, params={**query, "expand": "version"})
            pages = _results(answer)
            base = self._site_base(answer)
            batch = [
                self._with_emails(client, item)
                for page in pages
                if (item := self._read_one(client, page, base)) is not None
            ]
        modified = [when for page in pages if (when := parse_time(_get(page, "version", "when")))]
        return answer, (batch, modified)

    def _search(self, client: ApiClient, path: str, query: dict[str, str]) -> Any:
        """One page of search results; on a timeout the page is halved (``query`` keeps the size)."""
        size = PageSize(self.name, SERVICE, int(query.get("limit") or PAGE_SIZE), MIN_PAGE_SIZE)

        def get(limit: int, timeout_attempts: int | None) -> Any:
            query["limit"] = str(limit)
            return self._get_with_ancestors(client, path, query, timeout_attempts)

        return size.fetch(get)

    def _get_with_ancestors(
        self, client: ApiClient, path: str, query: dict[str, str], timeout_attempts: int | None = None
    ) -> Any:
        """A search or page read whose expansion includes ancestors' restrictions, bug or no bug."""
        try:
            return client.get_json(path, params=query, timeout_attempts=timeout_attempts)
        except ApiError as exc:
            if exc.status != 404 or "ancestors.restrictions" not in query.get("expand", ""):
                raise
        log.warning(
            "%s: Confluence could not expand the ancestors' restrictions of %s (an ancestor is a draft "
            "or in the trash); reading them one by one",
            self.name,
            path,
        )
        answer = client.get_json(
            path,
            params={**query, "expand": ",".join(EXPAND_WITHOUT_ANCESTOR_RESTRICTIONS)},
            timeout_attempts=timeout_attempts,
        )
        pages = answer.get("results") if isinstance(answer, dict) and "results" in answer else [answer]
        for page in pages if isinstance(pages, list) else []:
            for ancestor in page.get("ancestors") or [] if isinstance(page, dict) else []:
                if isinstance(ancestor, dict) and ancestor.get("id") is not None:
                    restrictions = self._restrictions_of(client, str(ancestor["id"]))
                    if restrictions is not None:
                        ancestor["restrictions"] = {"read": restrictions}
        return answer

    def _restrictions_of(self, client: ApiClient, page_id: str) -> dict[str, Any] | None:
        """One page's read restrictions, cached for the run; None when Confluence will not say."""
        if page_id in self._restriction_cache:
            return self._restriction_cache[page_id]
        try:
            found = client.get_json(
                f"/rest/api/content/{quote(page_id, safe='')}/restriction/byOperation/read",
                params={"expand": "restrictions.user,restrictions.group"},
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.warning(
                "%s: the read restrictions of ancestor %s are gone; its pages stay private",
                self.name,
                page_id,
            )
            found = None
        self._restriction_cache[page_id] = found if isinstance(found, dict) else None
        return self._restriction_cache[page_id]

    def _read_one(self, client: ApiClient, page: dict, base: str) -> Document | LoadFailure | None:
        page_id = str(page.get("id", ""))
        try:
            full = self._get_with_ancestors(
                client, f"/rest/api/content/{quote(page_id, safe='')}", {"expand": ",".join(EXPAND)}
            )
        except ApiError as exc:
            if exc.status in _ITEM_STATUSES_THAT_STOP or exc.rate_limited:
                raise
            if exc.status == 404:  # deleted since it was listed: list_ids will prune it
                return None
            return LoadFailure(page_id, self.name, str(exc))
        return self._document(full, base)

    def _document(self, page: Mapping[str, Any], base: str) -> Document | LoadFailure:
        page_id = str(page.get("id", ""))
        storage = _get(page, "body", "storage", "value")
        if not isinstance(storage, str):
            return LoadFailure(page_id, self.name, "Confluence returned the page without its body")
        try:
            text = storage_to_text(storage)
        except UnreadableFile as exc:
            return LoadFailure(page_id, self.name, f"unreadable page body: {exc}")
        updated = parse_time(_get(page, "version", "when")) or parse_time(
            _get(page, "history", "lastUpdated", "when")
        )
        title = str(page.get("title") or "").strip() or f"Confluence page {page_id}"
        webui = _get(page, "_links", "webui")
        if isinstance(webui, str) and webui.startswith("/"):
            url = base + webui
        else:
            url = f"{base}/pages/viewpage.action?pageId={quote(page_id)}"
        return Document(
            id=page_id,
            source=self.name,
            title=title,
            text=text or title,  # an empty parent page is still found by its title
            url=url,
            path=str(_get(page, "space", "key") or ""),
            version=str(_get(page, "version", "number") or ""),
            updated_at=updated or datetime.now(UTC),
            acl=self._page_acl(page),
        )

    def _with_emails(self, client: ApiClient, item: Document | LoadFailure) -> Document | LoadFailure:
        """The document with ``email:<address>`` beside each restricted user Confluence shows one for."""
        if not isinstance(item, Document):
            return item
        emails = set()
        for reader in item.acl.principals:
            if reader.startswith("confluence:user:"):
                email = self._email_of(client, reader.removeprefix("confluence:user:"))
                if email:
                    emails.add(f"email:{email}")
        if not emails:
            return item
        return replace(item, acl=Acl(public=item.acl.public, principals=item.acl.principals | emails))

    def _email_of(self, client: ApiClient, account_id: str) -> str:
        if account_id not in self._emails:
            try:
                user = client.get_json("/rest/api/user", params={"accountId": account_id})
            except ApiError as exc:
                if exc.rate_limited or exc.status == 401:
                    raise
                user = {}
            email = user.get("email") if isinstance(user, dict) else None
            self._emails[account_id] = email.strip().lower() if isinstance(email, str) else ""
        return self._emails[account_id]

    def _page_acl(self, page: Mapping[str, Any]) -> Acl:
        ancestors = page.get("ancestors")
        levels = (
            [page, *(level for level in ancestors if isinstance(level, dict))]
            if isinstance(ancestors, list)
            else [page]
        )
        restricted: list[tuple[set[str], set[str]]] = []
        for level in levels:
            readers = _read_restrictions(level)
            if readers is None:
                log.warning(
                    "%s: page %s came without its read restrictions; keeping it private",
                    self.name,
                    page.get("id"),
                )
                return Acl()
            if readers[0] or readers[1]:
                restricted.append(readers)
        if not restricted:
            return self.acl
        users = set.intersection(*(users for users, _ in restricted))
        groups = set.intersection(*(groups for _, groups in restricted))
        return Acl(public=False, principals=frozenset(users | groups))

    # -- links ----------------------------------------------------------------------------------

    def _site_base(self, answer: Mapping[str, Any]) -> str:
        base = _get(answer, "_links", "base")
        if isinstance(base, str) and _origin(base) == _origin(self.base_url):
            return base.rstrip("/")
        return self.base_url

    def _next(self, answer: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
        """The path and query of the next page of results, if any, relative to the site's wiki."""
        link = _get(answer, "_links", "next")
        if not isinstance(link, str) or not link:
            return None
        parts = urlsplit(link)
        if (parts.scheme or parts.netloc) and _origin(link) != _origin(self.base_url):
            log.warning("%s: not following a next link to another site: %s", self.name, link)
            return None
        # v1 links are relative to the wiki ("/rest/..."); absolute ones repeat its path ("/wiki/rest/...").
        context = urlsplit(self.base_url).path.rstrip("/")
        path = parts.path
        if context and path.startswith(context + "/"):
            path = path.removeprefix(context)
        if not path.startswith("/rest/"):
            log.warning("%s: not following an unexpected next link: %s", self.name, link)
            return None
        return path, dict(parse_qsl(parts.query, keep_blank_values=True))


def _results(answer: Any) -> list[dict]:
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        msg = f"{SERVICE} answered a search with something other than a list of results"
        raise SourceError(msg)
    return [page for page in answer["results"] if isinstance(page, dict)]


def _get(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _read_restrictions(content: Mapping[str, Any]) -> tuple[set[str], set[str]] | None:
    """(user principals, group principals) allowed to read; None when they were not returned."""
    user = _get(content, "restrictions", "read", "restrictions", "user")
    group = _get(content, "restrictions", "read", "restrictions", "group")
    if not isinstance(user, Mapping) or not isinstance(group, Mapping):
        return None
    users = {
        f"confluence:user:{entry['accountId']}"
        for entry in user.get("results") or []
        if isinstance(entry, Mapping) and entry.get("accountId")
    }
    groups = {
        f"confluence:group:{entry['name']}"
        for entry in group.get("results") or []
        if isinstance(entry, Mapping) and entry.get("name")
    }
    return users, groups


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _base_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = "'base_url' is required for a confluence source, e.g. \"https://TEAM.atlassian.net/wiki\""
        raise ValueError(msg)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"'base_url' must be an absolute http(s) URL (https://TEAM.atlassian.net/wiki), not {value!r}"
        raise ValueError(msg)
    path = parts.path.rstrip("/")
    if not path and parts.hostname and parts.hostname.endswith(".atlassian.net"):
        path = "/wiki"  # Confluence Cloud always lives under /wiki
    return f"{parts.scheme}://{parts.netloc}{path}"
