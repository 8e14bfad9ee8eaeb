"""Documents from a web site: crawled breadth-first from a start page, or listed by its sitemap.

Which interface, and why
------------------------
This connector implements ``LoadsAll``. A site's pages are only known by fetching pages (the links
are in the HTML), so a cheap ``list_refs`` pass would either fetch every page twice or be the crawl
itself. ``load_all`` crawls once and yields every page it reaches; the sync engine diffs by content
hash, embeds only what changed, and prunes the pages it did not see.

Unchanged pages stay cheap through HTTP validators. A small JSON cache per source (by default
``DATA_DIR/web/NAME.json``, or ``cache_dir/NAME.json``) keeps, per URL: ETag,
Last-Modified, content hash, the extracted title and text, and the page's same-site links. Each
request carries ``If-None-Match`` / ``If-Modified-Since``; a ``304 Not Modified`` is answered from
the cache: the cached text becomes the Document (same content hash, so the engine embeds nothing) and
the cached links keep the crawl going without the body. Because the cached *text* is yielded, the
cache never has to agree with the index: if the index is wiped or an embedding failed, a 304 page is
simply re-indexed from its cached text. Delete the cache file to force every page to be downloaded
again (``full`` syncs re-embed, but still trust 304s).

What each response means
------------------------
- 2xx HTML (or PDF, with ``pdf = true``): a Document; id and url are the normalised URL.
- 304: the cached Document.
- 3xx: the target is treated as a link (same site only); the redirecting URL itself is not indexed.
- 404 / 410: the page is gone: not yielded, so the engine prunes it; dropped from the cache.
- 429 / 503: retried (bounded), honouring ``Retry-After``; a wait longer than ``MAX_RETRY_AFTER_S``
  aborts the sync (``SourceError``: the site asked us to go away for a while; nothing is pruned).
- anything else, a timeout, or an unparsable page: a ``LoadFailure`` (its old chunks stay). Its
  cached links are still followed, so a hiccup on one page does not prune the pages below it.
- robots.txt, the start URL or the sitemap unreachable, or the whole site stops answering:
  ``SourceError``; the engine prunes nothing.

Politeness: robots.txt is fetched once per sync and obeyed as RFC 9309 reads it, through
``protego``: the longest matching rule wins and Allow wins a tie, ``*`` matches any characters
and ``$`` ends the path (``Disallow: /*?sessionid=`` holds, and ``Allow: /docs/public/`` opens a
corner of ``Disallow: /docs/``). A 4xx robots.txt allows all, a 5xx or unreachable one stops
the sync; disallowed URLs are never fetched; requests are spaced by
``1 / rate_limit_per_s`` seconds, or robots.txt's Crawl-delay when that is longer (bounded); only
pages on the same scheme and host are followed.

Options (``[connectors.NAME] type = "web"``): ``start_url`` and/or ``sitemap`` (at least one; with
only a sitemap, links are not followed), ``max_pages`` (500), ``include`` / ``exclude`` (globs on
the URL path, e.g. ``"/docs/*"``; an excluded or not-included URL is never fetched, except the start
URL, which is always read for its links but indexed only if included), ``rate_limit_per_s`` (2),
``user_agent``, ``pdf`` (false), ``cache_dir``.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import os
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from bs4 import BeautifulSoup
from protego import Protego
from pydantic import BeforeValidator, ValidationInfo, model_validator

from connectors.api_client import retry_after
from connectors.options import ConnectorOptions, Flag, Globs, PositiveCount, Text
from connectors.parsers import UnreadableFile, parse_file, parse_html
from core.documents import Acl, Document, LoadFailure, content_hash
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "ArchivistBot/0.1 (+https://archivist.example)"
DEFAULT_MAX_PAGES = 500
DEFAULT_RATE_LIMIT_PER_S = 2.0
BATCH_SIZE = 32

# connect: a host that has not accepted a connection in 10 s is down or unreachable, and every
# page of a crawl would wait as long. read: server-rendered CMS pages can take a while to start
# answering, but 30 s of silence means a stuck backend. write/pool: GETs send almost nothing and
# one connection is used at a time, so these only guard against a wedged socket.
TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0)
MAX_PAGE_BYTES = 20 * 1024 * 1024  # bigger bodies are downloads, not pages; never read them whole
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own limit, uncompressed
MAX_SITEMAPS = 50  # sitemap index files may nest; bound the files one sync reads
MAX_ATTEMPTS = 3  # for 429 / 503 answers
MAX_TRANSPORT_ATTEMPTS = 2  # a timeout or reset connection is retried once
BACKOFF_S = 1.0  # wait before a retry when the server names no Retry-After (doubles each time)
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After means "come back later": stop the sync instead
MAX_CRAWL_DELAY_S = 30.0  # robots.txt Crawl-delay is honoured up to this
MAX_CONSECUTIVE_TRANSPORT_FAILURES = 5  # then the site is down, not one page: stop, prune nothing
CACHE_FORMAT = 1  # bump when the extraction changes, so cached text is not reused
_CACHED_STRINGS = ("title", "text", "hash")  # an entry without these is ignored (re-downloaded)

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_PDF_TYPE = "application/pdf"
_REDIRECTS = (301, 302, 303, 307, 308)
_GONE = (404, 410)
_RETRY = (429, 503)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Never fetched as pages: the body would be thrown away after the download.
_SKIPPED_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .svg .webp .ico .bmp .tif .tiff .css .js .mjs .json .map .xml .rss .atom "
    ".zip .gz .tgz .bz2 .xz .7z .rar .tar .exe .dmg .msi .deb .rpm .iso .apk .mp3 .mp4 .m4a .wav .ogg "
    ".webm .mov .avi .woff .woff2 .ttf .otf .eot .doc .docx .xls .xlsx .ppt .pptx .csv".split()
)


def normalise_url(url: str, base: str | None = None) -> str | None:
    """An absolute http(s) URL without fragment, default port or user info; None if not one.

    Relative links resolve against ``base``; scheme and host are lowercased; an empty path is "/".
    """
    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _mime(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _charset(headers: httpx.Headers) -> str | None:
    match = re.search(r"charset=[\"']?([\w.:-]+)", headers.get("content-type", ""), re.IGNORECASE)
    return match.group(1) if match else None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class _Throttle:
    """Spaces request starts at least ``interval_s`` apart; a Retry-After pushes the next one back."""

    def __init__(self, interval_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval_s = interval_s
        self._sleep = sleep
        self._next = 0.0

    def wait(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            self._sleep(delay)
        self._next = time.monotonic() + self.interval_s

    def defer(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


@dataclass
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes | None  # read only for a 2xx answer of a wanted type


class _TooLarge(Exception):
    pass


class _Fetcher:
    """GETs through one client, throttled, with bounded retries of 429 / 503 and transport errors."""

    def __init__(self, client: httpx.Client, throttle: _Throttle) -> None:
        self.client = client
        self.throttle = throttle

    def get(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        wanted: Callable[[str], bool] = lambda _: True,
        limit: int = MAX_PAGE_BYTES,
        follow_redirects: bool = False,
    ) -> _Response:
        attempt = transport_attempt = 0
        while True:
            self.throttle.wait()
            try:
                with self.client.stream(
                    "GET", url, headers=headers, follow_redirects=follow_redirects
                ) as response:
                    if response.status_code in _RETRY and attempt + 1 < MAX_ATTEMPTS:
                        delay = retry_after(response.headers.get("retry-after"), BACKOFF_S * 2**attempt)
                        if delay > MAX_RETRY_AFTER_S:
                            msg = (
                                f"{url} answered HTTP {response.status_code} and asked to wait "
                                f"{delay:.0f} s; sync again later"
                            )
                            raise SourceError(msg)
                        log.info("%s: HTTP %s, retrying in %.1f s", url, response.status_code, delay)
                        self.throttle.defer(delay)
                        attempt += 1
                        continue
                    body = None
                    if 200 <= response.status_code < 300 and wanted(_mime(response.headers)):
                        body = self._read(response, limit)
                    return _Response(response.status_code, response.headers, body)
            except httpx.TransportError:
                transport_attempt += 1
                if transport_attempt >= MAX_TRANSPORT_ATTEMPTS:
                    raise
                self.throttle.defer(BACKOFF_S)

    @staticmethod
    def _read(response: httpx.Response, limit: int) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        data = bytearray()
        for piece in response.iter_bytes():
            data += piece
            if len(data) > limit:
                raise _TooLarge
        return bytes(data)


class _Robots:
    """A site's robots.txt rules (RFC 9309, by protego); no rules at all when there is none."""

    def __init__(self, text: str | None) -> None:
        self._rules = Protego.parse(text) if text is not None else None

    def can_fetch(self, user_agent: str, url: str) -> bool:
        return self._rules is None or bool(self._rules.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        delay = self._rules.crawl_delay(user_agent) if self._rules is not None else None
        return float(delay) if delay else None


@dataclass
class _Crawl:
    """The state of one sync's crawl."""

    fetcher: _Fetcher
    robots: _Robots
    pages: dict[str, dict]  # the cache's entries, updated as pages are read
    visited: list[str] = field(default_factory=list)
    transport_failures: int = 0


def _page_url(value: object, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    url = normalise_url(value) if isinstance(value, str) else None
    if url is None:
        msg = f"'{info.field_name}' must be an absolute http(s) URL, not {value!r}"
        raise ValueError(msg)
    return url


def _rate(value: object, info: ValidationInfo) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        msg = f"'{info.field_name}' must be a number above 0, not {value!r}"
        raise ValueError(msg)
    return float(value)


PageUrl = Annotated[str | None, BeforeValidator(_page_url)]


class WebOptions(ConnectorOptions):
    """The keys of a ``type = "web"`` table."""

    start_url: PageUrl = None
    sitemap: PageUrl = None
    max_pages: PositiveCount = DEFAULT_MAX_PAGES
    include: Globs = ()  # URL path globs such as "/docs/*"
    exclude: Globs = ()
    rate_limit_per_s: Annotated[float, BeforeValidator(_rate)] = DEFAULT_RATE_LIMIT_PER_S
    user_agent: Text = DEFAULT_USER_AGENT
    pdf: Flag = False
    cache_dir: Text | None = None

    @model_validator(mode="after")
    def _somewhere_to_start(self) -> WebOptions:
        if not self.start_url and not self.sitemap:
            msg = "'start_url' or 'sitemap' is required for a web source"
            raise ValueError(msg)
        if self.start_url and self.sitemap and _origin(self.start_url) != _origin(self.sitemap):
            msg = "'sitemap' must be on the same site (scheme and host) as 'start_url'"
            raise ValueError(msg)
        return self


@dataclass
class WebConnector:
    name: str
    acl: Acl
    start_url: str | None
    sitemap: str | None
    cache_path: Path
    max_pages: int = DEFAULT_MAX_PAGES
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rate_limit_per_s: float = DEFAULT_RATE_LIMIT_PER_S
    user_agent: str = DEFAULT_USER_AGENT
    pdf: bool = False
    kind: str = "web"

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> WebConnector:
        options = WebOptions.parse(settings)
        directory = Path(options.cache_dir) if options.cache_dir else data_dir / "web"
        return cls(
            name=name,
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            start_url=options.start_url,
            sitemap=options.sitemap,
            cache_path=directory / f"{name}.json",
            max_pages=options.max_pages,
            include=options.include,
            exclude=options.exclude,
            rate_limit_per_s=options.rate_limit_per_s,
            user_agent=options.user_agent,
            pdf=options.pdf,
        )

    def describe(self) -> str:
        if self.start_url and self.sitemap:
            return f"web pages from {self.start_url} and {self.sitemap}"
        return f"web pages from {self.start_url or self.sitemap}"

    # -- the crawl -------------------------------------------------------------------------------

    @property
    def _site(self) -> tuple[str, str]:
        return _origin(self.start_url or self.sitemap or "")

    def _same_site(self, url: str) -> bool:
        return _origin(url) == self._site

    def _wanted(self, url: str) -> bool:
        path = urlsplit(url).path or "/"

        def matches(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch(path, pattern) for pattern in patterns)

        return (not self.include or matches(self.include)) and not matches(self.exclude)

    def _fetchable(self, url: str, robots: _Robots) -> bool:
        suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
        if suffix in _SKIPPED_SUFFIXES or (suffix == ".pdf" and not self.pdf):
            return False
        return self._same_site(url) and self._wanted(url) and robots.can_fetch(self.user_agent, url)

    def _accepts(self, mime_type: str) -> bool:
        return mime_type in _HTML_TYPES or (self.pdf and mime_type == _PDF_TYPE)

    def load_all(self) -> Iterator[Batch]:
        old = self._read_cache()
        accept = "text/html,application/xhtml+xml" + (",application/pdf" if self.pdf else "") + ",*/*;q=0.1"
        headers = {"User-Agent": self.user_agent, "Accept": accept}
        with httpx.Client(headers=headers, timeout=TIMEOUT, follow_redirects=False) as client:
            fetcher = _Fetcher(client, _Throttle(1.0 / self.rate_limit_per_s))
            robots = self._robots(fetcher)
            crawl = _Crawl(fetcher, robots, dict(old))
            completed = False
            try:
                yield from self._crawl(crawl)
                completed = True
            finally:
                # After a complete crawl the cache holds exactly the pages seen; after an aborted
                # one it keeps the old entries too, so nothing is downloaded again for nothing.
                pages = crawl.pages
                if completed:
                    pages = {url: pages[url] for url in crawl.visited if url in pages}
                self._write_cache(pages)

    def _crawl(self, crawl: _Crawl) -> Iterator[Batch]:
        queue: deque[str] = deque()
        queued: set[str] = set()

        def enqueue(url: str) -> None:
            if url not in queued and self._fetchable(url, crawl.robots):
                queued.add(url)
                queue.append(url)

        start = normalise_url(self.start_url) if self.start_url else None
        if start:
            if not crawl.robots.can_fetch(self.user_agent, start):
                msg = f"robots.txt of {start} disallows it for {self.user_agent!r}"
                raise SourceError(msg)
            queued.add(start)
            queue.append(start)
        if self.sitemap:
            for url in self._sitemap_urls(crawl):
                enqueue(url)

        batch: Batch = []
        while queue and len(crawl.visited) < self.max_pages:
            url = queue.popleft()
            crawl.visited.append(url)
            item, links = self._visit(crawl, url, is_start=url == start)
            for link in links:
                enqueue(link)
            if item is not None:
                batch.append(item)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if queue:
            log.warning(
                "%s: stopped at max_pages = %d; %d more known page(s) were not read (and are not indexed)",
                self.name,
                self.max_pages,
                len(queue),
            )
        if batch:
            yield batch

    def _visit(
        self, crawl: _Crawl, url: str, *, is_start: bool
    ) -> tuple[Document | LoadFailure | None, list[str]]:
        """Fetch one URL: (what to yield, if anything; the links to follow)."""
        entry = crawl.pages.get(url)
        cached_links = list(entry.get("links", ())) if entry and self.start_url else []
        conditional: dict[str, str] = {}
        if entry and entry.get("etag"):
            conditional["If-None-Match"] = entry["etag"]
        if entry and entry.get("last_modified"):
            conditional["If-Modified-Since"] = entry["last_modified"]

        def fail(reason: str) -> tuple[LoadFailure, list[str]]:
            if is_start:
                msg = f"start URL {url} cannot be read: {reason}"
                raise SourceError(msg)
            return LoadFailure(url, self.name, reason), cached_links

        try:
            response = crawl.fetcher.get(url, conditional, wanted=self._accepts)
        except _TooLarge:
            return fail(f"larger than {MAX_PAGE_BYTES // 2**20} MiB")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            crawl.transport_failures += 1
            if crawl.transport_failures >= MAX_CONSECUTIVE_TRANSPORT_FAILURES:
                msg = f"{self._site[1]} stopped answering ({type(exc).__name__}: {exc})"
                raise SourceError(msg) from exc
            return fail(f"cannot fetch: {type(exc).__name__}: {exc}".rstrip(": "))
        crawl.transport_failures = 0
        status = response.status

        if status == 304:
            if entry is None:
                return fail("HTTP 304 to an unconditional request")
            for key, header in (("etag", "etag"), ("last_modified", "last-modified")):
                if response.headers.get(header):
                    entry[key] = response.headers[header]
            return self._cached_item(url, entry), cached_links
        if status in _REDIRECTS:
            crawl.pages.pop(url, None)
            target = normalise_url(response.headers.get("location", ""), url)
            if target and self._same_site(target):
                return None, [target]
            if is_start:
                msg = f"start URL {url} redirects off the site to {target}; use that as start_url"
                raise SourceError(msg)
            log.info("%s: %s redirects off the site; not followed", self.name, url)
            return None, []
        if status in _GONE:
            if is_start:
                return fail(f"HTTP {status}")
            crawl.pages.pop(url, None)
            return None, []
        if not 200 <= status < 300:
            return fail(f"HTTP {status}")
        if response.body is None:  # not HTML (nor an accepted PDF): not a page to index
            crawl.pages.pop(url, None)
            return None, []

        try:
            mime_type, title, text, links, noindex = self._parse(url, response)
        except UnreadableFile as exc:
            return fail(str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - parsers raise anything on hostile pages
            return fail(f"cannot parse: {type(exc).__name__}: {exc}")
        modified = _http_date(response.headers.get("last-modified")) or datetime.now(UTC)
        entry = {
            "etag": response.headers.get("etag", ""),
            "last_modified": response.headers.get("last-modified", ""),
            "hash": content_hash(title, text),
            "title": title,
            "text": text,
            "mime_type": mime_type,
            "updated_at": modified.isoformat(),
            "links": links,
            "noindex": noindex,
        }
        crawl.pages[url] = entry
        return self._cached_item(url, entry), links if self.start_url else []

    def _cached_item(self, url: str, entry: dict) -> Document | LoadFailure | None:
        if entry.get("noindex") or not self._wanted(url):
            return None
        if not str(entry.get("text", "")).strip():
            return LoadFailure(url, self.name, "the page has no text (is it rendered by JavaScript?)")
        try:
            updated = datetime.fromisoformat(entry["updated_at"])
        except (KeyError, TypeError, ValueError):
            updated = datetime.now(UTC)
        return Document(
            id=url,
            source=self.name,
            title=entry["title"],
            text=entry["text"],
            url=url,
            version=entry.get("etag") or entry["hash"],
            updated_at=updated,
            acl=self.acl,
            mime_type=entry.get("mime_type", "text/html"),
        )

    def _parse(self, url: str, response: _Response) -> tuple[str, str, str, list[str], bool]:
        """(mime type, title, text, same-site links, noindex) of a fetched page."""
        body = response.body or b""
        mime_type = _mime(response.headers)
        fallback_title = PurePosixPath(urlsplit(url).path).stem.replace("-", " ").replace("_", " ")
        if mime_type == _PDF_TYPE:
            _, title, text = parse_file(PurePosixPath("page.pdf"), body)
            return _PDF_TYPE, title, text, [], False
        charset = _charset(response.headers)
        if charset:
            try:
                body = body.decode(charset).encode("utf-8")
            except (LookupError, UnicodeDecodeError):
                pass  # parse_html falls back to UTF-8, then Latin-1
        title, text = parse_html(body)
        links, noindex, nofollow = self._links(body, url)
        title = title.strip() or fallback_title or urlsplit(url).netloc
        return "text/html", title, text, [] if nofollow else links, noindex

    def _links(self, body: bytes, url: str) -> tuple[list[str], bool, bool]:
        """Same-site links of a page in document order, and its meta robots noindex/nofollow.

        Read from the whole page: the navigation that parse_html drops is where the links are.
        """
        soup = BeautifulSoup(body, "html.parser")
        agent = self.user_agent.split("/")[0].strip().lower()
        directives: set[str] = set()
        for meta in soup.find_all("meta", attrs={"name": True, "content": True}):
            if str(meta["name"]).strip().lower() in ("robots", agent):
                directives |= {part.strip().lower() for part in str(meta["content"]).split(",")}
        noindex = bool(directives & {"noindex", "none"})
        nofollow = bool(directives & {"nofollow", "none"})
        base_tag = soup.find("base", href=True)
        base = urljoin(url, str(base_tag["href"])) if base_tag else url
        links: list[str] = []
        seen: set[str] = set()
        for anchor in soup.find_all(["a", "area"], href=True):
            link = normalise_url(str(anchor["href"]), base)
            if link and link != url and link not in seen and self._same_site(link):
                seen.add(link)
                links.append(link)
        return links, noindex, nofollow

    # -- robots.txt and sitemaps -----------------------------------------------------------------

    def _robots(self, fetcher: _Fetcher) -> _Robots:
        scheme, netloc = self._site
        url = f"{scheme}://{netloc}/robots.txt"
        try:
            response = fetcher.get(url, wanted=lambda _: True, limit=512 * 1024, follow_redirects=True)
        except (httpx.HTTPError, _TooLarge) as exc:
            msg = f"cannot read {url}: {type(exc).__name__}: {exc}".rstrip(": ")
            raise SourceError(msg) from exc
        if 400 <= response.status < 500:
            rules = _Robots(None)  # RFC 9309: no robots.txt (or not for us) means no rules
        elif response.status != 200 or response.body is None:
            msg = f"cannot read {url}: HTTP {response.status}; not crawling a site whose rules are unknown"
            raise SourceError(msg)
        else:
            rules = _Robots(response.body.decode("utf-8", errors="replace"))
        delay = rules.crawl_delay(self.user_agent)
        if delay:
            interval = max(fetcher.throttle.interval_s, min(delay, MAX_CRAWL_DELAY_S))
            fetcher.throttle.interval_s = interval
        return rules

    def _sitemap_urls(self, crawl: _Crawl) -> list[str]:
        """Page URLs listed by the sitemap, following sitemap index files."""
        assert self.sitemap is not None
        pending: deque[str] = deque([normalise_url(self.sitemap) or self.sitemap])
        read: set[str] = set()
        urls: list[str] = []
        while pending:
            sitemap = pending.popleft()
            if sitemap in read:
                continue
            if len(read) >= MAX_SITEMAPS:
                log.warning("%s: read %d sitemaps; ignoring the rest", self.name, MAX_SITEMAPS)
                break
            read.add(sitemap)
            kind, locations = self._read_sitemap(crawl, sitemap)
            for location in locations:
                url = normalise_url(location, sitemap)
                if url is None or not self._same_site(url):
                    continue
                (pending if kind == "sitemapindex" else urls).append(url)
        return urls

    def _read_sitemap(self, crawl: _Crawl, url: str) -> tuple[str, list[str]]:
        if not crawl.robots.can_fetch(self.user_agent, url):
            msg = f"robots.txt disallows the sitemap {url}"
            raise SourceError(msg)
        try:
            response = crawl.fetcher.get(url, limit=MAX_SITEMAP_BYTES, follow_redirects=True)
        except (httpx.HTTPError, httpx.InvalidURL, _TooLarge) as exc:
            msg = f"cannot read the sitemap {url}: {type(exc).__name__}: {exc}".rstrip(": ")
            raise SourceError(msg) from exc
        if response.status != 200 or response.body is None:
            msg = f"cannot read the sitemap {url}: HTTP {response.status}"
            raise SourceError(msg)
        data = response.body
        try:
            if data[:2] == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
                    data = unzipped.read(MAX_SITEMAP_BYTES + 1)
                if len(data) > MAX_SITEMAP_BYTES:
                    raise _TooLarge
            root = ET.fromstring(data)  # expat (2.4+) bounds entity expansion
        except (OSError, EOFError, ET.ParseError, _TooLarge) as exc:
            msg = f"{url} is not a readable sitemap ({type(exc).__name__}: {exc})"
            raise SourceError(msg) from exc
        kind = _local(root.tag)
        child = {"urlset": "url", "sitemapindex": "sitemap"}.get(kind)
        if child is None:
            msg = f"{url} is not a sitemap (its root element is <{kind}>)"
            raise SourceError(msg)
        locations = [
            loc.text.strip()
            for element in root
            if _local(element.tag) == child
            for loc in element
            if _local(loc.tag) == "loc" and loc.text and loc.text.strip()
        ]
        return kind, locations

    # -- the cache ------------------------------------------------------------------------------

    def _read_cache(self) -> dict[str, dict]:
        try:
            raw = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s: ignoring the unreadable cache %s: %s", self.name, self.cache_path, exc)
            return {}
        if (
            not isinstance(raw, dict)
            or raw.get("format") != CACHE_FORMAT
            or not isinstance(raw.get("pages"), dict)
        ):
            return {}
        return {
            url: entry
            for url, entry in raw["pages"].items()
            if isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in _CACHED_STRINGS)
        }

    def _write_cache(self, pages: dict[str, dict]) -> None:
        """Write atomically: a sync killed mid-write leaves the old cache, never half a file."""
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            payload = json.dumps({"format": CACHE_FORMAT, "pages": pages}, ensure_ascii=False)
            handle, temporary = tempfile.mkstemp(
                dir=self.cache_path.parent, prefix=f".{self.cache_path.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(payload)
                os.replace(temporary, self.cache_path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # Only costs bandwidth next time (pages are downloaded again); the sync itself is fine.
            log.warning("%s: cannot write the cache %s: %s", self.name, self.cache_path, exc)
