"""`archivist demo`: sync, one sample answer, then a chat when in a terminal."""

from __future__ import annotations

import sys

from bot.cli import context
from bot.cli.ask import build_question, run_chat
from bot.cli.console import out, render_stream
from bot.cli.sync import sync_now

DEMO_QUESTION = "How many vacation days do employees in the Netherlands get?"


def demo() -> None:
    """Sync the bundled handbook, answer a sample question, then open a chat (in a terminal)."""
    out.print("[bold]1. Syncing the configured sources[/bold]")
    sync_now([], full=False)
    out.print(f"\n[bold]2. Asking:[/bold] {DEMO_QUESTION}\n")
    render_stream(context.application().assistant.stream(build_question(DEMO_QUESTION, None, [], [], "")))
    if sys.stdin.isatty() and sys.stdout.isatty():
        out.print("\n[bold]3. Your turn[/bold]")
        run_chat(None)
    else:
        out.print('\nRun `archivist chat` for a conversation, or `archivist ask "..."` for one answer.')
