"""What every `archivist` command shares: the global options and the lazily built App.

The composition root is imported only when a command first needs it, so `--help` stays fast.
Commands call ``context.application()`` through this module, which is also where tests
replace it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app import App

EXIT_ERROR = 1
EXIT_PARTIAL = 3  # the sync ran, but some documents could not be read

_state: dict[str, object] = {}


def set_options(config: Path | None, verbose: bool) -> None:
    """Remember the global options given before the command."""
    _state["config"] = config
    _state["verbose"] = verbose


def verbose() -> bool:
    """Whether `--verbose` was given."""
    return bool(_state.get("verbose"))


@cache
def application() -> App:
    """The App for the config given with `--config`, built on first use and then reused."""
    from core.app import App
    from core.settings import load_settings

    return App(load_settings(_state.get("config")))  # type: ignore[arg-type]
