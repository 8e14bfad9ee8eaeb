"""Retrieval: passages for a query, under the asker's access filter.

``retriever`` is the LangChain retriever over a store; ``reranker`` the optional
cross-encoder; ``store/`` the vector store interface and its backends (embedded
LanceDB, Weaviate), each applying the access filter inside its own query.
"""
