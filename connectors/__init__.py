"""Sources of documents, one module or package per type, each built from its ``[connectors.NAME]`` table.

Types are registered as entry points in the ``archivist.connectors`` group (see
``pyproject.toml``); core finds them through ``core.sync.registry``, never by importing
this package. A third-party package adds a type the same way, with no change here.
"""
