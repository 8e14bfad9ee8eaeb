"""`archivist serve slack|discord` (chat frontends) and `archivist serve-model` (a local model over HTTP)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import context
from bot.cli.console import out
from core.errors import ConfigError, InputError

serve = typer.Typer(help="Run a chat frontend.", no_args_is_help=True)


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

    run(context.application(), http=http, port=port, host=host)


@serve.command("discord")
def serve_discord() -> None:
    """Answer in Discord channels, threads and DMs (DISCORD_TOKEN)."""
    from bot.discord.client import serve_discord as run

    run(context.application())


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False)


def serve_model(
    model: Annotated[Path, typer.Option(help="A merged model directory (finetune run --provider local).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 serves the network.")] = "127.0.0.1",
    name: Annotated[str, typer.Option(help="Model id clients ask for (default: the directory name).")] = "",
    api_key_env: Annotated[
        str, typer.Option(help="If set, clients must send the key held in this variable.")
    ] = "",
) -> None:
    """Serve a local model through an OpenAI-compatible /v1/chat/completions endpoint."""
    from core.finetune.model_server import ModelServer, open_model

    key = os.environ.get(api_key_env, "") if api_key_env else ""
    if api_key_env and not key:
        msg = f"--api-key-env names {api_key_env}, which is not set"
        raise ConfigError(msg)
    loaded = open_model(model, name)
    try:
        server = ModelServer(loaded, host, port, key)
    except OSError as exc:
        msg = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise InputError(msg) from exc
    _say(f"serving {loaded.name} on {loaded.device} at {server.base_url}")
    _say(
        f"answer with it: archivist models register {loaded.name}-served --model {loaded.name} "
        f"--base-url {server.base_url} --promote"
    )
    _say(
        f'  or in the config: [models.finetuned] provider = "openai", base_url = "{server.base_url}", '
        f'model = "{loaded.name}"' + (f', api_key_env = "{api_key_env}"' if api_key_env else "")
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        _say("stopped")
