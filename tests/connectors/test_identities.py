"""Private documents reach the right people in chat: the identity map, end to end.

Drive and Confluence are synced through the real engine into the real store; Slack's
``users.info`` comes from the Web API stand-in; the question is scoped as a Slack DM and
expanded by the core's identity map, then searched with the store's own ACL filter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.identity import SlackIdentities
from core.answering.access import direct_question
from core.answering.identities import GROUPS_REFRESH_S, GROUPS_TTL_S, GroupDirectory, IdentityMap
from core.api import CoreAPI
from core.app import App
from core.errors import InputError
from core.retrieval.store.base import AccessFilter, SearchQuery
from tests.conftest import BASE_CONFIG
from tests.fakes.confluence_server import FakeConfluence, fake_confluence
from tests.fakes.google_directory_server import FakeDirectory
from tests.fakes.google_drive_server import TOKEN, FakeDrive
from tests.fakes.slack_server import TOKEN as SLACK_TOKEN
from tests.fakes.slack_server import FakeSlack

ADA, BOB = "U0ADA", "U0BOB"
ADA_ACCOUNT = "557058:ada-account"
SECRET_FILE = "The 2027 salary bands put senior engineers at ninety thousand marmots."
SECRET_PAGE = "The acquisition of Quokka Labs closes on the third of March."


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDrive]:
    monkeypatch.setenv("GOOGLE_DRIVE_TOKEN", TOKEN)
    fake = FakeDrive().start()
    fake.add("Salary bands.md", "text/markdown", f"# Salary bands\n\n{SECRET_FILE}", file_id="mdBands",
             permissions=[{"id": "1", "type": "user", "role": "reader", "emailAddress": "Ada@Acme.example"}])  # fmt: skip
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def wiki(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeConfluence]:
    with fake_confluence() as fake:
        monkeypatch.setenv("CONFLUENCE_API_TOKEN", fake.token)
        fake.add("Project Quokka", f"<p>{SECRET_PAGE}</p>", read_users=[ADA_ACCOUNT])
        fake.users[ADA_ACCOUNT] = "ada@acme.example"
        yield fake


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.users[ADA] = {"id": ADA, "is_email_confirmed": True, "profile": {"email": "ada@acme.example"}}
    fake.users[BOB] = {"id": BOB, "is_email_confirmed": True, "profile": {"email": "bob@acme.example"}}
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def synced(drive: FakeDrive, wiki: FakeConfluence, make_app: Callable[[str], App]) -> App:
    tables = (
        f'\n[connectors.drive]\ntype = "google_drive"\napi_url = "{drive.base_url}"\n'
        f'\n[connectors.wiki]\ntype = "confluence"\nbase_url = "{wiki.base_url}"\nemail = "{wiki.email}"\n'
        'spaces = ["ENG"]\n'
    )
    app = make_app(BASE_CONFIG + tables)
    for name in ("drive", "wiki"):
        report = app.sync_engine.sync(app.connector(name))
        assert (report.added, report.failed) == (1, 0), report.failures
    return app


def _dm_hits(app: App, api: CoreAPI, user: str, text: str) -> list[str]:
    """What a DM from ``user`` may cite for ``text``, as the assistant's retrieval filters it."""
    asked = direct_question(text, platform="slack", workspace="T0ACME", user=user, channel="D0" + user)
    question = api.identities.expand(asked)
    scope = AccessFilter(principals=question.principals, sources=question.sources)
    hits = app.store.search(SearchQuery(text, app.embedder.embed_query(text), limit=5), scope)
    return [hit.chunk.text for hit in hits]


def test_ada_reads_what_is_shared_with_her_in_a_dm_and_bob_does_not(synced: App, slack: FakeSlack) -> None:
    api = CoreAPI(synced)
    learner = SlackIdentities(api.identities)
    web = AsyncWebClient(token=SLACK_TOKEN, base_url=slack.api_url)
    for user in (ADA, BOB):
        asyncio.run(learner.learn(web, user))

    for text, secret in (
        ("What are the salary bands?", SECRET_FILE),
        ("When does Quokka close?", SECRET_PAGE),
    ):
        assert any(secret in hit for hit in _dm_hits(synced, api, ADA, text)), text
        assert not any(secret in hit for hit in _dm_hits(synced, api, BOB, text)), text

    # Slack was asked once per user; the address is remembered for a day.
    asyncio.run(learner.learn(web, ADA))
    assert [r.form().get("user") for r in slack.requests if r.path == "/api/users.info"] == [ADA, BOB]


def test_an_unconfirmed_or_missing_email_adds_nothing(synced: App, slack: FakeSlack) -> None:
    api = CoreAPI(synced)
    slack.users[ADA]["is_email_confirmed"] = False
    slack.users[BOB] = {"id": BOB, "profile": {}}  # no users:read.email scope: Slack leaves it out
    web = AsyncWebClient(token=SLACK_TOKEN, base_url=slack.api_url)
    for user in (ADA, BOB):
        asyncio.run(SlackIdentities(api.identities).learn(web, user))
    assert not any(SECRET_FILE in hit for hit in _dm_hits(synced, api, ADA, "What are the salary bands?"))


def test_an_admin_link_lets_a_discord_user_read_as_their_email(synced: App) -> None:
    api = CoreAPI(synced)
    question = direct_question("salary bands", platform="discord", workspace="", user="4242", channel="9")
    assert api.identities.expand(question) == question  # nobody links, nothing more
    api.identities.link("discord:user:4242", "Ada@Acme.example")
    expanded = api.identities.expand(question)
    assert {"google:user:ada@acme.example", "email:ada@acme.example"} <= expanded.principals
    assert api.identities.unlink("discord:user:4242", "ada@acme.example")
    assert api.identities.expand(question) == question


def test_a_channel_question_never_expands(synced: App) -> None:
    api = CoreAPI(synced)
    api.identities.note_email(f"slack:user:{ADA}", "ada@acme.example")
    from core.answering.access import ChannelPolicy, channel_question

    question = channel_question(
        "salary bands",
        platform="slack",
        workspace="T0ACME",
        channel="C0GENERAL",
        thread="",
        policy=ChannelPolicy(),
    )
    assert api.identities.expand(question) == question


@pytest.mark.parametrize(
    ("chat", "target", "message"),
    [
        ("U0ADA", "ada@acme.example", "not a chat user"),
        ("slack:user:U0ADA", "slack:channel:C0SECRET", "chat principal"),
        ("slack:user:U0ADA", "discord:role:1", "chat principal"),
        ("slack:user:U0ADA", "root", "neither an email"),
    ],
)
def test_links_that_would_smuggle_access_are_refused(
    synced: App, chat: str, target: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        IdentityMap(lambda: synced.redis).link(chat, target)


def test_with_redis_down_a_dm_reads_as_the_chat_user_alone() -> None:
    from core.errors import ServiceUnavailable

    def down() -> None:
        raise ServiceUnavailable("cannot reach Redis at redis://127.0.0.1:1")

    identities = IdentityMap(down)  # type: ignore[arg-type]
    question = direct_question(
        "salary bands", platform="slack", workspace="T0ACME", user=ADA, channel="D0ADA"
    )
    assert identities.expand(question) == question
    identities.note_email(f"slack:user:{ADA}", "ada@acme.example")  # logged, not raised
    assert not identities.knows_email(f"slack:user:{ADA}")


# -- group memberships ------------------------------------------------------------------------

GROUP_FILE = "The offsite in Lisbon runs from the ninth to the twelfth of May."
GROUP_PAGE = "The on-call rota for the storage team rotates every Thursday at noon."
BOB_ACCOUNT = "557058:bob-account"


@pytest.fixture
def directory() -> Iterator[FakeDirectory]:
    fake = FakeDirectory(max_results=2)  # Ada is in three groups: groups.list pages twice
    fake.start()
    fake.add_group("eng@acme.example", "ada@acme.example")
    fake.add_group("all@acme.example", "ada@acme.example", "bob@acme.example")
    fake.add_group("lisbon@acme.example", "ada@acme.example")
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def grouped(
    drive: FakeDrive, wiki: FakeConfluence, directory: FakeDirectory, make_app: Callable[[str], App]
) -> App:
    drive.add("Offsite.md", "text/markdown", f"# Offsite\n\n{GROUP_FILE}", file_id="mdOffsite",
              permissions=[{"id": "2", "type": "group", "role": "reader", "emailAddress": "Eng@Acme.example"}])  # fmt: skip
    wiki.add("Storage on-call", f"<p>{GROUP_PAGE}</p>", read_groups=["storage"])
    wiki.users[BOB_ACCOUNT] = "bob@acme.example"
    wiki.users["557058:hidden"] = ""  # a profile that hides its address: never matched
    wiki.groups = {"confluence-users": {ADA_ACCOUNT, BOB_ACCOUNT}, "storage": {ADA_ACCOUNT}}
    tables = (
        f'\n[connectors.drive]\ntype = "google_drive"\napi_url = "{drive.base_url}"\n'
        f'directory_url = "{directory.directory_url}"\n'
        f'\n[connectors.wiki]\ntype = "confluence"\nbase_url = "{wiki.base_url}"\nemail = "{wiki.email}"\n'
        'spaces = ["ENG"]\n'
    )
    app = make_app(BASE_CONFIG + tables)
    for name in ("drive", "wiki"):
        report = app.sync_engine.sync(app.connector(name))
        assert (report.added, report.failed) == (2, 0), report.failures
    wiki.max_limit = 1  # the site's users and Ada's groups now come one per page
    return app


def _directory(app: App, name: str) -> GroupDirectory:
    connector = app.connector(name)
    assert isinstance(connector, GroupDirectory)
    return connector


def _learn(app: App, slack: FakeSlack) -> CoreAPI:
    api = CoreAPI(app)
    web = AsyncWebClient(token=SLACK_TOKEN, base_url=slack.api_url)
    for user in (ADA, BOB):
        asyncio.run(SlackIdentities(api.identities).learn(web, user))
    return api


def test_a_file_and_a_page_shared_with_a_group_reach_its_members_dms_after_the_worker_runs(
    grouped: App, slack: FakeSlack, directory: FakeDirectory, wiki: FakeConfluence
) -> None:
    api = _learn(grouped, slack)
    questions = (("Where is the offsite?", GROUP_FILE), ("Who is on call for storage?", GROUP_PAGE))
    for text, secret in questions:  # before the worker asked the directories: nobody
        assert not any(secret in hit for hit in _dm_hits(grouped, api, ADA, text)), text

    lines = grouped.sync_worker().run_once()
    assert any(line.startswith("group memberships:") for line in lines), lines

    for text, secret in questions:
        assert any(secret in hit for hit in _dm_hits(grouped, api, ADA, text)), text
        assert not any(secret in hit for hit in _dm_hits(grouped, api, BOB, text)), text
    groups = api.identities.groups(f"slack:user:{ADA}")
    assert groups["drive"][0] == {"google:group:eng@acme.example", "google:group:all@acme.example",
                                  "google:group:lisbon@acme.example"}  # fmt: skip
    assert groups["wiki"][0] == {"confluence:user:" + ADA_ACCOUNT, "confluence:group:storage",
                                 "confluence:group:confluence-users"}  # fmt: skip
    assert any("pageToken" in r.query for r in directory.requests)  # Google's pages were followed
    assert any(r["path"].endswith("/memberof") and r["query"].get("start") == "1" for r in wiki.requests)


def test_without_the_scope_to_read_groups_nobody_gains_a_group_and_it_is_logged_once(
    grouped: App,
    slack: FakeSlack,
    directory: FakeDirectory,
    wiki: FakeConfluence,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory.scope_granted = False
    wiki.can_browse_users = False
    api = _learn(grouped, slack)
    now = [1_000_000.0]
    identities = IdentityMap(lambda: grouped.redis, clock=lambda: now[0])
    sources = [_directory(grouped, "drive"), _directory(grouped, "wiki")]
    with caplog.at_level("WARNING"):
        for _ in range(2):
            identities.refresh_groups(sources)
            now[0] += GROUPS_REFRESH_S
    assert not any(GROUP_FILE in hit for hit in _dm_hits(grouped, api, ADA, "Where is the offsite?"))
    assert not any(GROUP_PAGE in hit for hit in _dm_hits(grouped, api, ADA, "Who is on call for storage?"))
    warnings = [r.getMessage() for r in caplog.records if "group" in r.getMessage()]
    assert sum("admin.directory.group.readonly" in w for w in warnings) == 1, warnings
    assert sum("browse users" in w for w in warnings) == 1, warnings


def test_an_outage_keeps_the_last_answer_until_it_expires(
    grouped: App, slack: FakeSlack, directory: FakeDirectory
) -> None:
    _learn(grouped, slack)
    now = [1_000_000.0]
    identities = IdentityMap(lambda: grouped.redis, clock=lambda: now[0])
    drive = _directory(grouped, "drive")
    drive.sleep = lambda _s: None  # type: ignore[attr-defined]
    assert identities.refresh_groups([drive]) == 2  # Ada and Bob
    directory.fail("/admin/directory/v1/groups", 503)
    now[0] += GROUPS_REFRESH_S
    assert identities.refresh_groups([drive]) == 0  # could not tell: Ada keeps eng for now
    assert "google:group:eng@acme.example" in identities.principals_of(f"slack:user:{ADA}")
    now[0] += GROUPS_TTL_S
    assert "google:group:eng@acme.example" not in identities.principals_of(f"slack:user:{ADA}")


def test_the_worker_asks_the_directories_at_most_once_a_minute() -> None:
    from core.sync.worker import GROUPS_TICK_S, Schedule, SyncWorker

    now, asked = [1_000.0], []

    def refresh() -> int:
        asked.append(now[0])
        return 1

    worker = SyncWorker(None, Schedule({}), str, clock=lambda: now[0], refresh_groups=refresh)  # type: ignore[arg-type]
    assert worker.run_once() == ["group memberships: 1 answer(s) refreshed"]
    now[0] += GROUPS_TICK_S / 2
    assert worker.run_once() == [] and len(asked) == 1
    now[0] += GROUPS_TICK_S
    worker.run_once()
    assert len(asked) == 2
