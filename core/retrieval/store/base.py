"""The vector store interface shared by the embedded LanceDB store and Weaviate.

Retrieval always takes an :class:`AccessFilter`: the store applies it inside its
own query, so a passage the asker may not read is never even a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.documents import Acl, Chunk


@dataclass(frozen=True)
class AccessFilter:
    """What an asker may read: public documents, plus those granted to ``principals``.

    ``sources`` narrows further (a channel that may read only some sources);
    ``None`` means every source.
    """

    principals: frozenset[str] = frozenset()
    sources: frozenset[str] | None = None
    include_public: bool = True

    def admits(self, source: str, acl: Acl) -> bool:
        """The same rule the stores apply in their queries, for a store that must check one chunk."""
        if self.sources is not None and source not in self.sources:
            return False
        return (self.include_public and acl.public) or bool(self.principals & acl.principals)


@dataclass(frozen=True)
class IndexedDocument:
    """What the index knows of a document, for the sync engine's diff."""

    version: str
    content_hash: str
    chunks: int
    acl: Acl


@dataclass(frozen=True)
class SearchQuery:
    text: str
    vector: Sequence[float]
    limit: int = 10
    candidates: int = 30
    alpha: float = 0.5  # 1.0 = vector only, 0.0 = full-text only


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk
    score: float  # fused rank score, comparable only within one result list
    similarity: float  # cosine similarity of question and passage, comparable across queries


class VectorStore(Protocol):
    """Chunks with their embeddings, searchable by meaning and by words."""

    name: str

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]], *, new_documents: bool = False
    ) -> None:
        """Replace every stored chunk of the documents these chunks belong to.

        ``new_documents=True`` promises none of them is indexed yet, sparing the
        delete (the first sync of a large source is all new documents).
        """
        ...

    def delete_documents(self, source: str, document_ids: Iterable[str]) -> None: ...

    def indexed_documents(self, source: str) -> dict[str, IndexedDocument]: ...

    def search(self, query: SearchQuery, access: AccessFilter) -> list[SearchHit]: ...

    def count(self, source: str | None = None) -> int: ...

    def chunks(self, access: AccessFilter, limit: int | None = None) -> list[Chunk]:
        """Indexed chunks the filter admits, in a stable order (source, document, position).

        For work over the whole index, such as writing fine-tuning data from it.
        """
        ...

    def finish_sync(self) -> None:
        """Called once after a sync wrote; stores refresh their full-text index here."""
        ...
