"""Sources of documents. Each type is built from its ``[connectors.NAME]`` table.

Types are registered as entry points in the ``archivist.connectors`` group (see
``pyproject.toml``); core finds them through ``core.sync.registry``, never by importing
this package. ``build_connector`` is re-exported here for scripts that build one source.
"""

from core.sync.registry import build_connector

__all__ = ["build_connector"]
