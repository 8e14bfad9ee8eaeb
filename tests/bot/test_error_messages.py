"""Slack and Discord tell a person the same thing about the same error: core's one table."""

from __future__ import annotations

import importlib

import pytest

from bot.discord.errors import describe
from bot.slack.failures import user_message as slack_message
from core.errors import (
    AccessDenied,
    ConfigError,
    InputError,
    ModelError,
    ServiceUnavailable,
    SourceError,
    StorageError,
    UnknownSourceError,
    user_message,
)

ERRORS = [
    InputError("The question is empty."),
    UnknownSourceError("unknown source 'wiki'"),
    AccessDenied("only admins may sync"),
    ServiceUnavailable("Redis is down"),
    ModelError("the endpoint answered 500"),
    ConfigError("models.base: no GGUF file"),
    SourceError("the wiki answered 401"),
    StorageError("the disk is full"),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda exc: type(exc).__name__)
def test_both_frontends_word_an_error_alike(exc: Exception) -> None:
    sentence = user_message(exc)
    assert str(exc) in sentence
    assert describe(exc) == sentence
    assert slack_message(exc).endswith(sentence)  # Slack adds only a :warning: in front


def test_a_model_failure_says_what_failed_and_what_to_do() -> None:
    # Slack used to have no wording for this and said only "that did not work".
    text = slack_message(ModelError("timeout after 30 s"))
    assert "language model failed" in text and "try again" in text


@pytest.mark.parametrize("exc", ERRORS, ids=lambda exc: type(exc).__name__)
def test_the_cli_words_an_error_from_the_same_table_for_the_operator(exc: Exception) -> None:
    line = user_message(exc, operator=True)
    assert str(exc) in line
    assert "tell an admin" not in line and "An admin needs" not in line  # the operator is the admin


def test_the_cli_boundary_prints_the_tables_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    cli = importlib.import_module("bot.cli.main")  # the package re-exports main(), the function

    def fail() -> None:
        raise ModelError("the endpoint answered 500")

    monkeypatch.setattr(cli, "app", fail)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == cli.EXIT_ERROR
    assert capsys.readouterr().err.strip() == "error: the language model failed: the endpoint answered 500"
