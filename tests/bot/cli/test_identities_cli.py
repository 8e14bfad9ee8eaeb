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


def test_an_admin_approves_or_declines_a_discord_link_request(config: Path, settings) -> None:
    from core.answering.identities import IdentityMap
    from core.app import App
    from tests.conftest import stop_embedded_redis

    requester = App(settings)  # what /link in Discord does, through the same Redis as the CLI
    try:
        IdentityMap(lambda: requester.redis).request_link("discord:user:77", "ada@acme.example")
        requester.redis.save()  # the embedded Redis is stopped without saving below
    finally:
        stop_embedded_redis(requester)

    listed = _run(["identities", "requests"], config)
    assert "discord:user:77 asks to read as email:ada@acme.example" in listed.stdout
    assert "reads as itself only" in _run(["identities", "show", "discord:user:77"], config).stdout

    approved = _run(["identities", "approve", "discord:user:77"], config)
    assert approved.returncode == 0 and "now reads as email:ada@acme.example" in approved.stdout
    assert "google:user:ada@acme.example" in _run(["identities", "show", "discord:user:77"], config).stdout
    assert "No link requests wait." in _run(["identities", "requests"], config).stdout

    again = _run(["identities", "decline", "discord:user:77"], config)
    assert again.returncode != 0 and "no link request waits" in again.stderr
