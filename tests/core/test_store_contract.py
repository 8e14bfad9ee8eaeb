"""What every vector store backend must do; each backend joins the ``store`` fixture's params."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.documents import Acl, Chunk
from core.retrieval.store.base import AccessFilter, SearchQuery, VectorStore

DIMENSIONS = 4


def _lancedb(tmp_path: Path, cleanup: ExitStack) -> VectorStore:
    from core.retrieval.store.lancedb_store import LanceDBStore

    return LanceDBStore(tmp_path / "lancedb", DIMENSIONS)


def _weaviate(tmp_path: Path, cleanup: ExitStack) -> VectorStore:
    """A fresh collection on the cluster at WEAVIATE_URL, dropped after the test."""
    if not os.environ.get("WEAVIATE_URL"):
        pytest.skip("set WEAVIATE_URL to run the contract suite against Weaviate")
    from core.retrieval.store.weaviate_connect import connect
    from core.retrieval.store.weaviate_store import WeaviateStore
    from core.settings import load_settings

    config = tmp_path / "weaviate.toml"
    grpc_port = os.environ.get("WEAVIATE_GRPC_PORT", "50051")  # where the cluster publishes gRPC
    config.write_text(f'[store]\nbackend = "weaviate"\nweaviate_grpc_port = {grpc_port}\n', encoding="utf-8")
    client = connect(load_settings(config))  # WEAVIATE_URL, WEAVIATE_API_KEY from the environment
    cleanup.callback(client.close)
    made = WeaviateStore(client, f"ArchivistContract_{uuid.uuid4().hex}", DIMENSIONS)
    cleanup.callback(made.drop)
    return made


@pytest.fixture(params=[_lancedb, _weaviate], ids=["lancedb", "weaviate"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    with ExitStack() as cleanup:
        yield request.param(tmp_path, cleanup)


def _chunk(
    document_id: str, position: int, text: str, *, source: str = "kb", acl: Acl = Acl(public=True)
) -> Chunk:
    return Chunk(
        id=f"{source}:{document_id}#{position}",
        document_id=document_id,
        source=source,
        title=document_id,
        text=text,
        heading_path=("Policy", "Details"),
        position=position,
        url="",
        path=f"/kb/{document_id}",
        content_hash=f"hash-{document_id}-{text}",
        version=f"v-{text}",
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        acl=acl,
    )


def _search(
    store: VectorStore, text: str, vector: list[float], access: AccessFilter = AccessFilter(), alpha=0.5
):
    return store.search(SearchQuery(text, vector, limit=10, alpha=alpha), access)


def test_upsert_replaces_every_chunk_of_a_document(store: VectorStore) -> None:
    store.upsert([_chunk("a.md", 0, "old one"), _chunk("a.md", 1, "old two")], [[1, 0, 0, 0], [1, 0, 0, 0]])
    store.upsert([_chunk("a.md", 0, "new only")], [[1, 0, 0, 0]])
    store.finish_sync()
    assert store.count("kb") == 1
    assert store.indexed_documents("kb")["a.md"].version == "v-new only"
    assert [hit.chunk.text for hit in _search(store, "old", [1, 0, 0, 0])] == ["new only"]


def test_chunks_round_trip_with_their_metadata(store: VectorStore) -> None:
    original = _chunk('it\'s "quoted".md', 0, "text", acl=Acl(False, frozenset({"group:it"})))
    store.upsert([original], [[0, 1, 0, 0]])
    store.finish_sync()
    [hit] = _search(store, "text", [0, 1, 0, 0], AccessFilter(principals=frozenset({"group:it"})))
    assert hit.chunk == original
    assert hit.similarity == pytest.approx(1.0, abs=1e-5)


def test_delete_by_document_and_source(store: VectorStore) -> None:
    store.upsert([_chunk("a.md", 0, "alpha"), _chunk("b.md", 0, "beta")], [[1, 0, 0, 0], [0, 1, 0, 0]])
    store.upsert([_chunk("a.md", 0, "alpha elsewhere", source="other")], [[1, 0, 0, 0]])
    store.delete_documents("kb", ["a.md", "missing.md"])
    assert set(store.indexed_documents("kb")) == {"b.md"}
    assert set(store.indexed_documents("other")) == {"a.md"}  # same id, other source: untouched


def test_dense_and_keyword_sides_each_find_their_match(store: VectorStore) -> None:
    store.upsert(
        [_chunk("vpn.md", 0, "WireGuard tunnel setup"), _chunk("pto.md", 0, "vacation allowance")],
        [[1, 0, 0, 0], [0, 1, 0, 0]],
    )
    store.finish_sync()
    # The vector points at pto.md; the words point at vpn.md. Each side alone follows its own signal.
    assert _search(store, "WireGuard", [0, 1, 0, 0], alpha=1.0)[0].chunk.document_id == "pto.md"
    assert _search(store, "WireGuard", [0, 1, 0, 0], alpha=0.0)[0].chunk.document_id == "vpn.md"
    both = {hit.chunk.document_id for hit in _search(store, "WireGuard", [0, 1, 0, 0], alpha=0.5)}
    assert both == {"vpn.md", "pto.md"}


def test_access_filter_is_applied_inside_the_query(store: VectorStore) -> None:
    store.upsert(
        [
            _chunk("public.md", 0, "salary bands", acl=Acl(public=True)),
            _chunk("hr.md", 0, "salary bands detail", acl=Acl(False, frozenset({"group:hr"}))),
            _chunk("nobody.md", 0, "salary bands secret", acl=Acl()),
        ],
        [[1, 0, 0, 0]] * 3,
    )
    store.finish_sync()
    seen = {h.chunk.document_id for h in _search(store, "salary", [1, 0, 0, 0])}
    assert seen == {"public.md"}
    hr = {
        h.chunk.document_id
        for h in _search(store, "salary", [1, 0, 0, 0], AccessFilter(frozenset({"group:hr"})))
    }
    assert hr == {"public.md", "hr.md"}
    only_private = AccessFilter(frozenset({"group:hr"}), include_public=False)
    assert {h.chunk.document_id for h in _search(store, "salary", [1, 0, 0, 0], only_private)} == {"hr.md"}


def test_empty_store_answers_nothing(store: VectorStore) -> None:
    assert _search(store, "anything", [1, 0, 0, 0]) == []
    assert store.indexed_documents("kb") == {} and store.count() == 0


def test_chunks_lists_what_the_filter_admits_in_a_stable_order(store: VectorStore) -> None:
    secret = Acl(public=False, principals=frozenset({"group:hr"}))
    store.upsert(
        [_chunk("b.md", 1, "b one"), _chunk("b.md", 0, "b zero"), _chunk("a.md", 0, "a zero", acl=secret)],
        [[1, 0, 0, 0]] * 3,
    )
    assert [(c.document_id, c.position) for c in store.chunks(AccessFilter())] == [("b.md", 0), ("b.md", 1)]
    everything = store.chunks(AccessFilter(frozenset({"group:hr"})))
    assert [(c.document_id, c.position) for c in everything] == [("a.md", 0), ("b.md", 0), ("b.md", 1)]
    assert everything[0].acl == secret and everything[0].text == "a zero"
    assert store.chunks(AccessFilter(sources=frozenset())) == []
    assert len(store.chunks(AccessFilter(frozenset({"group:hr"})), limit=2)) == 2
