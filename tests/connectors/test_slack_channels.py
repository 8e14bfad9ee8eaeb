"""The Slack channels connector against a local server speaking Slack's Web API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.slack_channels import SlackChannelsConnector
from connectors.slack_text import plain_text, ts_key
from core.errors import ConfigError, SourceError
from core.settings import ConnectorSettings
from core.sync.connector import PollsChanges
from core.sync.registry import build_connector
from tests.connectors.saas_helpers import Sleeps, drain
from tests.fakes.slack_server import BOT_ID, BOT_USER, TOKEN, FakeSlack

GENERAL, LEADERSHIP = "C0GENERAL", "G0LEADERS"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake.api_url)
    fake.add_user("U0ANN", "Ann")
    fake.add_user("U0BOB", "Bob")
    fake.add_channel(GENERAL, "general")
    fake.add_channel(LEADERSHIP, "leadership", is_private=True, members=["U0ANN", "U0BOB"])
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def make(slack: FakeSlack, tmp_path: Path) -> Callable[..., SlackChannelsConnector]:
    def build(**options: object) -> SlackChannelsConnector:
        options.setdefault("channels", [GENERAL])
        connector = build_connector("slack", ConnectorSettings(type="slack_channels", **options), tmp_path)
        assert isinstance(connector, SlackChannelsConnector) and isinstance(connector, PollsChanges)
        connector.sleep = Sleeps()
        return connector

    return build


def _vpn_thread(slack: FakeSlack) -> str:
    parent = slack.post(
        GENERAL, "How do I reset the <https://vpn.acme.example|VPN>? cc <@U0BOB>", user="U0ANN"
    )
    slack.post(GENERAL, "Use the axolotl client &amp; restart.", user="U0BOB", thread_ts=parent)
    slack.post(
        GENERAL, "Archivist answer: see the VPN guide [1].", user=BOT_USER, bot_id=BOT_ID, thread_ts=parent
    )
    slack.post(GENERAL, "Thanks, that worked!", user="U0ANN", thread_ts=parent, subtype="thread_broadcast")
    return parent


def test_full_poll_reads_threads_across_pages(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    parent = _vpn_thread(slack)
    slack.post(GENERAL, "", user="U0BOB", subtype="channel_join")
    slack.post(GENERAL, "Archivist says hello", user=BOT_USER, bot_id=BOT_ID)
    singles = [slack.post(GENERAL, f"Announcement number {n}", user="U0ANN") for n in range(230)]

    polled = drain(make().poll(None))

    assert set(polled.documents) == {f"{GENERAL}:{parent}"} | {f"{GENERAL}:{ts}" for ts in singles}
    assert not polled.failures and len(polled.ids_in_order) == 231
    thread = polled.documents[f"{GENERAL}:{parent}"]
    assert thread.title == "#general: How do I reset the VPN (https://vpn.acme.example)? cc @Bob"
    assert "**Bob**" in thread.text and "Use the axolotl client & restart." in thread.text
    assert "Thanks, that worked!" in thread.text  # the broadcast reply, inside its thread
    assert "Archivist answer" not in thread.text  # never index the bot's own answers
    assert thread.url == f"https://acme.slack.com/archives/{GENERAL}/p{parent.replace('.', '')}"
    assert thread.acl.public
    assert (
        len([r for r in slack.requests if r.path == "/api/conversations.history"]) == 2
    )  # 232 messages, 200 a page


def test_incremental_poll_reads_new_threads_and_new_replies(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    parent = _vpn_thread(slack)
    quiet = slack.post(GENERAL, "Lunch is at noon.", user="U0BOB")
    ancient = slack.post(GENERAL, "Old thread from long ago", user="U0ANN", ts="1600000000.000100")
    connector = make()
    first = drain(connector.poll(None))
    assert set(first.documents) == {f"{GENERAL}:{ts}" for ts in (parent, quiet, ancient)}

    slack.post(
        GENERAL, "Also check the firewall.", user="U0BOB", thread_ts=parent
    )  # a new reply, same parent ts
    new = slack.post(GENERAL, "Who owns the wiki?", user="U0ANN")
    slack.post(GENERAL, "Too late to matter", user="U0BOB", thread_ts=ancient)  # older than the lookback
    slack.requests.clear()
    second = drain(connector.poll(first.cursor))

    assert set(second.documents) == {f"{GENERAL}:{parent}", f"{GENERAL}:{new}"}
    assert "Also check the firewall." in second.documents[f"{GENERAL}:{parent}"].text
    history = [r.form() for r in slack.requests if r.path == "/api/conversations.history"]
    assert history and all(float(h["oldest"]) > 1_700_000_000 for h in history)  # a 30-day window only

    slack.edit(GENERAL, quiet, "Lunch moved to 1 pm.")
    third = drain(connector.poll(second.cursor))
    assert (
        set(third.documents) == {f"{GENERAL}:{quiet}"}
        and "1 pm" in third.documents[f"{GENERAL}:{quiet}"].text
    )
    assert not drain(connector.poll(third.cursor)).documents


def test_rate_limit_then_success(slack: FakeSlack, make: Callable[..., SlackChannelsConnector]) -> None:
    _vpn_thread(slack)
    slack.rate_limit("/api/conversations.replies", times=2, headers={"Retry-After": "4"})
    connector = make()
    polled = drain(connector.poll(None))
    assert len(polled.documents) == 1
    assert connector.sleep == [4.0, 4.0]


@pytest.mark.parametrize("error", ["invalid_auth", "token_expired", "token_revoked"])
def test_token_errors_name_the_variable(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector], error: str
) -> None:
    slack.errors["auth.test"] = error
    with pytest.raises(SourceError, match=f"SLACK_BOT_TOKEN \\({error}\\)"):
        drain(make().poll(None))
    with pytest.raises(SourceError, match="SLACK_BOT_TOKEN"):
        list(make().list_ids())


def test_wrong_or_missing_token(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVIST_SLACK_READER", "xoxb-wrong")
    with pytest.raises(SourceError, match="ARCHIVIST_SLACK_READER \\(invalid_auth\\)"):
        drain(make(token_env="ARCHIVIST_SLACK_READER").poll(None))
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    with pytest.raises(SourceError, match="SLACK_BOT_TOKEN is not set"):
        drain(make().poll(None))


def test_channel_errors_say_what_to_do(slack: FakeSlack, make: Callable[..., SlackChannelsConnector]) -> None:
    slack.channels[GENERAL].bot_is_member = False
    with pytest.raises(SourceError, match="not a member of channel C0GENERAL; invite it"):
        drain(make().poll(None))
    with pytest.raises(SourceError, match="invite it"):
        list(make().list_ids())
    with pytest.raises(SourceError, match="channel C0MISSING does not exist"):
        drain(make(channels=["C0MISSING"]).poll(None))


def test_deleted_messages_leave_list_ids(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    parent = _vpn_thread(slack)
    lone = slack.post(GENERAL, "A typo-filled message", user="U0ANN")
    kept = slack.post(GENERAL, "Keep me", user="U0BOB")
    connector = make()
    assert set(connector.list_ids()) == {f"{GENERAL}:{ts}" for ts in (parent, lone, kept)}
    slack.delete(GENERAL, lone)
    slack.delete(GENERAL, parent)  # has replies: Slack leaves a tombstone, and the replies stay
    assert set(connector.list_ids()) == {f"{GENERAL}:{ts}" for ts in (parent, kept)}
    polled = drain(connector.poll(None))
    assert "This message was deleted" not in polled.documents[f"{GENERAL}:{parent}"].text
    assert "axolotl" in polled.documents[f"{GENERAL}:{parent}"].text


def test_one_broken_thread_is_a_failure_and_is_retried(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    parent = _vpn_thread(slack)
    other = slack.post(GENERAL, "Where are the slides?", user="U0ANN")
    slack.post(GENERAL, "In the drive.", user="U0BOB", thread_ts=other)
    slack.broken_threads.add(parent)
    connector = make()
    first = drain(connector.poll(None))
    assert (
        set(first.failures) == {f"{GENERAL}:{parent}"}
        and "fatal_error" in first.failures[f"{GENERAL}:{parent}"].reason
    )
    assert set(first.documents) == {f"{GENERAL}:{other}"}

    slack.broken_threads.clear()
    second = drain(connector.poll(first.cursor))
    assert set(second.documents) == {f"{GENERAL}:{parent}"} and "retry" not in second.state
    assert second.documents[f"{GENERAL}:{parent}"].title.startswith("#general: How do I reset")


def test_private_channel_threads_are_readable_by_members_only(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    secret = slack.post(LEADERSHIP, "Reorg plan for Q3", user="U0ANN")
    open_ts = slack.post(GENERAL, "Open news", user="U0ANN")
    connector = make(channels=[GENERAL, LEADERSHIP], principals=["group:admins"])
    first = drain(connector.poll(None))
    acl = first.documents[f"{LEADERSHIP}:{secret}"].acl
    assert not acl.public
    expected = {
        "slack:user:U0ANN",
        "slack:user:U0BOB",
        f"slack:user:{BOT_USER}",
        f"slack:channel:{LEADERSHIP}",
    }
    assert acl.principals == expected | {"group:admins"}
    assert first.documents[f"{GENERAL}:{open_ts}"].acl.public

    slack.channels[LEADERSHIP].members.remove("U0BOB")  # Bob leaves: his access must go with him
    second = drain(connector.poll(first.cursor))
    assert set(second.documents) == {f"{LEADERSHIP}:{secret}"}
    assert "slack:user:U0BOB" not in second.documents[f"{LEADERSHIP}:{secret}"].acl.principals


def test_min_replies_keeps_only_real_threads(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    parent = _vpn_thread(slack)
    slack.post(GENERAL, "No replies here", user="U0ANN")
    connector = make(min_replies=1)
    assert set(drain(connector.poll(None)).documents) == {f"{GENERAL}:{parent}"}
    assert set(connector.list_ids()) == {f"{GENERAL}:{parent}"}


def test_without_users_read_threads_show_user_ids(
    slack: FakeSlack, make: Callable[..., SlackChannelsConnector]
) -> None:
    slack.errors["users.info"] = "missing_scope"
    parent = _vpn_thread(slack)
    polled = drain(make().poll(None))
    assert "**U0BOB**" in polled.documents[f"{GENERAL}:{parent}"].text
    assert len([r for r in slack.requests if r.path == "/api/users.info"]) == 1  # asked once, then not again


def test_plain_text_and_timestamps() -> None:
    names = {"U1": "Ann"}.get
    text = plain_text(
        "<!here> <@U1> in <#C1|ops> see <https://x.example/a?b=1&amp;c=2|docs> &lt;3", lambda u: names(u) or u
    )
    assert text == "@here @Ann in #ops see docs (https://x.example/a?b=1&c=2) <3"
    assert ts_key("999999999.999999") < ts_key("1000000000.000001")  # not text order


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "'channels' is required"),
        ({"channels": []}, "at least one channel"),
        ({"channels": ["#general"]}, "not a channel id"),
        ({"channels": ["C0GENERAL"], "lookback_days": -1}, "lookback_days"),
        ({"channels": ["C0GENERAL"], "min_replies": "2"}, "min_replies"),
        ({"channels": ["C0GENERAL"], "token": "xoxb-in-config"}, "unknown option"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        build_connector("slack", ConnectorSettings(type="slack_channels", **options), tmp_path)
