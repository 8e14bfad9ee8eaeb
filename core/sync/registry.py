"""Connector types, found as plugins through the ``archivist.connectors`` entry-point group.

Each installed distribution may declare connector types in its metadata, as ``llm`` finds
its plugins::

    [project.entry-points."archivist.connectors"]
    filesystem = "connectors.filesystem:FilesystemConnector"

A type's module is imported only when a source of that type is built, so naming types
(settings validation, error messages) costs no import. The factory named by an entry point
offers ``from_settings(name, settings, data_dir=...)`` and returns a ``Connector``.
Archivist's own types are declared the same way in its ``pyproject.toml``: core never
imports them by name.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.sync.connector import Connector

ENTRY_POINT_GROUP = "archivist.connectors"


class SourceConfig(Protocol):
    """What the registry reads of a source's settings (``core.settings.ConnectorSettings``); named
    here so that settings, which asks this module whether a type exists, is not imported back."""

    @property
    def type(self) -> str: ...


def connector_types() -> dict[str, EntryPoint]:
    """Every installed connector type by name; the first distribution on ``sys.path`` wins a name."""
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def check_type(type_name: str) -> str:
    """``type_name`` if a connector of that type is installed, else a ValueError naming those that are."""
    types = connector_types()
    if type_name not in types:
        known = ", ".join(sorted(types)) or "none installed"
        msg = f"unknown connector type {type_name!r} (known: {known})"
        raise ValueError(msg)
    return type_name


def build_connector(name: str, settings: SourceConfig, data_dir: Path) -> Connector:
    """Build source ``name``; connectors keep any state of theirs (clones, caches) under ``data_dir``."""
    try:
        entry = connector_types()[check_type(settings.type)]
    except ValueError as exc:
        raise ConfigError(f"connectors.{name}: {exc}") from None
    try:
        factory = entry.load()
    except (ImportError, AttributeError) as exc:
        msg = (
            f"connectors.{name}: connector type {settings.type!r} ({entry.value}) could not be loaded: {exc}"
        )
        raise ConfigError(msg) from exc
    try:
        return factory.from_settings(name, settings, data_dir=data_dir)
    except (TypeError, ValueError) as exc:
        msg = f"connectors.{name}: {exc}"
        raise ConfigError(msg) from None
