"""`archivist ask` and `archivist chat`, and the one place a question from the terminal is checked."""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from typing import Annotated

import typer

from bot.cli import context
from bot.cli.console import err, out, render_stream
from core.answering.answers import AUTO, MODES, Question
from core.answering.history import ConversationKey
from core.errors import InputError, UnknownSourceError


def build_question(
    text: str, mode: str | None, principals: list[str], sources: list[str], thread: str
) -> Question:
    """The Question to ask, or an InputError / UnknownSourceError that names what is wrong."""
    # Bytes that are not UTF-8 reach argv and stdin as lone surrogates, which crash the embedder,
    # Redis or the terminal later on: refuse them here, once, for every way of asking.
    named = [("the question", text), ("--conversation", thread)]
    named += [("--principal", value) for value in principals] + [("--source", value) for value in sources]
    for what, value in named:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            msg = f"{what} is not valid UTF-8 text; check your terminal's encoding"
            raise InputError(msg) from None
    if mode is not None and mode not in (*MODES, AUTO):
        msg = f"--mode must be one of {', '.join((*MODES, AUTO))}, not {mode!r}"
        raise InputError(msg)
    settings = context.application().settings
    # An unknown source would filter every passage out and abstain without saying why.
    unknown = [name for name in dict.fromkeys(sources) if name not in settings.connectors]
    if unknown:
        known = ", ".join(sorted(settings.connectors)) or "none configured"
        names = ", ".join(repr(name) for name in unknown)
        msg = f"unknown source{'s' if len(unknown) > 1 else ''} {names} (configured: {known})"
        raise UnknownSourceError(msg)
    return Question(
        text=text,
        conversation=ConversationKey("cli", "local", getpass.getuser(), thread) if thread else None,
        principals=frozenset(settings.cli.principals) | frozenset(principals),
        sources=frozenset(sources) if sources else None,
        mode=mode,  # type: ignore[arg-type]
        mode_reason="--mode given" if mode else "",
    )


def ask(
    question: Annotated[str, typer.Argument(help="What you want to know.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    mode: Annotated[str | None, typer.Option(help="rag, finetuned, hybrid or auto (routed).")] = None,
    principal: Annotated[list[str], typer.Option(help="Read as this principal too (repeatable).")] = [],  # noqa: B006
    source: Annotated[list[str], typer.Option(help="Only read these sources (repeatable).")] = [],  # noqa: B006
    conversation: Annotated[str, typer.Option(help="Continue a named conversation (memory in Redis).")] = "",
) -> None:
    """Answer one question from the indexed documents, with sources."""
    asked = build_question(question, mode, principal, source, conversation)
    if as_json:
        answer = context.application().assistant.ask(asked)
        out.print_json(json.dumps(answer.as_dict(), ensure_ascii=False))
    else:
        answer = render_stream(context.application().assistant.stream(asked))
        if answer.fallback:
            err.print(f"note: {answer.fallback}; the base model {answer.model} answered", markup=False)


def chat(
    mode: Annotated[str | None, typer.Option(help="rag, finetuned or hybrid.")] = None,
) -> None:
    """A conversation that remembers follow-ups. /forget clears memory, /exit leaves."""
    run_chat(mode)


def run_chat(mode: str | None) -> None:
    """The chat loop: one question per line until /exit, end of input or Ctrl-C."""
    thread = uuid.uuid4().hex[:12]
    # A line that is not UTF-8 would make input() raise and end the chat; read it as surrogate
    # escapes instead, so build_question refuses that one line and the chat goes on.
    try:
        sys.stdin.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    except (AttributeError, OSError):  # not a text stream, or already read from: keep it as it is
        pass
    out.print("[bold]Archivist[/bold] — ask about your documents. /forget clears memory, /exit leaves.")
    while True:
        try:
            text = out.input("\n[bold cyan]you ›[/bold cyan] ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if text in ("/exit", "/quit"):
            return
        if not text:
            continue
        try:
            asked = build_question(text, mode, [], [], thread)
            if text == "/forget":
                context.application().assistant.forget(asked)
                out.print("Memory of this conversation cleared.")
                continue
            out.print("[bold green]archivist ›[/bold green] ", end="")
            render_stream(context.application().assistant.stream(asked))
        except InputError as exc:
            err.print(str(exc), style="yellow", markup=False)  # the message may quote "[...]"
