"""What only the Weaviate backend does, against a real cluster: tenants, migration, refusals.

Runs when WEAVIATE_URL is set (and WEAVIATE_GRPC_PORT if gRPC is not on 50051);
skipped with that reason otherwise. Every test uses its own collection and drops it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.documents import Acl, Chunk
from core.errors import ConfigError, SourceError
from core.retrieval.store.base import AccessFilter, SearchQuery

pytestmark = pytest.mark.skipif(
    not os.environ.get("WEAVIATE_URL"), reason="set WEAVIATE_URL to run the Weaviate tests against a cluster"
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[object]:
    from core.retrieval.store.weaviate_connect import connect
    from core.settings import load_settings

    config = tmp_path / "weaviate.toml"
    grpc_port = os.environ.get("WEAVIATE_GRPC_PORT", "50051")
    config.write_text(f'[store]\nbackend = "weaviate"\nweaviate_grpc_port = {grpc_port}\n', encoding="utf-8")
    made = connect(load_settings(config))
    yield made
    made.close()


@pytest.fixture
def name(client) -> Iterator[str]:
    collection = f"ArchivistLive_{uuid.uuid4().hex}"
    yield collection
    client.collections.delete(collection)


def _chunk(document_id: str, text: str, position: int = 0, acl: Acl = Acl(public=True)) -> Chunk:
    return Chunk(
        id=f"kb:{document_id}#{position}",
        document_id=document_id,
        source="kb",
        title=document_id,
        text=text,
        heading_path=(),
        position=position,
        url="",
        path=f"/kb/{document_id}",
        content_hash=f"h-{text}",
        version=f"v-{text}",
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        acl=acl,
    )


def test_tenants_do_not_see_each_other(client, name: str) -> None:
    from core.retrieval.store.weaviate_store import WeaviateStore

    acme = WeaviateStore(client, name, 4, tenant="acme")
    globex = WeaviateStore(client, name, 4, tenant="globex")
    acme.upsert([_chunk("plan.md", "acme roadmap")], [[1, 0, 0, 0]])
    assert acme.count() == 1 and globex.count() == 0
    assert globex.search(SearchQuery("roadmap", [1, 0, 0, 0]), AccessFilter()) == []
    assert set(acme.indexed_documents("kb")) == {"plan.md"} and globex.indexed_documents("kb") == {}
    with pytest.raises(ConfigError, match="multi-tenant"):
        WeaviateStore(client, name, 4)  # a tenant-less store on a multi-tenant collection


def test_an_older_collection_gains_the_missing_properties(client, name: str) -> None:
    from weaviate.classes.config import Configure
    from weaviate.classes.data import DataObject

    from core.retrieval.store.weaviate_schema import PROPERTIES
    from core.retrieval.store.weaviate_store import WeaviateStore

    older = [p for p in PROPERTIES if p.name not in {"acl_public", "updated_at"}]
    client.collections.create(name, properties=older, vector_config=Configure.Vectors.self_provided())
    old = {"chunk_id": "kb:old.md#0", "document_id": "old.md", "source": "kb", "search_text": "old policy"}
    client.collections.get(name).data.insert_many(
        [DataObject(properties=old, vector={"default": [1.0, 0, 0, 0]})]
    )
    store = WeaviateStore(client, name, 4)
    stored = {p.name for p in client.collections.get(name).config.get().properties}
    assert {"acl_public", "updated_at"} <= stored
    # Written before acl_public existed: private, so invisible to a public search.
    assert store.search(SearchQuery("policy", [1, 0, 0, 0]), AccessFilter()) == []
    assert store.count("kb") == 1


def test_refused_chunks_are_reported_and_their_documents_left_out(client, name: str) -> None:
    from core.retrieval.store.weaviate_store import WeaviateStore

    store = WeaviateStore(client, name, 4)
    store.upsert([_chunk("a.md", "alpha")], [[1, 0, 0, 0]])
    # Weaviate refuses a vector whose length differs from the index's, object by object.
    with pytest.raises(SourceError) as raised:
        store.upsert([_chunk("b.md", "beta"), _chunk("c.md", "gamma")], [[0, 1, 0, 0], [0, 0, 1]])
    assert "rejected 1 of 2 chunks" in str(raised.value) and "kb:c.md#0" in str(raised.value)
    assert set(store.indexed_documents("kb")) == {"a.md", "b.md"}  # c.md will be retried next sync


def test_another_embedder_is_refused_then_rebuilt(client, name: str) -> None:
    from core.retrieval.store.weaviate_store import WeaviateStore

    WeaviateStore(client, name, 4, embedder="model-a").upsert([_chunk("a.md", "alpha")], [[1, 0, 0, 0]])
    switched = WeaviateStore(client, name, 8, embedder="model-b")
    with pytest.raises(ConfigError, match="was built by the embedder model-a"):
        switched.search(SearchQuery("alpha", [1.0] + [0.0] * 7), AccessFilter())
    assert switched.indexed_documents("kb") == {}  # a sync starts over with a fresh vector index
    switched.upsert([_chunk("a.md", "alpha")], [[1.0] + [0.0] * 7])  # 8 dimensions now accepted
    assert switched.count() == 1


def test_keyword_only_hits_get_their_true_similarity(client, name: str) -> None:
    from core.retrieval.store.weaviate_store import WeaviateStore

    store = WeaviateStore(client, name, 4)
    store.upsert(
        [_chunk("vpn.md", "WireGuard tunnel"), _chunk("pto.md", "vacation days")],
        [[1, 0, 0, 0], [0, 1, 0, 0]],
    )
    [hit] = store.search(SearchQuery("WireGuard", [0, 1, 0, 0], alpha=0.0), AccessFilter())
    assert hit.chunk.document_id == "vpn.md" and hit.similarity == pytest.approx(0.0, abs=1e-5)


def test_ranked_fusion_finds_both_sides(client, name: str) -> None:
    from core.retrieval.store.weaviate_store import WeaviateStore

    store = WeaviateStore(client, name, 4, fusion="ranked")
    store.upsert(
        [_chunk("vpn.md", "WireGuard tunnel"), _chunk("pto.md", "vacation days")],
        [[1, 0, 0, 0], [0, 1, 0, 0]],
    )
    found = store.search(SearchQuery("WireGuard", [0, 1, 0, 0], alpha=0.5), AccessFilter())
    assert {hit.chunk.document_id for hit in found} == {"vpn.md", "pto.md"}
