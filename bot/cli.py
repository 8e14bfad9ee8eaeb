"""`archivist`: sync sources, ask questions and chat from the command line.

User errors (bad config, unknown source, unreachable service) print one line and
exit non-zero; this module is the CLI's single error boundary.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import signal
import sys
import uuid
from functools import cache
from pathlib import Path
from typing import Annotated

import typer

from bot.console import (
    SyncProgressView,
    err,
    out,
    render_report,
    render_sources_table,
    render_stream,
)
from bot.models_cli import models_commands
from core.answering.answers import AUTO, MODES, Question
from core.answering.history import ConversationKey
from core.errors import ArchivistError, InputError, ServiceUnavailable, SourceError, UnknownSourceError
from core.settings import load_settings
from core.sync.service import SyncBusy

EXIT_ERROR = 1
EXIT_PARTIAL = 3  # the sync ran, but some documents could not be read
DEMO_QUESTION = "How many vacation days do employees in the Netherlands get?"

app = typer.Typer(
    help="Archivist answers your team's questions from its own documents, with citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state: dict[str, object] = {}


@app.callback()
def _options(
    config: Annotated[
        Path | None, typer.Option(help="Config file (default: $ARCHIVIST_CONFIG or config/archivist.toml).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    _state["config"] = config
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("archivist").setLevel(logging.INFO)


@cache
def _app():  # noqa: ANN202 - the composition root is imported lazily: `--help` stays fast
    from core.app import App

    return App(load_settings(_state.get("config")))  # type: ignore[arg-type]


def _question(
    text: str, mode: str | None, principals: list[str], sources: list[str], thread: str
) -> Question:
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
    settings = _app().settings
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


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What you want to know.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    mode: Annotated[str | None, typer.Option(help="rag, finetuned, hybrid or auto (routed).")] = None,
    principal: Annotated[list[str], typer.Option(help="Read as this principal too (repeatable).")] = [],  # noqa: B006
    source: Annotated[list[str], typer.Option(help="Only read these sources (repeatable).")] = [],  # noqa: B006
    conversation: Annotated[str, typer.Option(help="Continue a named conversation (memory in Redis).")] = "",
) -> None:
    """Answer one question from the indexed documents, with sources."""
    asked = _question(question, mode, principal, source, conversation)
    if as_json:
        answer = _app().assistant.ask(asked)
        out.print_json(json.dumps(answer.as_dict(), ensure_ascii=False))
    else:
        answer = render_stream(_app().assistant.stream(asked))
        if answer.fallback:
            err.print(f"note: {answer.fallback}; the base model {answer.model} answered", markup=False)


@app.command()
def chat(
    mode: Annotated[str | None, typer.Option(help="rag, finetuned or hybrid.")] = None,
) -> None:
    """A conversation that remembers follow-ups. /forget clears memory, /exit leaves."""
    _chat(mode)


def _chat(mode: str | None) -> None:
    thread = uuid.uuid4().hex[:12]
    # A line that is not UTF-8 would make input() raise and end the chat; read it as surrogate
    # escapes instead, so _question refuses that one line and the chat goes on.
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
            asked = _question(text, mode, [], [], thread)
            if text == "/forget":
                _app().assistant.forget(asked)
                out.print("Memory of this conversation cleared.")
                continue
            out.print("[bold green]archivist ›[/bold green] ", end="")
            render_stream(_app().assistant.stream(asked))
        except InputError as exc:
            err.print(str(exc), style="yellow", markup=False)  # the message may quote "[...]"


@app.command()
def sync(
    names: Annotated[list[str] | None, typer.Argument(help="Sources to sync (default: all).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-read and re-index every document.")] = False,
    queue: Annotated[
        bool, typer.Option("--queue", help="Put the syncs on the job queue for `archivist worker --jobs`.")
    ] = False,
) -> None:
    """Bring the index in line with the sources: add, update and delete documents."""
    if queue:
        application = _app()
        for name in application.sync_service.resolve(names or []):
            out.print(application.job_queue.enqueue(name, full=full), markup=False)
        return
    _sync(names or [], full)


def _sync(names: list[str], full: bool) -> None:
    service = _app().sync_service
    partial = broken = False
    for name in service.resolve(names):  # a bad name fails before any work
        try:
            with SyncProgressView() as view:
                report = service.sync(name, full=full, progress=view)
        except (SourceError, SyncBusy) as exc:
            err.print(f"error: {exc}", markup=False)
            broken = True
            continue
        render_report(report)
        partial = partial or report.failed > 0
    if broken:
        raise typer.Exit(EXIT_ERROR)
    if partial:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit (for cron).")] = False,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="Consume sync jobs from the Redis queue ([worker] queue = 'rq').")
    ] = False,
    burst: Annotated[
        bool, typer.Option("--burst", help="With --jobs: stop once the queue is empty.")
    ] = False,
) -> None:
    """Sync each source on its own schedule (interval_s in its config table)."""
    import threading

    application = _app()
    if jobs:
        if application.settings.worker.queue != "rq":
            msg = '--jobs consumes the Redis job queue: set [worker] queue = "rq" in the config first'
            raise InputError(msg)
        application.job_queue.work(application, burst=burst)
        return
    scheduler = application.sync_worker()
    if once:
        for line in scheduler.run_once():
            out.print(line, markup=False)
        return
    stop = threading.Event()
    try:
        scheduler.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def sources() -> None:
    """List the configured sources, their last sync and when the worker runs them next."""
    import time

    import redis

    from core.sync.worker import next_run_at

    application = _app()
    service = application.sync_service
    if not service.names:
        out.print("No sources configured. Add a [connectors.NAME] table to the config.", markup=False)
        return
    # The sync status lives in Redis, and reading it treats a dead Redis as "nothing recorded":
    # ask Redis once, so that a source is not reported as never synced when that is unknown.
    try:
        application.redis.ping()
        status_note = ""
    except (ServiceUnavailable, redis.RedisError, OSError):
        status_note = "status unavailable (Redis unreachable)"
    now = time.time()
    rows = []
    for name in service.names:
        connector = application.connector(name)
        interval = application.settings.connectors[name].interval_s
        if status_note:
            last, next_run = None, "unknown" if interval else None
        else:
            last = service.last_report(name)
            next_run = "running" if service.running(name) else next_run_at(interval, last, now)
        rows.append(
            (name, connector.kind, connector.describe(), application.store.count(name), last, next_run)
        )
    render_sources_table(rows, status_note=status_note)


serve = typer.Typer(help="Run a chat frontend.", no_args_is_help=True)
app.add_typer(serve, name="serve")


@serve.command("slack")
def serve_slack(
    http: Annotated[
        bool, typer.Option("--http", help="Serve the Events API over HTTP at /slack/events.")
    ] = False,
    socket: Annotated[
        bool, typer.Option("--socket", help="Connect in Socket Mode (SLACK_APP_TOKEN); the default.")
    ] = False,
    port: Annotated[int, typer.Option(help="HTTP port, with --http.")] = 3000,
    host: Annotated[
        str, typer.Option(help="Address to bind, with --http; 0.0.0.0 listens on every interface.")
    ] = "127.0.0.1",
) -> None:
    """Answer in Slack channels, threads and DMs."""
    if http and socket:
        msg = "choose one of --http and --socket"
        raise InputError(msg)
    from bot.slack.app import serve_slack as run

    run(_app(), http=http, port=port, host=host)


@serve.command("discord")
def serve_discord() -> None:
    """Answer in Discord channels, threads and DMs (DISCORD_TOKEN)."""
    from bot.discord.client import serve_discord as run

    run(_app())


app.add_typer(models_commands(lambda: _app()), name="models")

evaluate = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)
app.add_typer(evaluate, name="eval")


@evaluate.command("retrieval")
def eval_retrieval(
    dataset: Annotated[
        Path, typer.Option(help="A BEIR-format directory: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
    ],
    split: Annotated[str, typer.Option(help="Which qrels file to judge with.")] = "test",
    variants: Annotated[
        str, typer.Option(help="Comma-separated: dense, bm25, hybrid, hybrid@ALPHA.")
    ] = "hybrid",
    max_queries: Annotated[int, typer.Option(help="Evaluate only the first N judged queries (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """nDCG@10, Recall@10/100, MRR@10 and query latency of the configured pipeline on a BEIR dataset."""
    from bot.console import render_retrieval_table
    from core.evaluation.retrieval import evaluate_pipeline

    scores = evaluate_pipeline(_app(), dataset, split, variants, max_queries, SyncProgressView)
    if as_json:
        out.print_json(json.dumps({**scores[0].as_dict(), "variants": [s.as_dict() for s in scores]}))
    else:
        render_retrieval_table(scores)


@evaluate.command("compare")
def eval_compare(
    dataset: Annotated[Path, typer.Option(help="A SQuAD v2.0 JSON file: data → paragraphs → context, qas.")],
    modes: Annotated[
        str, typer.Option(help="Comma-separated: base, rag, finetuned, hybrid.")
    ] = "base,rag,finetuned,hybrid",
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for report.md, report.html, charts, answers.jsonl.")
    ] = Path("compare-report"),
    max_questions: Annotated[
        int, typer.Option(help="Ask only N questions, drawn with a fixed seed (0: all).")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the per-mode metrics as one object.")
    ] = False,
) -> None:
    """The same questions through each answer mode: EM/F1, abstention, citations, latency, tokens."""
    from bot.console import render_compare_table
    from core.evaluation.compare import compare_modes
    from core.evaluation.report import write_report

    comparison = compare_modes(_app(), dataset, modes, max_questions, SyncProgressView)
    for mode, why in comparison.skipped.items():
        err.print(f"skipped {mode}: {why}", markup=False)
    files = write_report(comparison, out_dir)
    if as_json:
        out.print_json(json.dumps(comparison.as_dict()))
    else:
        render_compare_table(comparison)
        out.print(f"Report: {files[0]} ({files[1].name}, charts and answers.jsonl beside it)", markup=False)


finetune = typer.Typer(help="Fine-tune models on your own data.", no_args_is_help=True)
app.add_typer(finetune, name="finetune")


@finetune.command("retriever")
def finetune_retriever(
    dataset: Annotated[
        Path, typer.Option(help="A BEIR-format directory: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
    ],
    split: Annotated[
        str, typer.Option(help="Which qrels file holds the (question, passage) pairs.")
    ] = "train",
    epochs: Annotated[int, typer.Option(help="Passes over the training pairs.")] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per step; the other passages are the negatives.")
    ] = 16,
    max_pairs: Annotated[
        int, typer.Option(help="Train on at most N pairs, drawn with a fixed seed (0: all).")
    ] = 0,
    holdout: Annotated[float, typer.Option(help="Share of queries held out and scored before/after.")] = 0.2,
    eval_docs: Annotated[
        int, typer.Option(help="Score against the relevant documents plus N others (0: the whole corpus).")
    ] = 0,
    name: Annotated[str, typer.Option(help="Version name in the registry (default: from the data).")] = "",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where to save the model (default: DATA_DIR/models/NAME).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fine-tune the local embedder on (question, passage) pairs and register it as an embedder version."""
    from bot.console import render_retriever_tuning
    from core.finetune.retriever import TuningOptions
    from core.finetune.retriever import finetune_retriever as tune

    options = TuningOptions(split, epochs, batch_size, max_pairs, holdout, eval_docs, name=name, out=out_dir)
    result = tune(_app(), dataset, options, SyncProgressView)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        render_retriever_tuning(result)


from bot.finetune_cli import finetune_dataset, finetune_run, serve_model  # noqa: E402 - beside the group

finetune.command("dataset")(finetune_dataset)
finetune.command("run")(finetune_run)
app.command("serve-model")(serve_model)


@app.command()
def demo() -> None:
    """Sync the bundled handbook, answer a sample question, then open a chat (in a terminal)."""
    out.print("[bold]1. Syncing the configured sources[/bold]")
    _sync([], full=False)
    out.print(f"\n[bold]2. Asking:[/bold] {DEMO_QUESTION}\n")
    render_stream(_app().assistant.stream(_question(DEMO_QUESTION, None, [], [], "")))
    if sys.stdin.isatty() and sys.stdout.isatty():
        out.print("\n[bold]3. Your turn[/bold]")
        _chat(None)
    else:
        out.print('\nRun `archivist chat` for a conversation, or `archivist ask "..."` for one answer.')


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # A normal exit, so exit hooks run: the embedded Redis stops with us instead of lingering.
    raise SystemExit(128 + signum)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except ArchivistError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_ERROR)
    except OSError as exc:  # the disk, not the user: read-only or full data dir, a vanished file
        _report_unexpected(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), exc)
    except Exception as exc:  # noqa: BLE001 - the last boundary: one line, the traceback only with -v
        _report_unexpected(f"{type(exc).__name__}: {exc}", exc)


def _report_unexpected(what: str, exc: BaseException) -> None:
    if _state.get("verbose"):
        logging.getLogger("archivist").error("unexpected failure", exc_info=exc)
    err.print(f"error: {what} (run with -v for details)", markup=False)
    sys.exit(EXIT_ERROR)
