"""`archivist`: sync sources, ask questions and chat from the command line.

User errors (bad config, unknown source, unreachable service) print one line and
exit non-zero; `main()` here is the CLI's single error boundary. The commands live
beside this module: ask, sync, serve, models, evaluate, finetune, demo.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import ask, context, demo, evaluate, finetune, identities, serve, sync
from bot.cli.console import err
from bot.cli.models import models_commands
from core.errors import ArchivistError, user_message

EXIT_ERROR = context.EXIT_ERROR  # the exit status of every error line

app = typer.Typer(
    help="Archivist answers your team's questions from its own documents, with citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    config: Annotated[
        Path | None, typer.Option(help="Config file (default: $ARCHIVIST_CONFIG or config/archivist.toml).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    context.set_options(config, verbose)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("archivist").setLevel(logging.INFO)


# Registration order is the order `archivist --help` lists the commands in.
app.command()(ask.ask)
app.command()(ask.chat)
app.command()(sync.sync)
app.command()(sync.worker)
app.command()(sync.sources)
app.add_typer(serve.serve, name="serve")
app.add_typer(models_commands(lambda: context.application()), name="models")
app.add_typer(evaluate.evaluate, name="eval")
app.add_typer(finetune.finetune, name="finetune")
app.add_typer(identities.identities, name="identities")
app.command("serve-model")(serve.serve_model)
app.command()(demo.demo)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # A normal exit, so exit hooks run: the embedded Redis stops with us instead of lingering.
    raise SystemExit(128 + signum)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except ArchivistError as exc:
        err.print(f"error: {user_message(exc, operator=True)}", markup=False)
        sys.exit(EXIT_ERROR)
    except OSError as exc:  # the disk, not the user: read-only or full data dir, a vanished file
        _report_unexpected(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), exc)
    except Exception as exc:  # noqa: BLE001 - the last boundary: one line, the traceback only with -v
        _report_unexpected(f"{type(exc).__name__}: {exc}", exc)


def _report_unexpected(what: str, exc: BaseException) -> None:
    if context.verbose():
        logging.getLogger("archivist").error("unexpected failure", exc_info=exc)
    err.print(f"error: {what} (run with -v for details)", markup=False)
    sys.exit(EXIT_ERROR)
