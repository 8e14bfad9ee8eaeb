"""The Weaviate store through the real client, against a local server speaking Weaviate's wire format.

``tests/fakes/weaviate_server.py`` answers Weaviate's REST schema calls and gRPC data
calls and records each request. These tests check what Archivist sends (schema,
migration, tenants, ids, named vectors, the access filter inside the hybrid query,
fusion, deletes) and that what comes back becomes the right chunks and similarities.
They do not judge ranking: the stand-in does not rank as Weaviate does. A live
cluster runs the contract suite when WEAVIATE_URL is set.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import grpc
import pytest

from core.documents import Acl
from core.errors import ConfigError, ServiceUnavailable, SourceError
from core.retrieval.store import weaviate_store
from core.retrieval.store.base import AccessFilter, SearchQuery
from core.retrieval.store.weaviate_connect import connect
from core.retrieval.store.weaviate_schema import PROPERTIES, chunk_uuid
from core.retrieval.store.weaviate_store import WeaviateStore
from core.settings import Settings, StoreSettings
from tests.core.test_store_contract import _chunk
from tests.fakes.weaviate_server import FakeWeaviate, fake_weaviate


@pytest.fixture
def fake() -> Iterator[FakeWeaviate]:
    with fake_weaviate() as server:
        yield server


@pytest.fixture
def client(fake: FakeWeaviate):
    settings = Settings(
        store=StoreSettings(backend="weaviate", weaviate_url=fake.url, weaviate_grpc_port=fake.grpc_port)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client's note that the server has no OIDC config
        made = connect(settings, environ={})
    yield made
    made.close()


def test_the_collection_is_created_with_archivists_schema(fake: FakeWeaviate, client) -> None:
    WeaviateStore(client, "chunks", 4)
    [created] = fake.requests_of("POST /v1/schema")
    assert created["class"] == "Chunks"
    sent = {p["name"]: p for p in created["properties"]}
    assert list(sent) == [p.name for p in PROPERTIES]
    assert (
        sent["acl_principals"]["dataType"] == ["text[]"] and sent["acl_principals"]["tokenization"] == "field"
    )
    assert sent["updated_at"]["dataType"] == ["date"] and sent["acl_public"]["dataType"] == ["boolean"]
    assert [name for name, p in sent.items() if p.get("indexSearchable")] == ["search_text"]
    vector = created["vectorConfig"]["default"]
    assert vector["vectorizer"] == {"none": {}}  # Archivist's embedder provides the vectors
    assert vector["vectorIndexConfig"]["distance"] == "cosine"
    assert not created.get("multiTenancyConfig", {}).get("enabled")


def test_a_vectorizer_module_is_configured_on_search_text(fake: FakeWeaviate, client) -> None:
    WeaviateStore(client, "chunks", 4, vectorizer="text2vec-openai")
    [created] = fake.requests_of("POST /v1/schema")
    assert created["vectorConfig"]["default"]["vectorizer"] == {
        "text2vec-openai": {"properties": ["search_text"]}
    }
    with pytest.raises(ConfigError, match="vectorized by 'text2vec-openai'"):
        WeaviateStore(client, "chunks", 4)  # same collection, own vectors: they would not compare


def test_an_existing_collection_gains_only_missing_properties(fake: FakeWeaviate, client) -> None:
    WeaviateStore(client, "chunks", 4)
    schema = fake.classes["Chunks"]
    schema["properties"] = [
        p for p in schema["properties"] if p["name"] not in {"acl_public", "heading_path"}
    ]
    WeaviateStore(client, "chunks", 4)
    added = fake.requests_of("POST /v1/schema/Chunks/properties")
    assert [(p["name"], p["dataType"]) for p in added] == [
        ("heading_path", ["text[]"]),
        ("acl_public", ["boolean"]),
    ]
    assert len(fake.requests_of("POST /v1/schema")) == 1  # opened, not re-created


def test_upsert_replaces_a_documents_chunks_with_deterministic_ids(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    store.upsert([_chunk("a.md", 0, "old one"), _chunk("a.md", 1, "old two")], [[1, 0, 0, 0], [0, 1, 0, 0]])
    store.upsert([_chunk("a.md", 0, "new only")], [[1, 0, 0, 0]])
    [*_, delete] = fake.requests_of("BatchDelete")
    assert delete["filters"] == {
        "operator": "OPERATOR_AND",
        "filters": [
            {"operator": "OPERATOR_EQUAL", "valueText": "kb", "target": {"property": "source"}},
            {
                "operator": "OPERATOR_CONTAINS_ANY",
                "valueTextArray": {"values": ["a.md"]},
                "target": {"property": "document_id"},
            },
        ],
    }
    [*_, batch] = fake.requests_of("BatchObjects")
    [sent] = batch["objects"]
    assert sent["uuid"] == chunk_uuid("kb:a.md#0")
    assert [v["name"] for v in sent["vectors"]] == ["default"]
    assert store.count("kb") == 1 and store.indexed_documents("kb")["a.md"].version == "v-new only"


def test_new_documents_are_written_without_a_delete(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    store.upsert([_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]], new_documents=True)
    assert fake.requests_of("BatchDelete") == [] and store.count() == 1


def test_search_sends_one_hybrid_query_with_the_access_filter(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    private = _chunk("hr.md", 0, "salary bands", acl=Acl(False, frozenset({"group:hr"})))
    store.upsert([private, _chunk("pto.md", 0, "vacation days")], [[0, 1, 0, 0], [1, 0, 0, 0]])
    access = AccessFilter(frozenset({"group:hr"}), sources=frozenset({"kb"}))
    hits = store.search(SearchQuery("salary", [0, 1, 0, 0], limit=4, candidates=30, alpha=0.4), access)
    [search] = [s for s in fake.requests_of("Search") if "hybridSearch" in s]
    hybrid = search["hybridSearch"]
    assert (hybrid["query"], hybrid["alpha"], hybrid["properties"]) == (
        "salary",
        pytest.approx(0.4),
        ["search_text"],
    )
    assert hybrid["fusionType"] == "FUSION_TYPE_RELATIVE_SCORE" and search["limit"] == 30
    assert search["filters"]["operator"] == "OPERATOR_AND"  # (public OR principals) AND source, in the query
    assert search["metadata"]["vector"] is True  # passage vectors come back for the cosine
    assert hits[0].chunk == private
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-6)
    assert hits[1].similarity == pytest.approx(
        0.0, abs=1e-6
    )  # found by its vector, orthogonal to the question


def test_ranked_fusion_is_sent_when_configured(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4, fusion="ranked")
    store.upsert([_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]])
    store.search(SearchQuery("alpha", [1, 0, 0, 0]), AccessFilter())
    [search] = [s for s in fake.requests_of("Search") if "hybridSearch" in s]
    assert search["hybridSearch"]["fusionType"] == "FUSION_TYPE_RANKED"


def test_an_empty_question_searches_by_vector_with_its_distance(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    store.upsert([_chunk("a.md", 0, "alpha")], [[1, 1, 0, 0]])
    [hit] = store.search(SearchQuery("   ", [1, 0, 0, 0]), AccessFilter())
    assert hit.similarity == pytest.approx(0.7071, abs=1e-3)
    assert any("nearVector" in s for s in fake.requests_of("Search"))
    assert store.search(SearchQuery("", [1, 0, 0, 0], alpha=0.0), AccessFilter()) == []


def test_each_tenant_is_created_once_and_named_on_every_request(fake: FakeWeaviate, client) -> None:
    acme = WeaviateStore(client, "chunks", 4, tenant="acme")
    WeaviateStore(client, "chunks", 4, tenant="acme")
    globex = WeaviateStore(client, "chunks", 4, tenant="globex")
    assert fake.classes["Chunks"]["multiTenancyConfig"]["enabled"] is True
    created = [t["name"] for r in fake.requests_of("POST /v1/schema/Chunks/tenants") for t in r["items"]]
    assert created == ["acme", "globex"]
    acme.upsert([_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]])
    assert acme.count() == 1 and globex.count() == 0
    assert globex.search(SearchQuery("alpha", [1, 0, 0, 0]), AccessFilter()) == []
    for kind in ("BatchObjects", "BatchDelete", "Aggregate"):
        for request in fake.requests_of(kind):
            tenants = (
                {o.get("tenant") for o in request["objects"]}
                if kind == "BatchObjects"
                else {request["tenant"]}
            )
            assert tenants <= {"acme", "globex"}, kind
    with pytest.raises(ConfigError, match="multi-tenant"):
        WeaviateStore(client, "chunks", 4)


def test_a_sleeping_tenant_is_woken(fake: FakeWeaviate, client) -> None:
    WeaviateStore(client, "chunks", 4, tenant="acme")
    fake.tenants["Chunks"]["acme"] = "INACTIVE"
    WeaviateStore(client, "chunks", 4, tenant="acme")
    [woken] = fake.requests_of("PUT /v1/schema/Chunks/tenants")
    [tenant] = woken["items"]
    assert tenant["name"] == "acme" and tenant["activityStatus"] in {"ACTIVE", "HOT"}  # HOT: the older name
    WeaviateStore(client, "chunks", 4, tenant="acme")
    assert len(fake.requests_of("PUT /v1/schema/Chunks/tenants")) == 1  # awake now: left alone


def test_refused_objects_fail_the_upsert_and_leave_their_documents_out(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    store.upsert([_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]])
    chunks = [_chunk("b.md", 0, "beta"), _chunk("c.md", 0, "gamma"), _chunk("c.md", 1, "delta")]
    with pytest.raises(SourceError) as raised:
        store.upsert(chunks, [[0, 1, 0, 0], [0, 0, 1], [0, 0, 1, 0]])
    message = str(raised.value)
    assert message.startswith("Weaviate rejected 1 of 3 chunks (kb:c.md#0: insert to vector index")
    assert "1 document(s) were left out" in message
    # c.md's good chunk went in, then the whole document was taken out so the next sync retries it.
    assert set(store.indexed_documents("kb")) == {"a.md", "b.md"}


def test_every_chunk_is_listed_across_cursor_pages(
    fake: FakeWeaviate, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weaviate_store, "LIST_PAGE", 3)
    store = WeaviateStore(client, "chunks", 4)
    chunks = [_chunk(f"doc{i}.md", p, f"text {i} {p}") for i in range(4) for p in range(2)]
    store.upsert(chunks, [[1, 0, 0, 0]] * len(chunks))
    store.upsert([_chunk("other.md", 0, "x", source="wiki")], [[1, 0, 0, 0]])
    documents = store.indexed_documents("kb")
    assert {name: doc.chunks for name, doc in documents.items()} == {f"doc{i}.md": 2 for i in range(4)}
    listing = [s for s in fake.requests_of("Search") if "properties" in s and "hybridSearch" not in s]
    assert len(listing) >= 3 and all(s["limit"] == 3 for s in listing)
    assert set(listing[0]["properties"]["nonRefProperties"]) == {
        "source", "document_id", "version", "content_hash", "acl_public", "acl_principals"
    }  # fmt: skip


def test_deletes_repeat_until_nothing_matches(fake: FakeWeaviate, client) -> None:
    fake.max_delete = 2  # Weaviate's QUERY_MAXIMUM_RESULTS, made small
    store = WeaviateStore(client, "chunks", 4)
    store.upsert([_chunk("a.md", p, f"part {p}") for p in range(5)], [[1, 0, 0, 0]] * 5)
    store.delete_documents("kb", ["a.md"])
    assert store.count() == 0


def test_a_failed_search_is_service_unavailable(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    fake.fail_next["Search"] = grpc.StatusCode.INTERNAL
    with pytest.raises(ServiceUnavailable, match="Weaviate failed to search"):
        store.search(SearchQuery("alpha", [1, 0, 0, 0]), AccessFilter())


def test_a_moment_of_unavailability_is_retried(fake: FakeWeaviate, client) -> None:
    store = WeaviateStore(client, "chunks", 4)
    store.upsert([_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]])
    fake.fail_next["Search"] = grpc.StatusCode.UNAVAILABLE  # the client backs off and asks again
    assert [
        hit.chunk.document_id for hit in store.search(SearchQuery("alpha", [1, 0, 0, 0]), AccessFilter())
    ] == ["a.md"]


def test_another_embedder_is_refused_then_rebuilt_by_the_next_sync(fake: FakeWeaviate, client) -> None:
    first = WeaviateStore(client, "chunks", 4, embedder="model-a")
    first.upsert([_chunk("a.md", 0, "alpha"), _chunk("b.md", 0, "beta")], [[1, 0, 0, 0]] * 2)
    assert "model-a" in fake.classes["Chunks"]["description"]  # recorded with the collection
    same = WeaviateStore(client, "chunks", 4, embedder="model-a")
    assert same.search(SearchQuery("alpha", [1, 0, 0, 0]), AccessFilter()) != []
    for dims, embedder in ((4, "model-b"), (8, "model-a")):  # another model, or another size
        other = WeaviateStore(client, "chunks", dims, embedder=embedder)
        with pytest.raises(ConfigError, match=r"was built by the embedder model-a .* Run `archivist sync`"):
            other.search(SearchQuery("x", [1.0] + [0.0] * (dims - 1)), AccessFilter())
    switched = WeaviateStore(client, "chunks", 8, embedder="model-b")
    assert switched.indexed_documents("kb") == {}  # what a sync asks first: the index starts over
    assert switched.count() == 0
    switched.upsert([_chunk("a.md", 0, "alpha")], [[1.0] + [0.0] * 7], new_documents=True)
    reopened = WeaviateStore(client, "chunks", 8, embedder="model-b")
    assert reopened.count() == 1 and reopened.search(SearchQuery("alpha", [1.0] + [0.0] * 7), AccessFilter())


def test_a_tenant_rebuilds_alone(fake: FakeWeaviate, client) -> None:
    for tenant in ("acme", "globex"):
        store = WeaviateStore(client, "chunks", 4, tenant=tenant, embedder="model-a")
        store.upsert([_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]])
    acme = WeaviateStore(client, "chunks", 8, tenant="acme", embedder="model-b")
    assert acme.indexed_documents("kb") == {} and acme.count() == 0  # acme's shard started over
    globex = WeaviateStore(client, "chunks", 4, tenant="globex", embedder="model-a")
    assert globex.count() == 1 and globex.search(SearchQuery("alpha", [1, 0, 0, 0]), AccessFilter())


def test_a_bot_searches_again_once_the_worker_has_rebuilt(fake: FakeWeaviate, client) -> None:
    WeaviateStore(client, "chunks", 4, embedder="model-a").upsert(
        [_chunk("a.md", 0, "alpha")], [[1, 0, 0, 0]]
    )
    bot = WeaviateStore(client, "chunks", 8, embedder="model-b")  # opened before the sync ran
    query = SearchQuery("alpha", [1.0] + [0.0] * 7)
    with pytest.raises(ConfigError, match="Run `archivist sync`"):
        bot.search(query, AccessFilter())
    worker = WeaviateStore(client, "chunks", 8, embedder="model-b")
    worker.indexed_documents("kb")
    worker.upsert([_chunk("a.md", 0, "alpha")], [[1.0] + [0.0] * 7], new_documents=True)
    assert [hit.chunk.document_id for hit in bot.search(query, AccessFilter())] == ["a.md"]


def test_chunks_are_listed_under_the_access_filter(
    fake: FakeWeaviate, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weaviate_store, "LIST_PAGE", 2)
    store = WeaviateStore(client, "chunks", 4)
    secret = Acl(False, frozenset({"group:hr"}))
    chunks = [
        _chunk("b.md", 1, "b one"),
        _chunk("b.md", 0, "b zero"),
        _chunk("a.md", 0, "salary", acl=secret),
    ]
    store.upsert([*chunks, _chunk("w.md", 0, "wiki", source="wiki")], [[1, 0, 0, 0]] * 4)
    public = store.chunks(AccessFilter(sources=frozenset({"kb"})))
    assert [(c.document_id, c.position, c.text) for c in public] == [
        ("b.md", 0, "b zero"),
        ("b.md", 1, "b one"),
    ]
    hr = store.chunks(AccessFilter(frozenset({"group:hr"}), include_public=False))
    assert [(c.id, c.acl) for c in hr] == [("kb:a.md#0", secret)]
    assert len(store.chunks(AccessFilter(frozenset({"group:hr"})), limit=3)) == 3
