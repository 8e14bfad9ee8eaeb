"""`archivist identities` as an admin runs it: links survive between commands, bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.cli.test_cli import _run
from tests.conftest import BASE_CONFIG


@pytest.fixture
def config(kb: Path, write_config) -> Path:
    return write_config(BASE_CONFIG)


def test_link_show_list_unlink(config: Path) -> None:
    linked = _run(["identities", "link", "discord:user:4242", "Ada@Acme.example"], config)
    assert linked.returncode == 0, linked.stderr
    assert "discord:user:4242 now reads as email:ada@acme.example" in linked.stdout

    shown = _run(["identities", "show", "discord:user:4242"], config)
    assert "linked: email:ada@acme.example (by admin" in shown.stdout
    assert "google:user:ada@acme.example" in shown.stdout  # what the address stands for
    assert _run(["identities", "list"], config).stdout.split() == ["discord:user:4242"]

    assert (
        "no longer reads as"
        in _run(["identities", "unlink", "discord:user:4242", "ada@acme.example"], config).stdout
    )
    assert "reads as itself only" in _run(["identities", "show", "discord:user:4242"], config).stdout


def test_a_link_to_a_channel_is_refused_in_one_line(config: Path) -> None:
    result = _run(["identities", "link", "slack:user:U0BOB", "slack:channel:C0SECRET"], config)
    assert result.returncode != 0 and "chat principal" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
