"""Hostile or mistaken input at the command line and in the config file: one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings
from tests.conftest import BASE_CONFIG

ARCHIVIST = [sys.executable, "-c", "from bot.cli import main; main()"]
NOT_UTF8 = b"\xff\xfe caf\xe9"  # Latin-1 bytes, as a terminal in another encoding sends them
REDIS_DOWN = "redis://127.0.0.1:1"  # nothing listens on port 1


def _run(
    args: list[str | bytes], config: Path, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "ARCHIVIST_CONFIG": str(config), **(env or {})}
    if not env or "REDIS_URL" not in env:
        environ.pop("REDIS_URL", None)
    done = subprocess.run(
        [*ARCHIVIST, *args], input=stdin, capture_output=True, env=environ, timeout=600, check=False
    )
    decode = lambda raw: raw.decode("utf-8", "replace")  # noqa: E731
    return subprocess.CompletedProcess(done.args, done.returncode, decode(done.stdout), decode(done.stderr))


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def config(kb: Path, write_config) -> Path:
    return write_config(BASE_CONFIG)


def test_a_question_that_is_not_utf8_is_refused_in_one_line(config: Path) -> None:
    line = _one_error_line(_run(["ask", NOT_UTF8], config))
    assert "the question is not valid UTF-8 text" in line


# A UTF-8 locale such as en_US.UTF-8 reads stdin strictly (input() itself raises); C.UTF-8 does not.
@pytest.mark.parametrize("stdin_errors", ["strict", "surrogateescape"])
def test_chat_refuses_a_line_that_is_not_utf8_and_goes_on(config: Path, stdin_errors: str) -> None:
    env = {"PYTHONIOENCODING": f"utf-8:{stdin_errors}"}
    result = _run(["chat"], config, env=env, stdin=NOT_UTF8 + b"\n" + NOT_UTF8 + b"\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("the question is not valid UTF-8 text") == 2  # the chat went on
    assert result.stdout.count("you ›") == 3


def test_an_unknown_source_on_ask_is_named_with_the_configured_ones(config: Path) -> None:
    line = _one_error_line(_run(["ask", "--source", "wiki", "What is the learning budget?"], config))
    assert "unknown source 'wiki'" in line and "handbook" in line


def test_an_unknown_connector_option_lists_the_keys_every_source_takes(kb: Path, write_config) -> None:
    config = write_config('[connectors.handbook]\ntype = "filesystem"\npath = "kb"\npubilc = true\n')
    line = _one_error_line(_run(["sync"], config))
    assert "pubilc" in line
    known = line.split("known: ", 1)[1]
    for key in ("path", "public", "principals", "interval_s", "type"):
        assert f"'{key}'" in known


def test_no_sources_says_which_table_to_add(write_config) -> None:
    result = _run(["sources"], write_config('data_dir = "data"\n'))
    assert result.returncode == 0, result.stderr
    assert "Add a [connectors.NAME] table to the config." in result.stdout


def test_the_sources_table_prints_brackets_in_paths_as_written(
    tmp_path: Path, kb: Path, write_config
) -> None:
    odd = kb.rename(tmp_path / "kb [red]draft")  # rich markup would print "kb draft" in red
    config = write_config(BASE_CONFIG.replace('path = "kb"', f'path = "{odd.name}"'))
    result = _run(["sources"], config, env={"COLUMNS": "240"})  # wide enough for the table
    assert result.returncode == 0, result.stderr
    assert "kb [red]draft" in result.stdout


def test_sources_with_redis_down_does_not_claim_never_synced(tmp_path: Path, write_config) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "leave.md").write_text("# Leave\n\nEveryone gets 25 vacation days a year.\n")
    config = write_config(BASE_CONFIG)
    down = {"REDIS_URL": REDIS_DOWN}
    assert _run(["sync"], config, env=down).returncode == 0  # syncing works without Redis

    result = _run(["sources"], config, env=down)
    assert result.returncode == 0, result.stderr
    assert "status unavailable (Redis unreachable)" in result.stdout
    assert "not synced yet" not in result.stdout and "never" not in result.stdout
    assert "1 chunks" in result.stdout  # what the index holds is still shown


def test_a_redis_password_in_the_config_file_is_refused(write_config) -> None:
    config = write_config('[redis]\nurl = "redis://:hunter2@cache.internal:6379/0"\n')
    line = _one_error_line(_run(["sources"], config))
    assert "redis.url" in line and "REDIS_URL" in line
    assert "hunter2" not in line  # the secret never echoes back


def test_a_redis_password_from_the_environment_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "archivist.toml"
    path.write_text('[redis]\nurl = "redis://cache.internal:6379/0"\n', encoding="utf-8")
    settings = load_settings(path, environ={"REDIS_URL": "redis://:hunter2@cache.internal:6379/0"})
    assert settings.redis.url == "redis://:hunter2@cache.internal:6379/0"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[store]\nweaviate_url = "https://admin:hunter2@weaviate.internal"\n', "store.weaviate_url"),
        (
            '[models.base]\nprovider = "openai"\nbase_url = "https://me:hunter2@llm.internal/v1"\n',
            "models.base.base_url",
        ),
        (
            '[embeddings]\nprovider = "openai"\nbase_url = "http://me:hunter2@emb.internal/v1"\n',
            "embeddings.base_url",
        ),
        (
            '[connectors.code]\ntype = "git"\nrepo = "https://x-access-token:hunter2@git.example/a/b.git"\n',
            "connectors.code.repo",
        ),
    ],
)
def test_a_password_in_any_url_of_the_config_file_is_refused(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "archivist.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    assert key in str(raised.value) and "password" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_user_name_without_password_in_a_url_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "archivist.toml"
    path.write_text('[connectors.code]\ntype = "git"\nrepo = "https://me@git.example/a/b.git"\n')
    assert (
        load_settings(path, environ={}).connectors["code"].options()["repo"]
        == "https://me@git.example/a/b.git"
    )
