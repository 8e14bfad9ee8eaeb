"""A local Weaviate stand-in speaking Weaviate's wire format: REST for the schema, gRPC for data.

It records every request as the client sent it, so tests can assert what Archivist
puts on the wire (schema, filters, tenants, vectors, fusion), and it keeps objects in
memory so a store can write, list, delete and search them again. The rules it applies
are Weaviate's documented ones where Archivist depends on them: filters (Equal,
ContainsAny, And, Or, Not) on whole values, a collection's vectors all of one length
(a different one is refused per object), multi-tenant collections requiring a known
tenant, at most ``max_delete`` matches removed per delete (QUERY_MAXIMUM_RESULTS).
Hybrid ranking is a plain stand-in (cosine for the vector side, term counts for the
keyword side, then relative-score or reciprocal-rank fusion); it is not Weaviate's
BM25 and tests must not read ranking quality from it.
"""

from __future__ import annotations

import copy
import json
import math
import re
import struct
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

VERSION = "1.35.7"
_HNSW = {
    "skip": False,
    "cleanupIntervalSeconds": 300,
    "maxConnections": 32,
    "efConstruction": 128,
    "ef": -1,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1000000000000,
    "flatSearchCutoff": 40000,
    "distance": "cosine",
    "filterStrategy": "sweeping",
    "pq": {
        "enabled": False,
        "bitCompression": False,
        "segments": 0,
        "centroids": 256,
        "trainingLimit": 100000,
        "encoder": {"type": "kmeans", "distribution": "log-normal"},
    },
    "bq": {"enabled": False},
    "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
    "rq": {"enabled": False, "bits": 8, "rescoreLimit": 20},
    "multivector": {"enabled": False, "aggregation": "maxSim"},
}


@dataclass
class StoredObject:
    properties: dict[str, Any]
    vectors: dict[str, list[float]]


@dataclass
class FakeWeaviate:
    """State and the log of requests: ``(kind, payload)`` with payloads as JSON-like dicts."""

    url: str = ""
    grpc_port: int = 0
    max_delete: int = 10_000
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tenants: dict[str, dict[str, str]] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[str, StoredObject]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_next: dict[str, grpc.StatusCode] = field(default_factory=dict)  # gRPC method → error once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_of(self, kind: str) -> list[dict[str, Any]]:
        return [payload for seen, payload in self.requests if seen == kind]

    # -- schema (REST) -------------------------------------------------------

    def create_class(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(body)
        stored.setdefault("properties", [])
        for prop in stored["properties"]:
            _property_defaults(prop)
        stored.setdefault(
            "invertedIndexConfig",
            {
                "bm25": {"b": 0.75, "k1": 1.2},
                "cleanupIntervalSeconds": 60,
                "stopwords": {"preset": "en", "additions": None, "removals": None},
            },
        )
        stored.setdefault("replicationConfig", {"factor": 1, "deletionStrategy": "NoAutomatedResolution"})
        stored.setdefault(
            "shardingConfig",
            {
                "virtualPerPhysical": 128,
                "desiredCount": 1,
                "actualCount": 1,
                "desiredVirtualCount": 128,
                "actualVirtualCount": 128,
                "key": "_id",
                "strategy": "hash",
                "function": "murmur3",
            },
        )
        tenancy = stored.setdefault("multiTenancyConfig", {})
        tenancy.setdefault("enabled", False)
        tenancy.setdefault("autoTenantCreation", False)
        tenancy.setdefault("autoTenantActivation", False)
        for vector in (stored.get("vectorConfig") or {}).values():
            vector.setdefault("vectorIndexType", "hnsw")
            config = copy.deepcopy(_HNSW)
            config.update(vector.get("vectorIndexConfig") or {})
            vector["vectorIndexConfig"] = config
        self.classes[stored["class"]] = stored
        self.tenants.setdefault(stored["class"], {})
        return stored

    # -- objects (gRPC) ------------------------------------------------------

    def shard(self, collection: str, tenant: str) -> dict[str, StoredObject]:
        schema = self.classes.get(collection)
        if schema is None:
            raise _Refused(grpc.StatusCode.NOT_FOUND, f"class {collection} not found")
        if schema["multiTenancyConfig"]["enabled"]:
            if not tenant:
                raise _Refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "has multi-tenancy enabled, but request was without tenant",
                )
            if tenant not in self.tenants[collection]:
                raise _Refused(grpc.StatusCode.NOT_FOUND, f'tenant not found: "{tenant}"')
        elif tenant:
            raise _Refused(
                grpc.StatusCode.INVALID_ARGUMENT, "has multi-tenancy disabled, but request was with tenant"
            )
        return self.objects.setdefault((collection, tenant), {})

    def data_type(self, collection: str, name: str) -> str:
        for prop in self.classes[collection]["properties"]:
            if prop["name"] == name:
                return str(prop["dataType"][0])
        return "text"


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _property_defaults(prop: dict[str, Any]) -> None:
    text = prop["dataType"][0] in ("text", "text[]")
    prop.setdefault("indexFilterable", True)
    prop.setdefault("indexSearchable", text)
    prop.setdefault("indexRangeFilters", False)
    if text:
        prop.setdefault("tokenization", "word")


# -- filters -----------------------------------------------------------------


def _filter_values(message: base_pb2.Filters) -> list[Any]:
    kind = message.WhichOneof("test_value")
    if kind == "value_text_array":
        return list(message.value_text_array.values)
    if kind == "value_int_array":
        return list(message.value_int_array.values)
    if kind == "value_boolean_array":
        return list(message.value_boolean_array.values)
    if kind == "value_number_array":
        return list(message.value_number_array.values)
    return [getattr(message, kind)] if kind else []


def matches(message: base_pb2.Filters | None, object_id: str, stored: StoredObject) -> bool:
    if message is None or not message.ByteSize():
        return True
    op = base_pb2.Filters.Operator
    if message.operator == op.OPERATOR_AND:
        return all(matches(part, object_id, stored) for part in message.filters)
    if message.operator == op.OPERATOR_OR:
        return any(matches(part, object_id, stored) for part in message.filters)
    if message.operator == op.OPERATOR_NOT:
        return not matches(message.filters[0], object_id, stored)
    prop = message.target.property or (message.on[0] if message.on else "")
    actual = object_id if prop == "_id" else stored.properties.get(prop)
    have = set(actual) if isinstance(actual, list) else ({actual} if actual is not None else set())
    wanted = _filter_values(message)
    if message.operator == op.OPERATOR_EQUAL:
        return actual == wanted[0] if not isinstance(actual, list) else wanted[0] in have
    if message.operator == op.OPERATOR_NOT_EQUAL:
        return actual != wanted[0]
    if message.operator == op.OPERATOR_CONTAINS_ANY:
        return bool(have & set(wanted))
    if message.operator == op.OPERATOR_CONTAINS_ALL:
        return set(wanted) <= have
    raise _Refused(grpc.StatusCode.UNIMPLEMENTED, f"operator {message.operator} not in the fake")


# -- values ------------------------------------------------------------------


def _decode_vector(raw: bytes) -> list[float]:
    return list(struct.unpack(f"{len(raw) // 4}f", raw))


def _object_vectors(obj: batch_pb2.BatchObject) -> dict[str, list[float]]:
    vectors = {v.name or "default": _decode_vector(v.vector_bytes) for v in obj.vectors}
    if obj.vector_bytes:
        vectors["default"] = _decode_vector(obj.vector_bytes)
    elif obj.vector:
        vectors["default"] = list(obj.vector)
    return vectors


def _object_properties(fake: FakeWeaviate, collection: str, obj: batch_pb2.BatchObject) -> dict[str, Any]:
    props = obj.properties
    values: dict[str, Any] = (
        dict(MessageToDict(props.non_ref_properties)) if props.HasField("non_ref_properties") else {}
    )
    for name, value in list(values.items()):
        if fake.data_type(collection, name) == "int" and isinstance(value, float):
            values[name] = int(value)
    for array in props.text_array_properties:
        values[array.prop_name] = list(array.values)
    for array in props.boolean_array_properties:
        values[array.prop_name] = list(array.values)
    for name in props.empty_list_props:
        values[name] = []
    return values


def _value(data_type: str, value: Any) -> properties_pb2.Value:
    if data_type == "text[]":
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=value))
        )
    if data_type == "date":
        return properties_pb2.Value(date_value=value)
    if isinstance(value, bool):
        return properties_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return properties_pb2.Value(int_value=value)
    if isinstance(value, float):
        return properties_pb2.Value(number_value=value)
    return properties_pb2.Value(text_value=str(value))


def _cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return 0.0
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def _terms(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _normalised(scores: list[tuple[str, float]]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(s for _, s in scores), max(s for _, s in scores)
    return {key: (s - low) / (high - low) if high > low else 1.0 for key, s in scores}


# -- the gRPC service ----------------------------------------------------------


class _Service(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, fake: FakeWeaviate) -> None:
        self.fake = fake

    def _guard(self, method: str, context: grpc.ServicerContext) -> None:
        code = self.fake.fail_next.pop(method, None)
        if code is not None:
            context.abort(code, f"{method} failed in the fake on purpose")

    def BatchObjects(self, request, context):  # noqa: N802 - gRPC's naming
        self._guard("BatchObjects", context)
        fake = self.fake
        fake.requests.append(("BatchObjects", MessageToDict(request)))
        errors = []
        with fake.lock:
            for index, obj in enumerate(request.objects):
                try:
                    shard = fake.shard(obj.collection, obj.tenant)
                except _Refused as exc:
                    errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=str(exc)))
                    continue
                vectors = _object_vectors(obj)
                lengths = {len(v) for o in shard.values() for v in o.vectors.values()}
                wrong = [len(v) for v in vectors.values() if lengths and len(v) not in lengths]
                if wrong:
                    message = (
                        f"insert to vector index: new node has a vector with length {wrong[0]}. "
                        f"Existing nodes have vectors with length {next(iter(lengths))}"
                    )
                    errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=message))
                    continue
                shard[obj.uuid] = StoredObject(_object_properties(fake, obj.collection, obj), vectors)
        return batch_pb2.BatchObjectsReply(took=0.001, errors=errors)

    def BatchDelete(self, request, context):  # noqa: N802
        self._guard("BatchDelete", context)
        fake = self.fake
        fake.requests.append(("BatchDelete", MessageToDict(request)))
        with fake.lock:
            shard = self._shard(request.collection, request.tenant, context)
            hits = [key for key, obj in shard.items() if matches(request.filters, key, obj)][
                : fake.max_delete
            ]
            if not request.dry_run:
                for key in hits:
                    del shard[key]
        return batch_delete_pb2.BatchDeleteReply(
            took=0.001, matches=len(hits), successful=len(hits), failed=0
        )

    def Aggregate(self, request, context):  # noqa: N802
        self._guard("Aggregate", context)
        fake = self.fake
        fake.requests.append(("Aggregate", MessageToDict(request)))
        with fake.lock:
            shard = self._shard(request.collection, request.tenant, context)
            filters = request.filters if request.HasField("filters") else None
            count = sum(1 for key, obj in shard.items() if matches(filters, key, obj))
        return aggregate_pb2.AggregateReply(
            took=0.001, single_result=aggregate_pb2.AggregateReply.Single(objects_count=count)
        )

    def TenantsGet(self, request, context):  # noqa: N802
        fake = self.fake
        fake.requests.append(("TenantsGet", MessageToDict(request)))
        known = fake.tenants.get(request.collection, {})
        names = list(request.names.values) if request.HasField("names") else list(known)
        status = tenants_pb2.TenantActivityStatus
        return tenants_pb2.TenantsGetReply(
            took=0.001,
            tenants=[
                tenants_pb2.Tenant(
                    name=name, activity_status=status.Value(f"TENANT_ACTIVITY_STATUS_{known[name]}")
                )
                for name in names
                if name in known
            ],
        )

    def Search(self, request, context):  # noqa: N802
        self._guard("Search", context)
        fake = self.fake
        fake.requests.append(("Search", MessageToDict(request)))
        with fake.lock:
            shard = self._shard(request.collection, request.tenant, context)
            filters = request.filters if request.HasField("filters") else None
            candidates = {key: obj for key, obj in shard.items() if matches(filters, key, obj)}
            ranked = self._rank(request, candidates)
            results = [
                self._result(request, key, candidates[key], score, distance)
                for key, score, distance in ranked
            ]
        return search_get_pb2.SearchReply(took=0.001, results=results)

    def _shard(self, collection: str, tenant: str, context: grpc.ServicerContext) -> dict[str, StoredObject]:
        try:
            return self.fake.shard(collection, tenant)
        except _Refused as exc:
            context.abort(exc.code, str(exc))
            raise  # abort raises; this keeps type checkers calm

    @staticmethod
    def _rank(request, candidates: dict[str, StoredObject]) -> list[tuple[str, float | None, float | None]]:
        limit = request.limit or 10
        if request.HasField("hybrid_search"):
            hybrid = request.hybrid_search
            query_vector = list(hybrid.vector) or (
                _decode_vector(hybrid.vector_bytes) if hybrid.vector_bytes else []
            )
            for named in hybrid.vectors:
                query_vector = _decode_vector(named.vector_bytes)
            dense = sorted(
                (
                    (key, _cosine(query_vector, next(iter(obj.vectors.values()), [])))
                    for key, obj in candidates.items()
                ),
                key=lambda item: -item[1],
            )[:limit]
            terms = set(_terms(hybrid.query))
            fields = list(hybrid.properties) or ["search_text"]
            sparse = []
            for key, obj in candidates.items():
                words = [w for f in fields for w in _terms(str(obj.properties.get(f, "")))]
                score = float(sum(1 for w in words if w in terms))
                if score > 0:
                    sparse.append((key, score))
            sparse = sorted(sparse, key=lambda item: -item[1])[:limit]
            alpha = hybrid.alpha
            fused: dict[str, float] = {}
            if hybrid.fusion_type == base_search_pb2.Hybrid.FusionType.FUSION_TYPE_RANKED:
                for weight, results in ((alpha, dense), (1 - alpha, sparse)):
                    for rank, (key, _) in enumerate(results):
                        if weight > 0:
                            fused[key] = fused.get(key, 0.0) + weight / (60 + rank)
            else:
                for weight, results in ((alpha, dense), (1 - alpha, sparse)):
                    for key, score in _normalised(results).items():
                        if weight > 0:
                            fused[key] = fused.get(key, 0.0) + weight * score
            order = sorted(fused.items(), key=lambda item: -item[1])[:limit]
            return [(key, score, None) for key, score in order]
        if request.HasField("near_vector"):
            near = request.near_vector
            query_vector = list(near.vector) or (
                _decode_vector(near.vector_bytes) if near.vector_bytes else []
            )
            for named in near.vectors:
                query_vector = _decode_vector(named.vector_bytes)
            order = sorted(
                (
                    (key, 1 - _cosine(query_vector, next(iter(obj.vectors.values()), [])))
                    for key, obj in candidates.items()
                ),
                key=lambda item: item[1],
            )[:limit]
            return [(key, None, distance) for key, distance in order]
        keys = sorted(candidates, key=uuid.UUID)  # a cursor listing pages in id order
        if request.after:
            keys = [key for key in keys if uuid.UUID(key) > uuid.UUID(request.after)]
        return [(key, None, None) for key in keys[:limit]]

    def _result(self, request, key: str, obj: StoredObject, score: float | None, distance: float | None):
        metadata = search_get_pb2.MetadataResult(id=key, id_as_bytes=uuid.UUID(key).bytes)
        if request.metadata.score and score is not None:
            metadata.score, metadata.score_present = score, True
        if request.metadata.distance and distance is not None:
            metadata.distance, metadata.distance_present = distance, True
        wanted_vectors = list(request.metadata.vectors) or (
            list(obj.vectors) if request.metadata.vector else []
        )
        for name in wanted_vectors:
            if name in obj.vectors:
                metadata.vectors.append(
                    base_pb2.Vectors(
                        name=name,
                        vector_bytes=struct.pack(f"{len(obj.vectors[name])}f", *obj.vectors[name]),
                        type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
                    )
                )
        names = list(request.properties.non_ref_properties) or list(obj.properties)
        props = properties_pb2.Properties(
            fields={
                name: _value(self.fake.data_type(request.collection, name), obj.properties[name])
                for name in names
                if name in obj.properties and obj.properties[name] is not None
            }
        )
        return search_get_pb2.SearchResult(
            metadata=metadata, properties=search_get_pb2.PropertiesResult(non_ref_props=props)
        )


def _health_check(request, context):  # noqa: ANN001, ANN202 - gRPC's handler shape
    serving = health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
    return health_weaviate_pb2.WeaviateHealthCheckResponse(status=serving)


# The client pings the standard gRPC health service with Weaviate's own message types.
_HEALTH = grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health",
    {
        "Check": grpc.unary_unary_rpc_method_handler(
            _health_check,
            request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
            response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
        )
    },
)


# -- the REST side ------------------------------------------------------------


def _rest_handler(fake: FakeWeaviate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: object = None) -> None:
            body = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"null")

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            fake.requests.append(("GET " + path, {}))
            if path == "/v1/meta":
                self._send(200, {"hostname": "http://[::]:8080", "version": VERSION, "modules": {}})
            elif path == "/v1/.well-known/ready":
                self._send(200)
            elif match := re.fullmatch(r"/v1/schema/([^/]+)", path):
                schema = fake.classes.get(match[1])
                self._send(200, schema) if schema else self._send(404)
            elif match := re.fullmatch(r"/v1/schema/([^/]+)/tenants", path):
                known = fake.tenants.get(match[1], {})
                self._send(200, [{"name": n, "activityStatus": s} for n, s in known.items()])
            elif match := re.fullmatch(r"/v1/schema/([^/]+)/tenants/([^/]+)", path):
                status = fake.tenants.get(match[1], {}).get(match[2])
                self._send(200, {"name": match[2], "activityStatus": status}) if status else self._send(404)
            else:
                self._send(404, {"error": [{"message": f"no route {path}"}]})

        def do_POST(self) -> None:  # noqa: N802
            path, body = self.path.split("?")[0], self._body()
            fake.requests.append(("POST " + path, body if isinstance(body, dict) else {"items": body}))
            with fake.lock:
                if path == "/v1/schema":
                    if body["class"] in fake.classes:
                        self._send(
                            422, {"error": [{"message": f"class name {body['class']!r} already exists"}]}
                        )
                    else:
                        self._send(200, fake.create_class(body))
                elif match := re.fullmatch(r"/v1/schema/([^/]+)/properties", path):
                    _property_defaults(body)
                    fake.classes[match[1]]["properties"].append(body)
                    self._send(200, body)
                elif match := re.fullmatch(r"/v1/schema/([^/]+)/tenants", path):
                    for tenant in body:
                        fake.tenants[match[1]][tenant["name"]] = tenant.get("activityStatus", "ACTIVE")
                    self._send(200, body)
                else:
                    self._send(404, {"error": [{"message": f"no route {path}"}]})

        def do_PUT(self) -> None:  # noqa: N802
            path, body = self.path.split("?")[0], self._body()
            fake.requests.append(("PUT " + path, {"items": body}))
            if match := re.fullmatch(r"/v1/schema/([^/]+)/tenants", path):
                for tenant in body:
                    fake.tenants[match[1]][tenant["name"]] = tenant["activityStatus"]
                self._send(200, body)
            elif match := re.fullmatch(r"/v1/schema/([^/]+)", path):
                with fake.lock:
                    fake.classes[match[1]]["description"] = body.get("description")
                self._send(200, fake.classes[match[1]])
            else:
                self._send(404)

        def do_DELETE(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            body = self._body()
            fake.requests.append(("DELETE " + path, {"items": body}))
            if match := re.fullmatch(r"/v1/schema/([^/]+)/tenants", path):
                with fake.lock:
                    for name in body:
                        fake.tenants[match[1]].pop(name, None)
                        fake.objects.pop((match[1], name), None)
                self._send(200)
            elif match := re.fullmatch(r"/v1/schema/([^/]+)", path):
                fake.classes.pop(match[1], None)
                for key in [k for k in fake.objects if k[0] == match[1]]:
                    del fake.objects[key]
                self._send(200)
            else:
                self._send(404)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def fake_weaviate() -> Iterator[FakeWeaviate]:
    fake = FakeWeaviate()
    rest = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(fake))
    threading.Thread(target=rest.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Service(fake), server)
    server.add_generic_rpc_handlers((_HEALTH,))
    fake.grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake.url = f"http://127.0.0.1:{rest.server_port}"
    try:
        yield fake
    finally:
        server.stop(grace=None)
        rest.shutdown()
        rest.server_close()


if __name__ == "__main__":  # `python -m tests.fakes.weaviate_server`: serve until Ctrl-C
    import time

    with fake_weaviate() as running:
        print(f"WEAVIATE_URL={running.url} WEAVIATE_GRPC_PORT={running.grpc_port}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
