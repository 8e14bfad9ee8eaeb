"""GitHub, Google Drive and Slack sources synced through a real App: index, prune, resume, search under ACLs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.app import App
from core.retrieval.store.base import AccessFilter, SearchQuery
from core.sync.engine import Progress
from tests.conftest import BASE_CONFIG
from tests.fakes.github_server import TOKEN as GITHUB_TOKEN
from tests.fakes.github_server import FakeGitHub
from tests.fakes.google_drive_server import DOC, FakeDrive
from tests.fakes.google_drive_server import TOKEN as DRIVE_TOKEN
from tests.fakes.slack_server import TOKEN as SLACK_TOKEN
from tests.fakes.slack_server import FakeSlack


@pytest.fixture
def make_source_app(
    make_app: Callable[[str], App], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], App]:
    """Apps reading the handbook plus the source in ``table``."""
    monkeypatch.setenv("ARCHIVIST_DATA_DIR", str(tmp_path / "data"))
    return lambda table: make_app(BASE_CONFIG + table)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        fake.stop()


def _search(app: App, text: str, principals: frozenset[str] = frozenset()) -> list[str]:
    query = SearchQuery(text, app.embedder.embed_query(text), limit=5)
    return [hit.chunk.document_id for hit in app.store.search(query, AccessFilter(principals=principals))]


class Killed(BaseException):
    """Stands in for the process dying mid-sync."""


def test_github_sync_indexes_then_prunes_what_was_deleted_upstream(
    github: FakeGitHub, make_source_app: Callable[[str], App]
) -> None:
    github.commit(
        {
            "docs/vpn.md": "# VPN\n\nConnect with the axolotl client.",
            "docs/wifi.md": "# Wifi\n\nThe password rotates.",
        }
    )
    github.add_issue("Printer on floor 3 jams", "It eats A3 paper.")
    github.add_discussion("How do I book the quokka room?", "Use the calendar.")
    app = make_source_app(
        f'\n[connectors.gh]\ntype = "github"\nrepo = "acme/handbook"\napi_url = "{github.base_url}"\n'
    )

    first = app.sync_engine.sync(app.connector("gh"))
    assert (first.added, first.failed, first.deleted) == (4, 0, 0)
    assert set(app.store.indexed_documents("gh")) == {
        "file:docs/vpn.md",
        "file:docs/wifi.md",
        "issue:1",
        "discussion:2",
    }
    assert "file:docs/vpn.md" in _search(app, "axolotl client")

    github.commit({"docs/wifi.md": None})
    del github.issues[1]
    github.requests.clear()
    second = app.sync_engine.sync(app.connector("gh"))
    assert (second.added, second.updated, second.deleted) == (0, 0, 2)
    assert set(app.store.indexed_documents("gh")) == {"file:docs/vpn.md", "discussion:2"}
    assert not github.paths("/repos/acme/handbook/git/blobs/")  # the cursor was used: nothing re-read


def test_github_sync_killed_midway_resumes_from_its_checkpoint(
    github: FakeGitHub, make_source_app: Callable[[str], App]
) -> None:
    github.commit(
        {f"pages/page-{n:02}.md": f"# Page {n}\n\nRoom {n} is booked by team {n % 7}." for n in range(50)}
    )
    app = make_source_app(
        f'\n[connectors.gh]\ntype = "github"\nrepo = "acme/handbook"\napi_url = "{github.base_url}"\n'
        "issues = false\ndiscussions = false\n"
    )

    def die_after_first_batch(progress: Progress) -> None:
        if progress.stage == "indexing" and progress.done > 0:
            raise Killed

    with pytest.raises(Killed):
        app.sync_engine.sync(app.connector("gh"), progress=die_after_first_batch)
    done = len(app.store.indexed_documents("gh"))
    assert 0 < done < 50
    github.requests.clear()
    resumed = app.sync_engine.sync(app.connector("gh"))
    assert resumed.added == 50 - done and resumed.failed == 0
    assert len(github.paths("/repos/acme/handbook/git/blobs/")) == 50 - done  # nothing read twice
    assert len(app.store.indexed_documents("gh")) == 50


def test_drive_sync_prunes_trashed_files_and_keeps_acls(
    make_source_app: Callable[[str], App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_DRIVE_TOKEN", DRIVE_TOKEN)
    drive = FakeDrive().start()
    try:
        drive.add(
            "Salaries",
            DOC,
            "<h1>Salaries</h1><p>The narwhal bonus is paid in March.</p>",
            file_id="docPay",
            permissions=[{"id": "1", "type": "group", "role": "reader", "emailAddress": "hr@acme.example"}],
        )
        drive.add(
            "Lunch",
            DOC,
            "<h1>Lunch</h1><p>The canteen serves capybara stew on Fridays.</p>",
            file_id="docLunch",
            permissions=[{"id": "2", "type": "anyone", "role": "reader"}],
        )
        app = make_source_app(f'\n[connectors.drive]\ntype = "google_drive"\napi_url = "{drive.base_url}"\n')
        first = app.sync_engine.sync(app.connector("drive"))
        assert (first.added, first.failed) == (2, 0)
        assert "docPay" not in _search(app, "narwhal bonus")  # HR only
        assert "docPay" in _search(app, "narwhal bonus", frozenset({"google:group:hr@acme.example"}))
        assert "docLunch" in _search(app, "capybara stew")

        drive.files["docLunch"].trashed = True
        second = app.sync_engine.sync(app.connector("drive"))
        assert second.deleted == 1 and set(app.store.indexed_documents("drive")) == {"docPay"}
    finally:
        drive.stop()


def test_slack_sync_prunes_deleted_threads(
    make_source_app: Callable[[str], App], monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeSlack().start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    try:
        slack.add_channel("C0HELP", "help")
        slack.add_user("U0ANN", "Ann")
        question = slack.post("C0HELP", "How do I expense a taxi?", user="U0ANN")
        slack.post("C0HELP", "Upload the receipt to the wombat portal.", user="U0ANN", thread_ts=question)
        typo = slack.post("C0HELP", "Ignore this, wrong channel", user="U0ANN")
        app = make_source_app('\n[connectors.help]\ntype = "slack_channels"\nchannels = ["C0HELP"]\n')
        first = app.sync_engine.sync(app.connector("help"))
        assert (first.added, first.failed) == (2, 0)
        assert f"C0HELP:{question}" in _search(app, "wombat portal receipt")

        slack.delete("C0HELP", typo)
        second = app.sync_engine.sync(app.connector("help"))
        assert (second.added, second.updated, second.deleted) == (0, 0, 1)
        assert set(app.store.indexed_documents("help")) == {f"C0HELP:{question}"}
    finally:
        slack.stop()


def test_a_sync_stopped_by_an_outage_says_so_and_is_retried_soon(
    make_source_app: Callable[[str], App], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import SourceError
    from core.sync.status import TRANSIENT_RETRY_S
    from core.sync.worker import next_run_at

    monkeypatch.setenv("GOOGLE_DRIVE_TOKEN", DRIVE_TOKEN)
    drive = FakeDrive().start()
    try:
        drive.add(
            "Plan", DOC, "<p>The plan.</p>", permissions=[{"id": "a", "type": "anyone", "role": "reader"}]
        )
        app = make_source_app(f'\n[connectors.drive]\ntype = "google_drive"\napi_url = "{drive.base_url}"\n')
        connector = app.connector("drive")
        connector.sleep = lambda _seconds: None  # type: ignore[attr-defined]
        drive.fail("/files", 502)  # Google is having a bad hour
        with pytest.raises(SourceError, match="HTTP 502"):
            app.sync_engine.sync(connector)
        last = app.sync_status.last("drive")
        assert last is not None and last.transient
        assert "stopped by a passing outage" in last.summary()
        # The worker tries again in minutes, not after the source's hour-long interval.
        assert next_run_at(3600, last, last.finished_at) == last.finished_at + TRANSIENT_RETRY_S
        assert next_run_at(None, last, last.finished_at) is None  # on demand stays on demand

        drive.clear_failures()
        drive.fail("/files", 400, body=b'{"error": {"code": 400, "message": "Invalid Value"}}')
        with pytest.raises(SourceError):
            app.sync_engine.sync(connector)
        last = app.sync_status.last("drive")
        assert last is not None and not last.transient and "(stopped: " in last.summary()
        assert next_run_at(3600, last, last.finished_at) == last.finished_at + 3600
    finally:
        drive.stop()
