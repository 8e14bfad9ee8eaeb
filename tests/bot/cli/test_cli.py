"""The `archivist` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BASE_CONFIG

ARCHIVIST = [sys.executable, "-c", "from bot.cli import main; main()"]


def _run(
    args: list[str], config: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARCHIVIST_CONFIG": str(config), **(extra_env or {})}
    env.pop("REDIS_URL", None) if not extra_env or "REDIS_URL" not in extra_env else None
    return subprocess.run(
        [*ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


@pytest.fixture
def config(kb: Path, write_config) -> Path:
    return write_config(BASE_CONFIG)


@pytest.mark.slow
def test_sync_sources_and_ask_json(config: Path, kb: Path) -> None:
    synced = _run(["sync"], config)
    assert synced.returncode == 0, synced.stderr
    assert "handbook:" in synced.stdout and "added" in synced.stdout and "0 failed" in synced.stdout

    listed = _run(["sources"], config)
    assert listed.returncode == 0 and "handbook" in listed.stdout and "filesystem" in listed.stdout
    assert "not synced yet" not in listed.stdout

    asked = _run(["ask", "--json", "What is the yearly learning budget?"], config)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert {"answer", "sources", "mode", "model", "timings_ms"} <= set(answer)
    assert answer["mode"] == "rag" and answer["sources"]
    assert {"title", "path", "source", "score", "snippet"} <= set(answer["sources"][0])

    off_topic = json.loads(_run(["ask", "--json", "Who won the 1998 World Cup?"], config).stdout)
    assert off_topic["sources"] == [] and "don't cover" in off_topic["answer"]


def test_bad_config_prints_one_line_and_no_traceback(write_config) -> None:
    result = _run(["sources"], write_config("[retrieval]\ntop_k = 'lots'\n"))
    assert result.returncode == 1
    assert "retrieval.top_k" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_unknown_source_is_named(config: Path) -> None:
    result = _run(["sync", "wiki"], config)
    assert result.returncode == 1
    assert "unknown source 'wiki'" in result.stderr and "handbook" in result.stderr
    assert "Traceback" not in result.stderr


def test_partial_sync_exits_3_and_lists_the_failure(config: Path, kb: Path) -> None:
    (kb / "broken.docx").write_bytes(b"not a zip")
    result = _run(["sync"], config)
    assert result.returncode == 3
    assert "failed: broken.docx" in result.stdout


def test_empty_question_is_a_user_error(config: Path) -> None:
    result = _run(["ask", "  "], config)
    assert result.returncode == 1 and "empty" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_commands() -> None:
    result = subprocess.run([*ARCHIVIST, "--help"], capture_output=True, text=True, check=True)
    for command in ("demo", "chat", "ask", "sync", "sources"):
        assert command in result.stdout


def _run_with_input(args: list[str], config: Path, stdin: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARCHIVIST_CONFIG": str(config)}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [*ARCHIVIST, *args], input=stdin, capture_output=True, text=True, env=env, timeout=600, check=False
    )


@pytest.mark.slow
def test_demo_syncs_answers_and_points_to_chat(config: Path) -> None:
    result = _run_with_input(["demo"], config, "")
    assert result.returncode == 0, result.stderr
    assert "handbook:" in result.stdout and "added" in result.stdout
    assert "Sources" in result.stdout and "pto-policy.md" in result.stdout
    assert "archivist chat" in result.stdout  # no terminal: it says how to go on instead of prompting


@pytest.mark.slow
def test_chat_remembers_and_forgets(config: Path) -> None:
    assert _run(["sync"], config).returncode == 0
    session = "What is the yearly learning budget?\nAnd who approves it?\n/forget\n/exit\n"
    result = _run_with_input(["chat"], config, session)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Sources") >= 2
    assert "learning-budget.md" in result.stdout
    assert "Memory of this conversation cleared." in result.stdout


@pytest.mark.slow
def test_named_conversation_carries_across_invocations(config: Path) -> None:
    assert _run(["sync"], config).returncode == 0
    first = _run(
        ["ask", "--json", "--conversation", "c1", "How many vacation days do we get in the Netherlands?"],
        config,
    )
    follow = json.loads(
        _run(["ask", "--json", "--conversation", "c1", "Can unused ones roll over?"], config).stdout
    )
    assert first.returncode == 0
    assert "vacation days" in follow["standalone_query"]  # memory persisted in the embedded Redis
    fresh = json.loads(
        _run(["ask", "--json", "--conversation", "c2", "Can unused ones roll over?"], config).stdout
    )
    assert fresh["standalone_query"] == "Can unused ones roll over?"
