"""A 10,000-document source: first sync, unchanged re-sync, and read speed per connector type.

Synthetic Markdown notes (about 500 characters each, one chunk apiece) are written to a
temp dir. Measured in one process, after the embedding model is loaded:

(a) embedder alone over exactly the texts the sync embeds → docs/s (the baseline);
(b) first sync of the filesystem source into an empty index → docs/s, and (b)/(a);
(c) unchanged re-sync, median of ``--repeats`` → seconds, and (c)/(b) time;
(d) read speed of each local connector type with no embedding (list + load every
    document, median of ``--repeats``): filesystem, git (the notes committed to a
    repository), web (the notes served as HTML pages from a local server with a
    sitemap, rate limit lifted) → docs/s.

Usage: python benchmarks/sync_10k.py [--docs N] [--repeats R] [--threads T]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import add_threads_option, close_app, median, set_threads, warm_up, write_result

from core.app import App
from core.documents import Document
from core.models.embeddings import embed_in_batches
from core.settings import ConnectorSettings, load_settings
from core.sync.chunking import chunk_document
from core.sync.registry import build_connector

TOPICS = "billing onboarding security travel hiring payroll laptops vpn release oncall".split()
WORDS = (
    "team policy request approve manager budget invoice customer incident review deadline access "
    "account office remote contract vendor report quarterly backup password device ticket"
).split()


def write_notes(directory: Path, count: int) -> None:
    rng = random.Random(7)
    directory.mkdir(parents=True)
    for n in range(count):
        topic = TOPICS[n % len(TOPICS)]
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + f" (ref {n}-{s})." for s in range(5)
        ]
        (directory / f"note-{n:05}.md").write_text(
            f"# {topic.title()} note {n}\n\n" + " ".join(sentences) + "\n"
        )


def read_all(connector) -> int:  # noqa: ANN001 - a connector that lists refs or loads all
    batches = (
        connector.load_all()
        if hasattr(connector, "load_all")
        else connector.load(list(connector.list_refs()))
    )
    return sum(isinstance(item, Document) for batch in batches for item in batch)


def read_rate(connector, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read = read_all(connector)
        times.append(time.perf_counter() - start)
    return read / median(times)


def git_repo(notes: Path, target: Path) -> Path:
    subprocess.run(["cp", "-r", str(notes), str(target)], check=True)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "notes"]):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args], cwd=target, check=True
        )
    return target


def serve_site(notes: Path, site: Path) -> tuple[ThreadingHTTPServer, str]:
    site.mkdir()
    urls = []
    for note in sorted(notes.iterdir()):
        title, _, body = note.read_text().partition("\n\n")
        page = f"{note.stem}.html"
        (site / page).write_text(
            f"<html><head><title>{title[2:]}</title></head><body><main><p>{body}</p></main></body></html>"
        )
        urls.append(page)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    (site / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    entries = "".join(f"<url><loc>{base}{u}</loc></url>" for u in urls)
    (site / "sitemap.xml").write_text(
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        notes = work / "notes"
        write_notes(notes, args.docs)
        config = work / "archivist.toml"
        config.write_text(
            f'data_dir = "data"\n[connectors.notes]\ntype = "filesystem"\npath = "{notes}"\npublic = true\n'
        )
        app = App(load_settings(config, environ={}))
        try:
            warm_up(app)
            connector = app.connector("notes")
            documents = [
                i for b in connector.load(list(connector.list_refs())) for i in b if isinstance(i, Document)
            ]
            texts = [c.search_text() for d in documents for c in chunk_document(d, app.chunking_options())]
            start = time.perf_counter()
            embed_in_batches(app.embedder, texts, app.settings.embeddings.batch_size)
            embed_s = time.perf_counter() - start

            start = time.perf_counter()
            first = app.sync_engine.sync(connector)
            first_s = time.perf_counter() - start
            resync_times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                again = app.sync_engine.sync(app.connector("notes"))
                resync_times.append(time.perf_counter() - start)
                assert again.unchanged == args.docs, again.summary()
            resync_s = median(resync_times)
        finally:
            close_app(app)

        repo = git_repo(notes, work / "repo")
        server, base = serve_site(notes, work / "site")
        try:
            connectors = {
                "filesystem": ConnectorSettings(type="filesystem", path=str(notes), public=True),
                "git": ConnectorSettings(type="git", repo=str(repo), public=True),
                "web": ConnectorSettings(
                    type="web",
                    sitemap=f"{base}sitemap.xml",
                    rate_limit_per_s=10_000,
                    max_pages=args.docs + 10,
                    public=True,
                ),
            }
            rates = {
                kind: read_rate(build_connector(f"bench-{kind}", settings, work / "state"), args.repeats)
                for kind, settings in connectors.items()
            }
        finally:
            server.shutdown()

    embed_rate, first_rate = args.docs / embed_s, args.docs / first_s
    print(f"{args.docs:,} synthetic notes, {len(texts):,} chunks")
    print(f"(a) embedder alone      {embed_s:8.1f} s  {embed_rate:7.1f} docs/s   baseline")
    print(
        f"(b) first sync          {first_s:8.1f} s  {first_rate:7.1f} docs/s"
        f"   (b)/(a) = {first_rate / embed_rate:.2f}"
    )
    print(
        f"(c) unchanged re-sync   {resync_s:8.2f} s  median of {args.repeats}"
        f"   (c)/(b) = {resync_s / first_s:.4f}"
    )
    for kind, rate in rates.items():
        print(f"(d) read speed {kind:10s} {rate:9.1f} docs/s (list + load, no embedding)")
    path = write_result(
        f"sync_10k_{args.docs}",
        {
            "docs": args.docs,
            "chunks": len(texts),
            "embed_s": embed_s,
            "first_sync_s": first_s,
            "first_sync_docs_per_s": first_rate,
            "pipeline_over_embedder": first_rate / embed_rate,
            "resync_s_median": resync_s,
            "resync_over_first": resync_s / first_s,
            "first_report": first.summary(),
            "read_docs_per_s": rates,
        },
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
