"""The Weaviate backend's parts that need no server: what it sends, and what it says.

Filters are checked in the gRPC form the client puts on the wire. The store's
behaviour against a real cluster is the contract suite (test_store_contract.py)
and test_weaviate_live.py, both run when WEAVIATE_URL is set.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from weaviate.collections.filters import _FilterToGRPC

from core.app import App
from core.documents import Acl, Chunk
from core.errors import ConfigError, ServiceUnavailable
from core.retrieval.store.base import AccessFilter
from core.retrieval.store.weaviate_connect import connect, parse_url
from core.retrieval.store.weaviate_schema import (
    NOTHING,
    PROPERTIES,
    access_filter,
    chunk_uuid,
    collection_name,
    plan_migration,
    to_chunk,
    to_properties,
)
from core.retrieval.store.weaviate_store import (
    RejectedChunk,
    batch_error_message,
    cosine,
    similarity_from_distance,
)
from core.settings import Settings, StoreSettings, load_settings
from tests.fakes.weaviate_rest import weaviate_rest

# -- the access filter, as the client sends it ---------------------------------


def _wire(filter_) -> object:
    """The filter's gRPC message, compacted to (property, operator, value) and (operator, [..])."""
    return _compact(MessageToDict(_FilterToGRPC.convert(filter_)))


def _compact(message: dict) -> object:
    operator = message["operator"].removeprefix("OPERATOR_")
    if "filters" in message:
        return (operator, [_compact(part) for part in message["filters"]])
    if "valueTextArray" in message:
        value: object = message["valueTextArray"]["values"]
    elif "valueBoolean" in message:
        value = message["valueBoolean"]
    else:
        value = message.get("valueText")
    return (message["target"]["property"], operator, value)


PUBLIC = ("acl_public", "EQUAL", True)
NOTHING_ON_WIRE = ("AND", [("acl_public", "EQUAL", True), ("acl_public", "EQUAL", False)])


def test_public_only_by_default() -> None:
    assert _wire(access_filter(AccessFilter())) == PUBLIC


def test_principals_widen_public_with_contains_any() -> None:
    access = AccessFilter(frozenset({"slack:user:U2", "group:hr"}))
    assert _wire(access_filter(access)) == (
        "OR",
        [PUBLIC, ("acl_principals", "CONTAINS_ANY", ["group:hr", "slack:user:U2"])],
    )


def test_principals_without_public() -> None:
    access = AccessFilter(frozenset({"group:hr"}), include_public=False)
    assert _wire(access_filter(access)) == ("acl_principals", "CONTAINS_ANY", ["group:hr"])


def test_sources_narrow_what_may_be_read() -> None:
    access = AccessFilter(frozenset({"group:hr"}), sources=frozenset({"wiki", "handbook"}))
    assert _wire(access_filter(access)) == (
        "AND",
        [
            ("OR", [PUBLIC, ("acl_principals", "CONTAINS_ANY", ["group:hr"])]),
            ("source", "CONTAINS_ANY", ["handbook", "wiki"]),
        ],
    )


def test_empty_sources_match_nothing() -> None:
    assert _wire(access_filter(AccessFilter(frozenset({"group:hr"}), sources=frozenset()))) == NOTHING_ON_WIRE
    assert _wire(NOTHING) == NOTHING_ON_WIRE  # a filter Weaviate accepts and no object satisfies


def test_no_public_and_no_principals_match_nothing() -> None:
    assert _wire(access_filter(AccessFilter(include_public=False))) == NOTHING_ON_WIRE
    blank = AccessFilter(frozenset({"", "  "}), include_public=False)
    assert _wire(access_filter(blank)) == NOTHING_ON_WIRE


def test_hostile_principals_are_exact_values_not_syntax() -> None:
    hostile = frozenset({"*", "x' OR '1'='1", 'group:hr") OR (acl_public'})
    [_, principals] = _wire(access_filter(AccessFilter(hostile)))[1]
    assert principals == ("acl_principals", "CONTAINS_ANY", sorted(hostile))


def test_filtered_properties_match_whole_values() -> None:
    by_name = {p.name: p for p in PROPERTIES}
    for name in ("source", "document_id", "chunk_id", "acl_principals"):
        assert by_name[name].tokenization.value == "field", name  # no word splitting, case kept
        assert by_name[name].indexFilterable is True
    assert by_name["search_text"].indexSearchable is True
    assert [p.name for p in PROPERTIES if p.indexSearchable] == ["search_text"]  # BM25 reads one field


# -- the collection ------------------------------------------------------------


def test_collection_names_follow_weaviate_rules() -> None:
    assert collection_name("chunks") == "Chunks"
    assert collection_name("Archivist_Chunks2") == "Archivist_Chunks2"
    for bad in ("", "my-chunks", "2chunks", "chunks;drop"):
        with pytest.raises(ConfigError, match="store.table"):
            collection_name(bad)


def test_migration_adds_only_missing_properties() -> None:
    assert [p.name for p in plan_migration({})] == [p.name for p in PROPERTIES]
    everything = {p.name: p.dataType.value for p in PROPERTIES}
    assert plan_migration(everything) == []
    older = {k: v for k, v in everything.items() if k not in {"acl_public", "updated_at"}}
    older["legacy_field"] = "text"  # properties we do not know are left alone
    assert [p.name for p in plan_migration(older)] == ["updated_at", "acl_public"]


def test_migration_refuses_a_property_of_the_wrong_type() -> None:
    existing = {p.name: p.dataType.value for p in PROPERTIES} | {"acl_principals": "text"}
    with pytest.raises(ConfigError, match=r"acl_principals is text, not text\[\]"):
        plan_migration(existing)


def test_chunk_round_trips_through_object_properties() -> None:
    chunk = Chunk(
        id="kb:a.md#2",
        document_id="a.md",
        source="kb",
        title="A",
        text="body",
        heading_path=("A", "Part"),
        position=2,
        url="",
        path="/kb/a.md",
        content_hash="h",
        version="v1",
        updated_at=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        acl=Acl(False, frozenset({"group:it"})),
    )
    properties = to_properties(chunk)
    assert properties["search_text"] == chunk.search_text()
    assert properties["acl_principals"] == ["group:it"] and properties["acl_public"] is False
    assert to_chunk(properties) == chunk
    assert chunk_uuid(chunk.id) == chunk_uuid("kb:a.md#2") != chunk_uuid("kb:a.md#3")


def test_an_object_missing_newer_properties_reads_as_private() -> None:
    chunk = to_chunk({"chunk_id": "kb:old.md#0", "document_id": "old.md", "source": "kb", "text": "t"})
    assert chunk.acl == Acl() and chunk.heading_path == () and chunk.position == 0


# -- writing and scoring -------------------------------------------------------


def test_batch_errors_name_the_first_few_and_count_the_rest() -> None:
    rejected = [
        RejectedChunk("kb", f"doc{i % 2}.md", f"kb:doc{i % 2}.md#{i}", f"vector length {i} is wrong")
        for i in range(5)
    ]
    message = batch_error_message(rejected, total=40)
    assert message.startswith("Weaviate rejected 5 of 40 chunks")
    assert "kb:doc0.md#0: vector length 0 is wrong" in message and "kb:doc0.md#2" in message
    assert "kb:doc1.md#3" not in message and "and 2 more" in message
    assert "2 document(s) were left out" in message and "retried on the next sync" in message


def test_a_huge_server_reason_is_cut() -> None:
    message = batch_error_message([RejectedChunk("kb", "a", "kb:a#0", "x" * 5000)], total=1)
    assert len(message) < 400


def test_similarity_from_cosine_distance() -> None:
    assert similarity_from_distance(0.0) == 1.0
    assert similarity_from_distance(0.25) == pytest.approx(0.75)
    assert similarity_from_distance(2.0) == -1.0  # opposite vectors
    assert cosine([1, 0], [2, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 3]) == pytest.approx(0.0)
    assert cosine([0, 0], [1, 0]) == 0.0  # a zero vector is similar to nothing


# -- connecting ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _weaviate_settings(tmp_path: Path, url: str, **store: object) -> Settings:
    return Settings(data_dir=tmp_path, store=StoreSettings(backend="weaviate", weaviate_url=url, **store))


def test_unreachable_weaviate_names_the_url_and_what_to_check(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    grpc_port = _closed_port()
    with pytest.raises(ServiceUnavailable) as raised:
        connect(_weaviate_settings(tmp_path, url, weaviate_grpc_port=grpc_port), environ={})
    message = str(raised.value)
    assert message.startswith(f"cannot reach Weaviate at {url} (")
    assert "WEAVIATE_URL" in message and f"gRPC port {grpc_port}" in message and "\n" not in message


def test_http_up_but_grpc_closed_says_to_publish_the_grpc_port(tmp_path: Path) -> None:
    grpc_port = _closed_port()
    with weaviate_rest() as fake, pytest.raises(ServiceUnavailable) as raised:
        connect(_weaviate_settings(tmp_path, fake.url, weaviate_grpc_port=grpc_port), environ={})
    assert f"answers over HTTP but not over gRPC on port {grpc_port}" in str(raised.value)
    assert "store.weaviate_grpc_port" in str(raised.value)


def test_a_refused_api_key_is_named(tmp_path: Path) -> None:
    settings = _weaviate_settings(tmp_path, "", weaviate_api_key_env="TEAM_WEAVIATE_KEY")
    with weaviate_rest(refuse_key=True) as fake, pytest.raises(ServiceUnavailable) as raised:
        connect(
            settings.model_copy(
                update={"store": settings.store.model_copy(update={"weaviate_url": fake.url})}
            ),
            environ={"TEAM_WEAVIATE_KEY": "wrong-key"},
        )
    assert "refused the credentials" in str(raised.value) and "check TEAM_WEAVIATE_KEY" in str(raised.value)
    assert "Bearer wrong-key" in fake.authorizations  # the key went out as Weaviate expects it
    assert "wrong-key" not in str(raised.value)


def test_app_stops_at_the_store_with_that_message(tmp_path: Path) -> None:
    app = App(_weaviate_settings(tmp_path, f"http://127.0.0.1:{_closed_port()}"))
    with pytest.raises(ServiceUnavailable, match="cannot reach Weaviate"):
        _ = app.store
    assert "embedder" not in app.__dict__  # failed before loading any model


def test_cli_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "archivist.toml"
    config.write_text(
        f'data_dir = "data"\n[store]\nbackend = "weaviate"\nweaviate_url = "http://127.0.0.1:{_closed_port()}"\n'
        '[connectors.kb]\ntype = "filesystem"\npath = "kb"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "sync", "kb"],
        capture_output=True,
        text=True,
        env={"ARCHIVIST_CONFIG": str(config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "cannot reach Weaviate at http://127.0.0.1:" in result.stderr and "Traceback" not in result.stderr


def test_weaviate_needs_a_url_or_embedded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WEAVIATE_URL"):
        connect(_weaviate_settings(tmp_path, ""), environ={})


def test_weaviate_cloud_needs_an_api_key(tmp_path: Path) -> None:
    settings = _weaviate_settings(tmp_path, "https://abc123.c0.europe-west3.gcp.weaviate.cloud")
    with pytest.raises(ConfigError, match="set WEAVIATE_API_KEY"):
        connect(settings, environ={})


@pytest.mark.parametrize(
    ("url", "host", "port", "secure", "cloud"),
    [
        ("http://weaviate:8080", "weaviate", 8080, False, False),
        ("localhost:8080", "localhost", 8080, False, False),
        ("https://search.internal.example", "search.internal.example", 443, True, False),
        (
            "https://abc.c0.europe-west3.gcp.weaviate.cloud/",
            "abc.c0.europe-west3.gcp.weaviate.cloud",
            443,
            True,
            True,
        ),
    ],
)
def test_urls_parse_into_endpoints(url: str, host: str, port: int, secure: bool, cloud: bool) -> None:
    endpoint = parse_url(url, grpc_port=50051)
    assert (endpoint.host, endpoint.http_port, endpoint.secure, endpoint.cloud) == (host, port, secure, cloud)
    assert endpoint.grpc_port == 50051


@pytest.mark.parametrize("url", ["ftp://weaviate:21", "http://", "http://weaviate:8080/v1", "http://w:99999"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="WEAVIATE_URL"):
        parse_url(url, grpc_port=50051)


# -- settings ------------------------------------------------------------------


def test_weaviate_settings_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "archivist.toml"
    path.write_text(
        '[store]\nbackend = "weaviate"\ntenant = "acme-eu"\nfusion = "ranked"\nweaviate_grpc_port = 6000\n',
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"WEAVIATE_URL": "http://weaviate:8080"})
    store = settings.store
    assert (store.weaviate_url, store.tenant, store.fusion, store.weaviate_grpc_port) == (
        "http://weaviate:8080",
        "acme-eu",
        "ranked",
        6000,
    )
    assert (store.weaviate_api_key_env, store.weaviate_vectorizer, store.weaviate_embedded) == (
        "WEAVIATE_API_KEY",
        "",
        False,
    )


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('tenant = "acme corp"', "store.tenant"),
        ('fusion = "rrf"', "store.fusion"),
        ("weaviate_grpc_port = 0", "store.weaviate_grpc_port"),
        ('weaviate_api_key = "secret"', "store.weaviate_api_key"),
    ],
)
def test_bad_weaviate_settings_name_their_key(tmp_path: Path, line: str, named: str) -> None:
    path = tmp_path / "archivist.toml"
    path.write_text(f"[store]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=named):
        load_settings(path, environ={})
