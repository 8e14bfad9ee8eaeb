"""`archivist models ...` and the route fields of `archivist ask --json`.

Most tests drive the real Typer app in-process against an App whose models are local
OpenAI stand-ins; one runs the real process to check exit codes and error lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app, context
from core.app import App
from core.errors import InputError
from core.models.fallbacks import FallbackCounts
from tests.conftest import BASE_CONFIG
from tests.fakes.openai_server import FakeOpenAI, fake_openai

VACATION = "How many vacation days do employees in the Netherlands get?"


@pytest.fixture
def tuned() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


@pytest.fixture
def core_app(make_remote_app, tuned, monkeypatch: pytest.MonkeyPatch) -> App:
    application = make_remote_app(
        '\n[assistant]\ndefault_mode = "auto"\npromotion_check_s = 0\n'
        '[router.routes.rag]\nexamples = ["How many vacation days do we get?", "How do I set up the VPN?"]\n'
        '[router.routes.finetuned]\nexamples = ["Write a friendly welcome message for a new colleague."]\n'
    )
    monkeypatch.setattr(context, "application", lambda: application)
    return application


@pytest.fixture
def bare_app(make_remote_app, monkeypatch: pytest.MonkeyPatch) -> App:
    """Nothing synced: for commands that never search."""
    application = make_remote_app(sync=())
    monkeypatch.setattr(context, "application", lambda: application)
    return application


def _invoke(*args: str):  # noqa: ANN202 - click's Result
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def _register(tuned: FakeOpenAI, name: str, *extra: str):  # noqa: ANN202
    return _invoke("models", "register", name, "--model", f"ft:{name}", "--base-url", tuned.base_url, *extra)


def test_register_list_promote_rollback(core_app: App, tuned: FakeOpenAI) -> None:
    empty = _invoke("models", "list")
    assert empty.exit_code == 0 and "No model versions registered" in empty.output
    assert "No fine-tuned model" in empty.output

    first = _register(tuned, "hb-v1", "--base-model", "gpt-test", "--data-hash", "3f9a2c41d0b7e655aa")
    assert first.exit_code == 0, first.output
    assert f"Registered hb-v1 (chat, ft:hb-v1 at {tuned.base_url})" in first.output
    assert _register(tuned, "hb-v2").exit_code == 0
    core_app.model_registry.set_scores("hb-v1", {"f1": 0.41})

    promoted = _invoke("models", "promote", "hb-v1")
    assert promoted.exit_code == 0 and "Promoted hb-v1 (chat)" in promoted.output

    listing = json.loads(_invoke("models", "list", "--json").output)
    rows = {row["name"]: row for row in listing["versions"]}
    assert rows["hb-v1"]["promoted"] and not rows["hb-v2"]["promoted"]
    assert rows["hb-v1"]["base_model"] == "gpt-test" and rows["hb-v1"]["eval_scores"] == {"f1": 0.41}
    assert rows["hb-v1"]["training_data_hash"] == "3f9a2c41d0b7e655aa"
    assert listing["promoted"] == {"chat": "hb-v1", "embedder": None}
    assert listing["finetuned_in_use"] == {"source": "registry", "name": "hb-v1", "model": "ft:hb-v1"}

    text = _invoke("models", "list").output
    assert "hb-v1" in text and "hb-v2" in text and "3f9a2c41d0b7" in text and "f1=0.41" in text
    assert "3f9a2c41d0b7e" not in text  # the hash is shortened
    assert "answers come from hb-v1 (promoted)" in text

    assert _invoke("models", "promote", "hb-v2").exit_code == 0
    back = _invoke("models", "rollback")
    assert back.exit_code == 0 and "hb-v1 is live again" in back.output
    assert core_app.model_registry.promoted_name("chat") == "hb-v1"
    assert _invoke("models", "rollback", "--kind", "chat").exit_code == 0
    last = _invoke("models", "rollback")
    assert isinstance(last.exception, InputError) and "nothing to roll back" in str(last.exception)


def test_list_shows_fallbacks_per_version(core_app: App, tuned: FakeOpenAI) -> None:
    assert _register(tuned, "hb-v1", "--promote").exit_code == 0
    tuned.fail_with = 500
    answer = json.loads(_invoke("ask", "--json", "--mode", "hybrid", VACATION).output)
    assert answer["model"] == "gpt-test" and "hb-v1 failed" in answer["fallback"]

    listing = json.loads(_invoke("models", "list", "--json").output)
    fallbacks = listing["versions"][0]["fallbacks"]
    assert fallbacks["count"] == 1 and "500" in fallbacks["last_reason"]
    text = _invoke("models", "list").output
    assert "Last fallback: hb-v1" in text
    assert FallbackCounts(core_app.redis).all()["hb-v1"].count == 1


BAD_INPUT = [
    (["models", "promote", "nope"], "no model version named 'nope'"),
    (["models", "register", "bad name", "--model", "m"], "not a usable name"),
    (["models", "register", "x", "--model", "m", "--base-url", "ftp://host"], "must be an http(s) URL"),
    (["models", "register", "x", "--model", "  "], "--model is empty"),
    (["models", "register", "x", "--model", "/no/such.gguf", "--provider", "llamacpp"], "nothing at"),
    (["models", "register", "x", "--model", "m", "--provider", "local"], "must be one of openai, llamacpp"),
    (["models", "list", "--kind", "vision"], "--kind must be one of chat, embedder"),
    (["models", "rollback", "--kind", "vision"], "--kind must be one of chat, embedder"),
]


def test_bad_input_is_refused_with_a_reason(bare_app: App) -> None:
    for args, message in BAD_INPUT:
        result = _invoke(*args)
        assert isinstance(result.exception, InputError), (args, result.output)
        assert message in str(result.exception), args
    assert bare_app.model_registry.list() == []  # nothing half-registered


def test_a_name_cannot_be_registered_twice(bare_app: App, tuned: FakeOpenAI) -> None:
    assert _register(tuned, "hb-v1").exit_code == 0
    again = _register(tuned, "hb-v1")
    assert isinstance(again.exception, InputError) and "already registered" in str(again.exception)


def test_ask_json_shows_the_route_and_why(core_app: App, tuned: FakeOpenAI) -> None:
    routed = json.loads(_invoke("ask", "--json", VACATION).output)
    assert routed["route"] == "rag" and routed["route_reason"].startswith("nearest examples: rag ")
    assert routed["fallback"] is None and routed["error"] is None

    given = json.loads(_invoke("ask", "--json", "--mode", "rag", VACATION).output)
    assert given["route"] == "rag" and given["route_reason"] == "--mode given"

    # auto would pick finetuned here, but no fine-tuned model exists: the router says so
    writing = json.loads(_invoke("ask", "--json", "Write a short welcome message for Maria.").output)
    assert writing["route"] == "rag" and "finetuned skipped: no fine-tuned model" in writing["route_reason"]

    bad = _invoke("ask", "--json", "--mode", "smart", VACATION)
    assert isinstance(bad.exception, InputError) and "rag, finetuned, hybrid, auto" in str(bad.exception)


def test_the_real_command_prints_one_line_and_exits_1_on_an_unknown_version(kb: Path, write_config) -> None:
    env = {**os.environ, "ARCHIVIST_CONFIG": str(write_config(BASE_CONFIG))}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "models", "promote", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "no model version named 'nope' (registered: none registered)" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
