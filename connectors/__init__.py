"""Sources of documents. Each type is built from its ``[connectors.NAME]`` table."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.settings import ConnectorSettings
    from core.sync.connector import Connector

# type name -> "module:factory"; modules are imported only when a source of that type is used.
CONNECTOR_TYPES = {
    "filesystem": "connectors.filesystem:FilesystemConnector",
    "web": "connectors.web:WebConnector",
    "git": "connectors.git:GitConnector",
    "github": "connectors.github:GitHubConnector",
    "google_drive": "connectors.google_drive:GoogleDriveConnector",
    "slack_channels": "connectors.slack_channels:SlackChannelsConnector",
    "confluence": "connectors.confluence:ConfluenceConnector",
    "notion": "connectors.notion:NotionConnector",
}


def build_connector(name: str, settings: ConnectorSettings, data_dir: Path) -> Connector:
    """Build source ``name``; connectors keep any state of theirs (clones, caches) under ``data_dir``."""
    module_name, _, factory_name = CONNECTOR_TYPES[settings.type].partition(":")
    factory = getattr(import_module(module_name), factory_name)
    try:
        return factory.from_settings(name, settings, data_dir=data_dir)
    except (TypeError, ValueError) as exc:
        msg = f"connectors.{name}: {exc}"
        raise ConfigError(msg) from None
