"""Archivist's shared core: documents, sync, retrieval, answering and memory.

Frontends (``bot``) and sources (``connectors``) depend on this package; it never
imports a chat platform's SDK.
"""
