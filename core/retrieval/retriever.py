"""A LangChain retriever over a VectorStore, bound to one asker's access filter."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from core.retrieval.store.base import AccessFilter, SearchQuery, VectorStore


class StoreRetriever(BaseRetriever):
    """Hybrid search with the access filter inside the store's query.

    ``access`` is required: there is no way to build one that sees everything by
    forgetting an argument. Each returned document carries its ``SearchHit``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Any  # VectorStore; a Protocol cannot be validated by pydantic
    embedder: Embeddings
    access: AccessFilter
    limit: int = 4
    candidates: int = 30
    alpha: float = 0.5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        store: VectorStore = self.store
        vector = self.embedder.embed_query(query)
        hits = store.search(
            SearchQuery(query, vector, limit=self.limit, candidates=self.candidates, alpha=self.alpha),
            self.access,
        )
        return [
            LCDocument(page_content=hit.chunk.text, metadata={"hit": hit}, id=hit.chunk.id) for hit in hits
        ]
