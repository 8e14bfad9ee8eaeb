"""The `archivist` command line.

main: the typer app, global options and the error boundary; context: the lazily built App
and the global options every command shares; ask, sync, serve, models, evaluate, finetune
and demo: the commands; console: terminal rendering.
"""

from bot.cli.main import app, main

__all__ = ["app", "main"]
