"""The web connector against a small site served locally, synced through a real App."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.web import normalise_url
from core.app import App
from core.documents import Document, LoadFailure
from core.errors import ConfigError, SourceError
from core.retrieval.store.base import AccessFilter, SearchQuery
from core.settings import ConnectorSettings
from core.sync.registry import build_connector
from tests.conftest import BASE_CONFIG, CountingEmbedder

NAV = "Navmenu Quokka"
FOOTER = "Footer Wombat copyright notice"


def _page(title: str, body: str, links: str = "") -> bytes:
    return f"""<!doctype html>
<html><head><title>{title}</title></head>
<body>
  <nav><a href="/">{NAV} home</a> <a href="/guide/install.html">Install</a>
       <a href="/private/secret.html">Staff only</a></nav>
  <main><h1>{title}</h1>{body}{links}</main>
  <footer><p>{FOOTER}</p></footer>
</body></html>""".encode()


@dataclass
class Request:
    path: str
    host: str
    if_none_match: str | None
    status: int


@dataclass
class Site:
    """A tiny web site whose pages, failures and request log the tests control."""

    port: int = 0
    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # path -> (content type, body)
    rate_limited: dict[str, int] = field(default_factory=dict)  # path -> 429 answers left
    retry_after: str = "1"
    errors: dict[str, int] = field(default_factory=dict)  # path -> status to answer
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: Callable[[], object] = lambda: None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def paths_requested(self) -> list[str]:
        return [r.path for r in self.requests]

    def page_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path not in ("/robots.txt",) and "sitemap" not in r.path]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path
            status, headers, body = self._answer(path)
            with site.lock:
                site.requests.append(
                    Request(path, self.headers.get("Host", ""), self.headers.get("If-None-Match"), status)
                )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
            with site.lock:
                if site.rate_limited.get(path, 0) > 0:
                    site.rate_limited[path] -= 1
                    return 429, {"Retry-After": site.retry_after}, b"slow down"
            if path in site.errors:
                return site.errors[path], {}, b"oops"
            if path in site.redirects:
                return 301, {"Location": site.redirects[path]}, b""
            if path not in site.pages:
                return 404, {"Content-Type": "text/html"}, b"<h1>Not found</h1>"
            content_type, body = site.pages[path]
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                return 304, {"ETag": etag}, b""
            return 200, {"Content-Type": content_type, "ETag": etag}, body

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    offsite = f"http://localhost:{state.port}/offsite.html"  # another host: must not be followed
    html = "text/html; charset=utf-8"
    state.pages = {
        "/robots.txt": ("text/plain", b"User-agent: *\nDisallow: /private/\n"),
        "/": (
            html,
            _page(
                "Example Handbook",
                "<p>Welcome to the handbook of the Zebrafish team.</p>",
                '<ul><li><a href="guide/install.html#step-2">Install guide</a></li>'
                '<li><a href="/faq.html">FAQ</a></li><li><a href="/flaky.html">Flaky</a></li>'
                '<li><a href="/moved.html">Old page</a></li><li><a href="/logo.png">Logo</a></li></ul>',
            ),
        ),
        "/guide/install.html": (
            html,
            _page(
                "Install guide",
                "<h2>Step 2</h2><p>Run the installer with the flag --capybara to finish setup.</p>",
                '<p><a href="../faq.html#top">See the FAQ</a> <a href="#step-2">here</a></p>',
            ),
        ),
        "/faq.html": (
            html,
            _page(
                "FAQ",
                "<p>The office wifi password rotates every Monday.</p>",
                f'<p><a href="{offsite}">Partner site</a> <a href="mailto:help@example.com">Mail</a>'
                ' <a href="/deep.html">Deep page</a></p>',
            ),
        ),
        "/deep.html": (html, _page("Deep page", "<p>Only the FAQ links to the axolotl archive.</p>")),
        "/flaky.html": (html, _page("Flaky page", "<p>This page is rate limited once per sync.</p>")),
        "/private/secret.html": (html, _page("Secret", "<p>Salaries of everyone.</p>")),
        "/offsite.html": (html, _page("Offsite", "<p>Another site entirely.</p>")),
        "/orphan.html": (html, _page("Orphan", "<p>Only the sitemap knows the narwhal page.</p>")),
        "/logo.png": ("image/png", b"\x89PNG\r\n\x1a\n"),
        "/sitemap.xml": (
            "application/xml",
            f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{state.base}/sitemap-pages.xml</loc></sitemap>
</sitemapindex>""".encode(),
        ),
        "/sitemap-pages.xml": (
            "application/xml",
            f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc>{state.base}/</loc></url>
  <url><loc>{state.base}/faq.html</loc>
       <image:image><image:loc>{state.base}/logo.png</image:loc></image:image></url>
  <url><loc>{state.base}/orphan.html</loc></url>
  <url><loc>{state.base}/private/secret.html</loc></url>
  <url><loc>{offsite}</loc></url>
</urlset>""".encode(),
        ),
    }
    state.redirects = {"/moved.html": "/guide/install.html"}
    state.rate_limited = {"/flaky.html": 1}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.stop = lambda: (server.shutdown(), server.server_close())
    try:
        yield state
    finally:
        if thread.is_alive():
            server.shutdown()
            server.server_close()


@pytest.fixture
def make_site_app(
    make_app: Callable[[str], App], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], App]:
    """Apps reading the handbook plus a web source with these ``options``."""
    monkeypatch.setenv("ARCHIVIST_DATA_DIR", str(tmp_path / "data"))

    def make(options: str) -> App:
        table = f'\n[connectors.site]\ntype = "web"\npublic = true\nrate_limit_per_s = 50\n{options}\n'
        return make_app(BASE_CONFIG + table)

    return make


@pytest.fixture
def crawl_app(site: Site, make_site_app: Callable[..., App]) -> App:
    return make_site_app(f'start_url = "{site.base}/"')


CRAWLED = ("/", "/guide/install.html", "/faq.html", "/flaky.html", "/deep.html")


def _ids(site: Site, paths: tuple[str, ...]) -> set[str]:
    return {site.url(path) for path in paths}


def _sync(app: App):
    return app.sync_engine.sync(app.connector("site"))


def test_crawl_indexes_the_site_and_only_the_site(crawl_app: App, site: Site) -> None:
    report = _sync(crawl_app)
    assert report.failed == 0, report.failures
    assert set(crawl_app.store.indexed_documents("site")) == _ids(site, CRAWLED)
    assert report.added == len(CRAWLED)
    requested = site.paths_requested()
    assert requested[0] == "/robots.txt" and requested.count("/robots.txt") == 1
    assert not any(path.startswith("/private/") for path in requested)  # robots.txt obeyed
    assert all(r.host == f"127.0.0.1:{site.port}" for r in site.requests)  # off-site link not followed
    assert "/logo.png" not in requested and "/orphan.html" not in requested
    assert "/moved.html" in requested  # a redirect is read as a link to its target, not indexed
    assert requested.count("/flaky.html") == 2  # 429 once, Retry-After honoured, then read
    assert [r.status for r in site.requests if r.path == "/flaky.html"] == [429, 200]
    assert len(set(requested)) == len(requested) - 1  # each page fetched once (the 429 aside)


def test_indexed_text_is_the_main_content_without_page_chrome(crawl_app: App, site: Site) -> None:
    _sync(crawl_app)
    documents = {
        item.id: item
        for batch in crawl_app.connector("site").load_all()
        for item in batch
        if isinstance(item, Document)
    }
    install = documents[site.url("/guide/install.html")]
    assert install.title == "Install guide" and install.url == install.id
    assert "--capybara" in install.text and "## Step 2" in install.text
    assert all(NAV not in d.text and "Wombat" not in d.text for d in documents.values())
    assert all(d.acl.public for d in documents.values())
    vector = crawl_app.embedder.embed_query("Wombat copyright")
    hits = crawl_app.store.search(SearchQuery("Wombat", vector, limit=5, alpha=0.0), AccessFilter())
    assert all("Wombat" not in hit.chunk.text for hit in hits)
    hits = crawl_app.store.search(
        SearchQuery("capybara", crawl_app.embedder.embed_query("capybara"), limit=3, alpha=0.0),
        AccessFilter(),
    )
    assert hits and hits[0].chunk.document_id == site.url("/guide/install.html")


def test_resync_sends_validators_and_embeds_nothing(crawl_app: App, site: Site, tmp_path: Path) -> None:
    first = _sync(crawl_app)
    cache = json.loads((tmp_path / "data" / "web" / "site.json").read_text())
    assert set(cache["pages"]) >= _ids(site, CRAWLED) and cache["pages"][site.url("/faq.html")]["etag"]
    site.requests.clear()
    counting = CountingEmbedder(crawl_app.embedder)
    crawl_app.sync_engine._embedder = counting
    again = _sync(crawl_app)
    assert (again.added, again.updated, again.deleted, again.failed) == (0, 0, 0, 0)
    assert again.unchanged == first.added
    assert counting.texts == 0
    conditional = [r for r in site.page_requests() if r.path in CRAWLED and r.status != 429]
    assert {r.path for r in conditional} == set(CRAWLED)
    assert all(r.if_none_match and r.status == 304 for r in conditional)
    assert "/deep.html" in site.paths_requested()  # reached through the FAQ's cached links


def test_changed_page_is_reembedded_and_removed_page_pruned(crawl_app: App, site: Site) -> None:
    _sync(crawl_app)
    site.pages["/faq.html"] = (
        "text/html",
        _page(
            "FAQ",
            "<p>The office wifi password now rotates every Friday.</p>",
            '<a href="/deep.html">Deep</a>',
        ),
    )
    del site.pages["/flaky.html"]
    counting = CountingEmbedder(crawl_app.embedder)
    crawl_app.sync_engine._embedder = counting
    report = _sync(crawl_app)
    assert (report.updated, report.deleted, report.added, report.failed) == (1, 1, 0, 0)
    assert 0 < counting.texts == report.chunks_embedded  # only the FAQ's chunks
    indexed = crawl_app.store.indexed_documents("site")
    assert set(indexed) == _ids(site, CRAWLED) - {site.url("/flaky.html")}
    vector = crawl_app.embedder.embed_query("wifi password Friday")
    hits = crawl_app.store.search(SearchQuery("wifi password", vector, limit=3), AccessFilter())
    assert "Friday" in hits[0].chunk.text


def test_page_error_is_a_failure_that_keeps_the_page_and_its_subtree(crawl_app: App, site: Site) -> None:
    _sync(crawl_app)
    site.errors["/faq.html"] = 500
    report = _sync(crawl_app)
    assert report.failed == 1 and report.failures[0].startswith(site.url("/faq.html") + ": HTTP 500")
    assert report.deleted == 0
    # The FAQ's old chunks stay, and /deep.html (linked only from it) is still reached.
    assert set(crawl_app.store.indexed_documents("site")) == _ids(site, CRAWLED)


def test_unreachable_start_url_fails_the_source_and_prunes_nothing(crawl_app: App, site: Site) -> None:
    _sync(crawl_app)
    before = crawl_app.store.count("site")
    site.stop()
    with pytest.raises(SourceError, match="robots.txt"):
        _sync(crawl_app)
    assert crawl_app.store.count("site") == before
    assert crawl_app.sync_status.last("site").error


def test_start_url_error_fails_the_source(crawl_app: App, site: Site) -> None:
    _sync(crawl_app)
    before = crawl_app.store.count("site")
    site.errors["/"] = 500
    with pytest.raises(SourceError, match="start URL"):
        _sync(crawl_app)
    assert crawl_app.store.count("site") == before


def test_sitemap_index_lists_the_pages(site: Site, make_site_app: Callable[..., App]) -> None:
    app = make_site_app(f'sitemap = "{site.base}/sitemap.xml"')
    report = _sync(app)
    assert report.failed == 0, report.failures
    # Listed, same-site and allowed pages only; links are not followed in sitemap-only mode.
    assert set(app.store.indexed_documents("site")) == _ids(site, ("/", "/faq.html", "/orphan.html"))
    requested = site.paths_requested()
    assert "/sitemap-pages.xml" in requested and "/logo.png" not in requested
    assert not any(path.startswith("/private/") for path in requested)
    assert all(r.host == f"127.0.0.1:{site.port}" for r in site.requests)


def test_exclude_and_max_pages(site: Site, make_site_app: Callable[..., App]) -> None:
    app = make_site_app(f'start_url = "{site.base}/"\nexclude = ["/flaky*"]\nmax_pages = 3')
    _sync(app)
    assert "/flaky.html" not in site.paths_requested()
    assert len(site.page_requests()) == 3
    assert set(app.store.indexed_documents("site")) == _ids(site, ("/", "/guide/install.html", "/faq.html"))


def test_include_limits_what_is_indexed(site: Site, make_site_app: Callable[..., App]) -> None:
    app = make_site_app(f'start_url = "{site.base}/"\ninclude = ["/guide/*"]')
    _sync(app)
    # The start page is read for its links but not indexed: it is not included.
    assert set(app.store.indexed_documents("site")) == _ids(site, ("/guide/install.html",))


def test_robots_txt_disallowing_the_start_url_fails_the_source(
    site: Site, make_site_app: Callable[..., App]
) -> None:
    app = make_site_app(f'start_url = "{site.base}/private/secret.html"')
    with pytest.raises(SourceError, match="disallows"):
        _sync(app)
    assert "/private/secret.html" not in site.paths_requested()


def test_noindex_pages_are_not_indexed(site: Site, make_site_app: Callable[..., App]) -> None:
    site.pages["/deep.html"] = (
        "text/html",
        b'<html><head><meta name="robots" content="noindex"><title>D</title></head>'
        b"<body><main><p>Hidden text.</p></main></body></html>",
    )
    app = make_site_app(f'start_url = "{site.base}/"')
    _sync(app)
    assert site.url("/deep.html") not in app.store.indexed_documents("site")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "'start_url' or 'sitemap' is required"),
        ({"start_url": "ftp://example.com/"}, "absolute http"),
        ({"start_url": "https://example.com/", "max_pages": 0}, "max_pages"),
        ({"start_url": "https://example.com/", "rate_limit_per_s": "fast"}, "rate_limit_per_s"),
        ({"start_url": "https://example.com/", "include": [1]}, "include"),
        ({"start_url": "https://example.com/", "depth": 3}, "unknown option"),
        ({"start_url": "https://a.example/", "sitemap": "https://b.example/sitemap.xml"}, "same site"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str) -> None:
    settings = ConnectorSettings(type="web", **options)
    with pytest.raises(ConfigError, match=message):
        build_connector("site", settings, Path("/tmp/unused"))


def test_defaults_are_polite_and_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    connector = build_connector(
        "docs", ConnectorSettings(type="web", start_url="https://Example.com:443/a#x"), tmp_path
    )
    assert connector.start_url == "https://example.com/a"
    assert connector.rate_limit_per_s == 2 and connector.max_pages == 500
    assert connector.user_agent.startswith("ArchivistBot/")
    assert connector.acl.public is False and not connector.acl.principals
    assert connector.cache_path == tmp_path / "web" / "docs.json"
    assert "https://example.com/a" in connector.describe()


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("../faq.html#top", "http://h.example/guide/install.html", "http://h.example/faq.html"),
        ("HTTP://H.Example:80", None, "http://h.example/"),
        ("https://h.example:8443/a?b=1#c", None, "https://h.example:8443/a?b=1"),
        ("#section", "http://h.example/page", "http://h.example/page"),
        ("mailto:someone@example.com", "http://h.example/", None),
        ("javascript:void(0)", "http://h.example/", None),
        ("http://user:pw@h.example/x", None, "http://h.example/x"),
    ],
)
def test_normalise_url(url: str, base: str | None, expected: str | None) -> None:
    assert normalise_url(url, base) == expected


def test_a_long_retry_after_stops_the_sync_and_prunes_nothing(crawl_app: App, site: Site) -> None:
    _sync(crawl_app)
    before = crawl_app.store.count("site")
    site.retry_after = "3600"
    site.rate_limited["/faq.html"] = 10
    with pytest.raises(SourceError, match="asked to wait 3600 s"):
        _sync(crawl_app)
    assert [r.path for r in site.requests].count("/faq.html") == 2  # the first sync's read, one 429
    assert crawl_app.store.count("site") == before


def test_pdf_pages_when_enabled(site: Site, make_site_app: Callable[..., App]) -> None:
    pdf = (
        Path(__file__).resolve().parents[2] / "samples/handbook/sales-support/refund-policy.pdf"
    ).read_bytes()
    site.pages["/refunds.pdf"] = ("application/pdf", pdf)
    site.pages["/deep.html"] = ("text/html", _page("Deep", "<p>Text.</p>", '<a href="/refunds.pdf">PDF</a>'))
    app = make_site_app(f'start_url = "{site.base}/"\npdf = true')
    report = _sync(app)
    assert report.failed == 0, report.failures
    assert site.url("/refunds.pdf") in app.store.indexed_documents("site")
    site.requests.clear()
    without = make_site_app(f'start_url = "{site.base}/"')
    assert all(
        item.id != site.url("/refunds.pdf")
        for batch in without.connector("site").load_all()
        for item in batch
    )
    assert "/refunds.pdf" not in site.paths_requested()


def test_load_failure_for_a_page_without_text(site: Site, make_site_app: Callable[..., App]) -> None:
    site.pages["/deep.html"] = ("text/html", b"<html><body><script>render()</script></body></html>")
    app = make_site_app(f'start_url = "{site.base}/"')
    items = [item for batch in app.connector("site").load_all() for item in batch]
    failures = [item for item in items if isinstance(item, LoadFailure)]
    assert [f.id for f in failures] == [site.url("/deep.html")] and "no text" in failures[0].reason


def test_robots_txt_is_read_as_rfc_9309_says(site: Site, tmp_path: Path) -> None:
    # RFC 9309 2.2.2: the longest matching rule wins, Allow wins a tie, "*" matches anything and
    # "$" ends the path. Python's urllib.robotparser takes the first prefix and ignores both.
    site.pages["/robots.txt"] = (
        "text/plain",
        b"User-agent: *\nDisallow: /docs/\nAllow: /docs/public/\nDisallow: /*?sessionid=\n"
        b"Disallow: /*.cgi$\nDisallow: /private/\n",
    )
    links = "".join(
        f'<a href="{path}">{path}</a> '
        for path in ("/docs/public/a.html", "/docs/internal.html", "/faq.html?sessionid=42", "/run.cgi",
                     "/run.cgi.html")
    )  # fmt: skip
    site.pages["/"] = ("text/html", _page("Home", "<p>Start.</p>", links))
    for path in ("/docs/public/a.html", "/docs/internal.html", "/run.cgi", "/run.cgi.html"):
        site.pages[path] = ("text/html", _page(path, f"<p>The page {path}.</p>"))
    settings = ConnectorSettings(type="web", start_url=site.url("/"), public=True, rate_limit_per_s=50)
    connector = build_connector("site", settings, tmp_path)
    list(connector.load_all())  # type: ignore[attr-defined]

    requested = set(site.paths_requested())
    assert {"/docs/public/a.html", "/run.cgi.html"} <= requested  # Allow is longer; "$" ends the match
    assert not requested & {"/docs/internal.html", "/faq.html?sessionid=42", "/run.cgi"}
