"""Documents per second of the Confluence and Notion connectors' full poll, against local fakes.

Each connector reads ``--pages`` pages (default 2,000, about 1 KB of text each) from the local
server that stands in for its service in the tests (``tests/fakes/``), over loopback. What is
timed is one full ``poll(None)``: every request, JSON decoding, the text conversion (Confluence
storage XHTML, Notion blocks) and the Document values; then one ``list_ids()``. Nothing is
embedded or indexed: the sync engine's own cost is measured by ``sync_throughput.py``.

Baseline, measured in the same run: the same HTTP requests made with a bare ``httpx.Client``
that only decodes the JSON (Confluence: the search pages with bodies; Notion: the search pages
plus one block-children request per page). The ratio shows what the connector adds on top of
the wire. Each figure is the median of ``--runs`` runs.

These are not figures for the real services: there the API's rate limits decide (Notion allows
about 3 requests a second, one or more per page; Confluence returns 50 pages a request).

    python benchmarks/saas_connectors.py [--pages 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import httpx

from connectors.confluence import ConfluenceConnector
from connectors.notion import NotionConnector
from core.documents import Acl, Document
from tests.fakes.confluence_server import FakeConfluence
from tests.fakes.notion_server import FakeNotion, bullet, heading, paragraph

RESULTS = Path(__file__).resolve().parent / "results" / "saas_connectors.json"
WORDS = (
    "the deploy pipeline runs on every merge and the on-call engineer checks the dashboard before "
    "rolling back a release that raises the error rate above the agreed threshold for ten minutes"
).split()


def sentence(n: int, length: int = 30) -> str:
    return " ".join(WORDS[(n + i) % len(WORDS)] for i in range(length)).capitalize() + "."


def timed(run: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = run()
    return time.perf_counter() - start, count


# -- Confluence ---------------------------------------------------------------------------------


def confluence_site(pages: int) -> FakeConfluence:
    site = FakeConfluence().start()
    for n in range(pages):
        body = (
            f"<h2>Procedure {n}</h2><p>{sentence(n)}</p><ul><li>{sentence(n + 1, 12)}</li>"
            f"<li>{sentence(n + 2, 12)}</li></ul><p>{sentence(n + 3)}</p>"
            f"<h2>Owners</h2><p>{sentence(n + 4)}</p>"
        )
        site.add(f"Runbook {n}", body, read_groups=["sre"] if n % 10 == 0 else [])
    return site


def confluence_poll(site: FakeConfluence) -> int:
    connector = ConfluenceConnector("wiki", site.base_url, site.email, ("ENG",), Acl(public=True))
    return sum(1 for batch, _ in connector.poll(None) for item in batch if isinstance(item, Document))


def confluence_ids(site: FakeConfluence) -> int:
    connector = ConfluenceConnector("wiki", site.base_url, site.email, ("ENG",), Acl(public=True))
    return sum(1 for _ in connector.list_ids())


def confluence_baseline(site: FakeConfluence) -> int:
    from connectors.confluence import EXPAND, PAGE_SIZE

    pages = 0
    with httpx.Client(base_url=site.base_url, auth=(site.email, site.token)) as client:
        url = "/rest/api/content/search"
        params: dict[str, str] | None = {
            "cql": 'space in ("ENG") and type in (page) order by lastmodified asc',
            "limit": str(PAGE_SIZE),
            "expand": ",".join(EXPAND),
        }
        while True:
            answer = client.get(url, params=params).json()
            pages += len(answer["results"])
            if "next" not in answer["_links"]:
                return pages
            url, params = answer["_links"]["next"], None


# -- Notion ---------------------------------------------------------------------------------------


def notion_workspace(pages: int) -> FakeNotion:
    workspace = FakeNotion().start()
    for n in range(pages):
        workspace.add(
            f"Note {n}",
            heading(2, f"Procedure {n}"),
            paragraph(sentence(n)),
            bullet(sentence(n + 1, 12), bullet(sentence(n + 2, 12))),
            paragraph(sentence(n + 3)),
            heading(2, "Owners"),
            paragraph(sentence(n + 4)),
            same_minute=n % 3 != 0,
        )
    return workspace


def notion_poll(workspace: FakeNotion) -> int:
    connector = NotionConnector("notes", Acl(public=True), api_url=workspace.api_url)
    return sum(1 for batch, _ in connector.poll(None) for item in batch if isinstance(item, Document))


def notion_ids(workspace: FakeNotion) -> int:
    return sum(1 for _ in NotionConnector("notes", Acl(public=True), api_url=workspace.api_url).list_ids())


def notion_baseline(workspace: FakeNotion) -> int:
    headers = {"Authorization": f"Bearer {workspace.token}", "Notion-Version": "2022-06-28"}
    pages = 0
    with httpx.Client(base_url=workspace.api_url, headers=headers) as client:
        body: dict = {"filter": {"property": "object", "value": "page"}, "page_size": 100}
        while True:
            answer = client.post("/v1/search", json=body).json()
            for page in answer["results"]:
                children = client.get(f"/v1/blocks/{page['id']}/children", params={"page_size": 100}).json()
                for block in children["results"]:  # one level of nesting, as the pages have
                    if block["has_children"]:
                        client.get(f"/v1/blocks/{block['id']}/children", params={"page_size": 100}).json()
                pages += 1
            if not answer["has_more"]:
                return pages
            body = {**body, "start_cursor": answer["next_cursor"]}


# -- the run --------------------------------------------------------------------------------------


def measure(name: str, server: object, poll, ids, baseline, pages: int, runs: int) -> dict:
    polls, lists, bases = [], [], []
    for _ in range(runs):
        seconds, count = timed(lambda: baseline(server))
        assert count == pages, (name, "baseline", count)
        bases.append(seconds)
        seconds, count = timed(lambda: poll(server))
        assert count == pages, (name, "poll", count)
        polls.append(seconds)
        seconds, count = timed(lambda: ids(server))
        assert count == pages, (name, "list_ids", count)
        lists.append(seconds)
    poll_s, list_s, base_s = (statistics.median(values) for values in (polls, lists, bases))
    result = {
        "connector": name,
        "pages": pages,
        "runs": runs,
        "full_poll_s": round(poll_s, 3),
        "full_poll_docs_per_s": round(pages / poll_s, 1),
        "baseline_s": round(base_s, 3),
        "baseline_docs_per_s": round(pages / base_s, 1),
        "ratio_to_baseline": round(base_s / poll_s, 2),
        "list_ids_s": round(list_s, 3),
        "list_ids_per_s": round(pages / list_s, 1),
    }
    print(
        f"{name:<10} full poll {poll_s:6.2f} s = {pages / poll_s:7.1f} docs/s "
        f"(bare HTTP {pages / base_s:7.1f} docs/s, ratio {base_s / poll_s:.2f}); "
        f"list_ids {list_s:5.2f} s"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    results = []
    site = confluence_site(args.pages)
    os.environ["CONFLUENCE_API_TOKEN"] = site.token
    try:
        results.append(
            measure(
                "confluence",
                site,
                confluence_poll,
                confluence_ids,
                confluence_baseline,
                args.pages,
                args.runs,
            )
        )
    finally:
        site.stop()
    workspace = notion_workspace(args.pages)
    os.environ["NOTION_TOKEN"] = workspace.token
    try:
        results.append(
            measure("notion", workspace, notion_poll, notion_ids, notion_baseline, args.pages, args.runs)
        )
    finally:
        workspace.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
