"""Documents per second of the GitHub, Google Drive and Slack connectors' full poll, against local fakes.

For each connector the fake (tests/fakes/) is filled with ``--items`` SciFact abstracts (as
Markdown files, issues, discussions, Google Docs or Slack threads with two replies) and then,
``--repeats`` times each, median reported:

- full poll: ``poll(None)`` drained, every document read and parsed → docs/s, requests per doc;
- unchanged poll: ``poll(cursor)`` right after, when nothing changed → seconds;
- ``list_ids()`` (what the engine prunes by) → seconds.

Baseline, measured in the same run against the same server: bare keep-alive ``httpx`` GETs of
a tiny answer (requests/s): the floor that HTTP on loopback plus the fake server cost here. The
fake runs in this process, so both share one interpreter; against the real services, latency
dominates and docs/s is about 1 / (requests per doc x round trip time).

    python benchmarks/polled_connectors.py [--items 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import median, scifact_corpus, write_result

from core.documents import Document
from core.settings import ConnectorSettings
from core.sync.registry import build_connector
from tests.fakes.github_server import TOKEN as GITHUB_TOKEN
from tests.fakes.github_server import FakeGitHub
from tests.fakes.google_drive_server import DOC, FakeDrive
from tests.fakes.google_drive_server import TOKEN as DRIVE_TOKEN
from tests.fakes.http_service import FakeService
from tests.fakes.slack_server import TOKEN as SLACK_TOKEN
from tests.fakes.slack_server import FakeSlack

BASELINE_REQUESTS = 1000


@dataclass
class Scenario:
    name: str
    fake: FakeService
    settings: ConnectorSettings
    probe: Callable[[httpx.Client], httpx.Response]  # one cheap request, for the baseline


def github_scenario(kind: str, rows: list[dict]) -> Scenario:
    fake = FakeGitHub().start()
    fake.commit({"README.md": "# Benchmark\n\nReadme."})
    if kind == "files":
        fake.commit(
            {f"abstracts/{row['_id']}.md": f"# {row['title']}\n\n{row['text']}\n" for row in rows[:-1]}
        )
    elif kind == "issues":
        for row in rows:
            fake.add_issue(row["title"], row["text"])
    else:
        for row in rows:
            fake.add_discussion(row["title"], row["text"])
    options = {"issues": kind == "issues", "discussions": kind == "discussions"}
    if kind != "files":
        options["include"] = ["no-such-file.md"]  # issues or discussions alone
    settings = ConnectorSettings(type="github", repo="acme/handbook", api_url=fake.base_url, **options)
    headers = {"Authorization": f"Bearer {GITHUB_TOKEN}"}
    return Scenario(
        f"github ({kind})", fake, settings, lambda c: c.get("/repos/acme/handbook", headers=headers)
    )


def drive_scenario(rows: list[dict]) -> Scenario:
    fake = FakeDrive().start()
    anyone = [{"id": "anyoneWithLink", "type": "anyone", "role": "reader"}]
    for row in rows:
        fake.add(row["title"][:100], DOC, f"<h1>{row['title']}</h1><p>{row['text']}</p>", permissions=anyone)
    settings = ConnectorSettings(type="google_drive", api_url=fake.base_url)
    first = next(iter(fake.files))
    headers = {"Authorization": f"Bearer {DRIVE_TOKEN}"}
    return Scenario(
        "google_drive (Docs)", fake, settings, lambda c: c.get(f"/files/{first}?fields=id", headers=headers)
    )


def slack_scenario(rows: list[dict]) -> Scenario:
    fake = FakeSlack().start()
    fake.add_channel("C0BENCH", "bench")
    for user, name in (("U0ANN", "Ann"), ("U0BOB", "Bob"), ("U0CAT", "Cat")):
        fake.add_user(user, name)
    for row in rows:
        parent = fake.post("C0BENCH", row["title"], user="U0ANN")
        half = len(row["text"]) // 2
        fake.post("C0BENCH", row["text"][:half], user="U0BOB", thread_ts=parent)
        fake.post("C0BENCH", row["text"][half:], user="U0CAT", thread_ts=parent)
    os.environ["SLACK_API_URL"] = fake.api_url
    settings = ConnectorSettings(type="slack_channels", channels=["C0BENCH"])
    headers = {"Authorization": f"Bearer {SLACK_TOKEN}"}
    return Scenario(
        "slack_channels (threads)", fake, settings, lambda c: c.post("/api/auth.test", headers=headers)
    )


def baseline(scenario: Scenario) -> float:
    with httpx.Client(base_url=scenario.fake.base_url) as client:
        start = time.perf_counter()
        for _ in range(BASELINE_REQUESTS):
            scenario.probe(client).raise_for_status()
        return BASELINE_REQUESTS / (time.perf_counter() - start)


def measure(scenario: Scenario, workdir: Path, repeats: int) -> dict[str, object]:
    connector = build_connector("bench", scenario.settings, workdir)
    full_s, unchanged_s, ids_s, requests, documents = [], [], [], 0, 0
    rates = [baseline(scenario)]
    for _ in range(repeats):
        scenario.fake.requests.clear()
        start = time.perf_counter()
        cursor, documents = None, 0
        for batch, next_cursor in connector.poll(None):
            documents += sum(isinstance(item, Document) for item in batch)
            cursor = next_cursor
        full_s.append(time.perf_counter() - start)
        requests = len(scenario.fake.requests)
        start = time.perf_counter()
        for _batch, _cursor in connector.poll(cursor):
            pass
        unchanged_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        listed = sum(1 for _ in connector.list_ids())
        ids_s.append(time.perf_counter() - start)
        assert listed >= documents, (listed, documents)
        rates.append(baseline(scenario))
    scenario.fake.requests.clear()
    full = median(full_s)
    return {
        "connector": scenario.name,
        "documents": documents,
        "full_poll_s": round(full, 3),
        "docs_per_s": round(documents / full, 1),
        "requests_per_doc": round(requests / max(documents, 1), 3),
        "connector_requests_per_s": round(requests / full, 1),
        "baseline_requests_per_s": round(median(rates), 1),
        "unchanged_poll_s": round(median(unchanged_s), 4),
        "list_ids_s": round(median(ids_s), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(GITHUB_TOKEN=GITHUB_TOKEN, GOOGLE_DRIVE_TOKEN=DRIVE_TOKEN, SLACK_BOT_TOKEN=SLACK_TOKEN)
    rows = scifact_corpus(args.items)
    builders: list[Callable[[], Scenario]] = [
        lambda: github_scenario("files", rows),
        lambda: github_scenario("issues", rows),
        lambda: github_scenario("discussions", rows),
        lambda: drive_scenario(rows),
        lambda: slack_scenario(rows),
    ]
    results = []
    columns = ("docs", "full s", "docs/s", "req/doc", "req/s", "base req/s", "unchanged s", "list_ids s")
    print(f"{'connector':26} " + " ".join(f"{c:>11}" for c in columns))
    with tempfile.TemporaryDirectory() as tmp:
        for build in builders:
            scenario = build()
            try:
                row = measure(scenario, Path(tmp), args.repeats)
            finally:
                scenario.fake.stop()
            results.append(row)
            values = [row[key] for key in list(row)[1:]]
            print(f"{row['connector']:26} " + " ".join(f"{v:>11}" for v in values), flush=True)
    path = write_result(
        "polled_connectors", {"items": args.items, "repeats": args.repeats, "results": results}
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
