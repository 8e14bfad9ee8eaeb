"""Optional parts of Archivist and the pip extra that installs each.

The core install answers from the terminal. Slack, Discord, the Weaviate store and local
fine-tuning need packages of their own, installed with an extra (``archivist[slack]``). Where
such a package is imported, a missing one becomes a ConfigError with one line that says which
extra to install, instead of a traceback ending in ModuleNotFoundError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from core.errors import ConfigError

# What each extra makes work, as the message names it.
EXTRAS = {
    "slack": "Slack",
    "discord": "Discord",
    "weaviate": "the Weaviate store",
    "finetune": "local fine-tuning",
}


class MissingExtra(ConfigError):
    """A package of an optional extra is not installed; the message says how to install it."""

    def __init__(self, extra: str, module: str = "") -> None:
        self.extra = extra
        self.module = module
        what = EXTRAS.get(extra, extra)
        super().__init__(f"install archivist[{extra}] to use {what}: pip install 'archivist[{extra}]'")


def is_missing(exc: ImportError, *modules: str) -> bool:
    """Whether ``exc`` is one of ``modules`` (or a submodule of one) not being installed, rather
    than a broken install or a bug inside the package."""
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and any(
        name == module or name.startswith(module + ".") for module in modules
    )


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, which the ``extra`` installs; raise MissingExtra when it is absent."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if is_missing(exc, module.partition(".")[0]):
            raise MissingExtra(extra, module) from exc
        raise
