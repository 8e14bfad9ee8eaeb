"""How Archivist's chunks live in Weaviate: the collection's properties, its name,
its migration, the access filter, and the mapping between chunks and objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from weaviate.classes.config import DataType, Property, Tokenization
from weaviate.classes.query import Filter, FilterReturn
from weaviate.util import generate_uuid5

from core.documents import Acl, Chunk
from core.errors import ConfigError
from core.retrieval.store.base import AccessFilter

_COLLECTION_NAME = re.compile(r"[A-Z][_0-9A-Za-z]{0,230}")
# The collection's description records which embedder filled it, per tenant ("" without tenants).
_EMBEDDERS = "archivist_embedders"


def _exact(name: str, data_type: DataType = DataType.TEXT) -> Property:
    """Matched whole (ids, names, principals): field tokenization keeps case and punctuation."""
    return Property(
        name=name,
        data_type=data_type,
        tokenization=Tokenization.FIELD,
        index_filterable=True,
        index_searchable=False,
    )


def _stored(name: str, data_type: DataType = DataType.TEXT) -> Property:
    """Returned with a hit, never searched or filtered on: no inverted index to keep."""
    if data_type in (DataType.TEXT, DataType.TEXT_ARRAY):
        return Property(name=name, data_type=data_type, index_filterable=False, index_searchable=False)
    return Property(name=name, data_type=data_type, index_filterable=False)


PROPERTIES: tuple[Property, ...] = (
    _exact("chunk_id"),
    _exact("document_id"),
    _exact("source"),
    _stored("title"),
    _stored("text"),
    # The BM25 side of hybrid search reads only this: the passage with its title and headings.
    Property(
        name="search_text",
        data_type=DataType.TEXT,
        tokenization=Tokenization.WORD,
        index_filterable=False,
        index_searchable=True,
    ),
    _stored("heading_path", DataType.TEXT_ARRAY),
    _stored("position", DataType.INT),
    _stored("url"),
    _stored("path"),
    _stored("content_hash"),
    _stored("version"),
    Property(name="updated_at", data_type=DataType.DATE, index_filterable=True),
    _exact("acl_principals", DataType.TEXT_ARRAY),
    Property(name="acl_public", data_type=DataType.BOOL, index_filterable=True),
)


def collection_name(table: str) -> str:
    """Weaviate's name for ``[store] table``: it capitalises the first letter itself."""
    name = table[:1].upper() + table[1:]
    if not _COLLECTION_NAME.fullmatch(name):
        msg = (
            f"store.table: {table!r} is not a valid Weaviate collection name; use letters, digits "
            "and underscores, starting with a letter"
        )
        raise ConfigError(msg)
    return name


def plan_migration(existing: Mapping[str, str]) -> list[Property]:
    """The properties an existing collection lacks (name → Weaviate data type given).

    Adding a property is safe: objects written before read as null, which for
    ``acl_public`` means private. A property of the wrong type cannot be changed
    in place, so that is a ConfigError.
    """
    missing: list[Property] = []
    clashes: list[str] = []
    for wanted in PROPERTIES:
        stored = existing.get(wanted.name)
        if stored is None:
            missing.append(wanted)
        elif stored != wanted.dataType.value:
            clashes.append(f"{wanted.name} is {stored}, not {wanted.dataType.value}")
    if clashes:
        msg = (
            f"the Weaviate collection has properties of the wrong type ({'; '.join(clashes)}): "
            "point store.table at a new collection and run `archivist sync --full`"
        )
        raise ConfigError(msg)
    return missing


# An impossible condition, for an asker who may read nothing: Weaviate has no literal "false".
NOTHING: FilterReturn = Filter.all_of(
    [Filter.by_property("acl_public").equal(True), Filter.by_property("acl_public").equal(False)]
)


def access_filter(access: AccessFilter) -> FilterReturn:
    """Public documents and those granted to a principal, within the allowed sources."""
    grants: list[FilterReturn] = []
    if access.include_public:
        grants.append(Filter.by_property("acl_public").equal(True))
    # An empty principal would match nothing under field tokenization; drop it rather than send it.
    principals = sorted(p for p in access.principals if p.strip())
    if principals:
        grants.append(Filter.by_property("acl_principals").contains_any(principals))
    if not grants or (access.sources is not None and not access.sources):
        return NOTHING
    readable = Filter.any_of(grants)
    if access.sources is None:
        return readable
    return Filter.all_of([readable, Filter.by_property("source").contains_any(sorted(access.sources))])


def chunk_uuid(chunk_id: str) -> str:
    """The same chunk always lands on the same object: a re-sent chunk replaces, never duplicates."""
    return generate_uuid5(chunk_id)


def to_properties(chunk: Chunk) -> dict[str, Any]:
    updated = chunk.updated_at if chunk.updated_at.tzinfo else chunk.updated_at.replace(tzinfo=UTC)
    return {
        "chunk_id": chunk.id,
        "document_id": chunk.document_id,
        "source": chunk.source,
        "title": chunk.title,
        "text": chunk.text,
        "search_text": chunk.search_text(),
        "heading_path": list(chunk.heading_path),
        "position": chunk.position,
        "url": chunk.url,
        "path": chunk.path,
        "content_hash": chunk.content_hash,
        "version": chunk.version,
        "updated_at": updated,
        "acl_principals": sorted(chunk.acl.principals),
        "acl_public": chunk.acl.public,
    }


def text_of(properties: Mapping[str, Any], key: str) -> str:
    value = properties.get(key)
    return value if isinstance(value, str) else ""


def to_chunk(properties: Mapping[str, Any]) -> Chunk:
    updated = properties.get("updated_at")
    position = properties.get("position")
    return Chunk(
        id=text_of(properties, "chunk_id"),
        document_id=text_of(properties, "document_id"),
        source=text_of(properties, "source"),
        title=text_of(properties, "title"),
        text=text_of(properties, "text"),
        heading_path=tuple(properties.get("heading_path") or ()),
        position=position if isinstance(position, int) else 0,
        url=text_of(properties, "url"),
        path=text_of(properties, "path"),
        content_hash=text_of(properties, "content_hash"),
        version=text_of(properties, "version"),
        updated_at=updated if isinstance(updated, datetime) else datetime.now(UTC),
        acl=to_acl(properties),
    )


def to_acl(properties: Mapping[str, Any]) -> Acl:
    return Acl(properties.get("acl_public") is True, frozenset(properties.get("acl_principals") or ()))


def flat_vector(vectors: Mapping[str, Any], name: str) -> list[float] | None:
    vector = vectors.get(name)
    if not isinstance(vector, list) or not vector or not isinstance(vector[0], int | float):
        return None  # absent, or a multi-vector: no single cosine to compute
    return [float(x) for x in vector]


def recorded_embedders(description: str | None) -> dict[str, dict[str, Any]]:
    """Tenant ("" when there are none) → ``{"embedder", "dimensions"}`` from the description."""
    try:
        data = json.loads(description or "")
    except ValueError:
        return {}
    recorded = data.get(_EMBEDDERS) if isinstance(data, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {str(k): v for k, v in recorded.items() if isinstance(v, dict)}


def with_embedder(description: str | None, tenant: str, record: dict[str, Any]) -> str:
    """The description with ``tenant``'s embedder record set; other tenants' records are kept."""
    recorded = recorded_embedders(description)
    recorded[tenant] = record
    return json.dumps({_EMBEDDERS: dict(sorted(recorded.items()))}, sort_keys=True)
