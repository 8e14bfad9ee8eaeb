"""Archivist's shared core: documents, sync, retrieval, answering and memory.

Rooms: ``answering/`` (the assistant and its memory), ``retrieval/`` (search and stores),
``models/`` (chat and embedding models), ``sync/`` (the connector interface and the sync
engine), ``evaluation/`` and ``finetune/``. At the top: ``api`` (what chat frontends may
call), ``app`` (the composition root), ``settings``, ``errors``, ``documents``.

Frontends (``bot``) and sources (``connectors``) depend on this package; it never
imports a chat platform's SDK or a connector.
"""
