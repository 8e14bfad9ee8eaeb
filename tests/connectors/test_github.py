"""The GitHub connector against a local server speaking GitHub's REST and GraphQL APIs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.api_client import ApiError
from connectors.github import GitHubConnector
from core.errors import ConfigError, SourceError
from core.settings import ConnectorSettings, load_settings
from core.sync.connector import PollsChanges
from core.sync.registry import build_connector
from tests.connectors.saas_helpers import Sleeps, drain
from tests.fakes.github_server import TOKEN, FakeGitHub, blob_sha

REPO = "/repos/acme/handbook"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    fake = FakeGitHub().start()
    fake.commit(
        {
            "README.md": "# Handbook\n\nStart here.",
            "docs/vpn.md": "# VPN\n\nConnect with the axolotl client on port 8443.",
            "docs/onboarding.md": "# Onboarding\n\nYour buddy meets you on day one.",
            "docs/logo.png": b"\x89PNG\r\n\x1a\n",
            "src/app.py": "print('not documentation')",
        }
    )
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def make(github: FakeGitHub, tmp_path: Path) -> Callable[..., GitHubConnector]:
    def build(**options: object) -> GitHubConnector:
        settings = ConnectorSettings(type="github", repo="acme/handbook", api_url=github.base_url, **options)
        connector = build_connector("gh", settings, tmp_path)
        assert isinstance(connector, GitHubConnector) and isinstance(connector, PollsChanges)
        connector.sleep = Sleeps()
        return connector

    return build


def test_full_poll_reads_markdown_issues_and_discussions_across_pages(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    for n in range(130):  # more than one page of 100
        github.add_issue(f"Issue number {n}", f"Body of issue {n}.")
    github.comment_issue(3, "Fixed by restarting the gateway.")
    github.add_issue("Add dark mode", "A pull request, not an issue.", pull_request=True)
    for n in range(30):  # more than one GraphQL page of 25
        github.add_discussion(f"Question {n}", f"How does thing {n} work?")
    github.comment_discussion(140, "Like this.", answer=True, replies=("Thanks!",))

    polled = drain(make().poll(None))

    files = {"file:README.md", "file:docs/vpn.md", "file:docs/onboarding.md"}
    issues = {f"issue:{n}" for n in range(1, 131)}
    discussions = {f"discussion:{n}" for n in range(132, 162)}
    assert set(polled.documents) == files | issues | discussions
    assert not polled.failures
    assert len(polled.ids_in_order) == len(set(polled.ids_in_order))  # nothing twice

    vpn = polled.documents["file:docs/vpn.md"]
    assert vpn.title == "VPN" and "axolotl client" in vpn.text and vpn.path == "docs/vpn.md"
    assert vpn.url == "https://github.com/acme/handbook/blob/main/docs/vpn.md"
    assert vpn.version == blob_sha(b"# VPN\n\nConnect with the axolotl client on port 8443.")
    issue = polled.documents["issue:3"]
    assert issue.title == "#3 Issue number 2" and "Fixed by restarting the gateway." in issue.text
    assert issue.url == "https://github.com/acme/handbook/issues/3"
    answered = polled.documents["discussion:140"]
    assert (
        "Like this." in answered.text
        and "marked as the answer" in answered.text
        and "Thanks!" in answered.text
    )
    assert all(d.acl.public for d in polled.documents.values())  # a public repository
    assert sorted(polled.state) == ["acl", "discussions", "files", "issues"]


def test_incremental_poll_returns_only_what_changed(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    for n in range(5):
        github.add_issue(f"Issue {n}")
    github.add_discussion("Where is the VPN guide?")
    connector = make()
    first = drain(connector.poll(None))

    github.commit(
        {"docs/vpn.md": "# VPN\n\nNow port 9443.", "docs/new.md": "# New page\n\nHello.", "README.md": None}
    )
    github.comment_issue(2, "Reopened: still broken.")
    github.add_discussion("A new question")
    github.requests.clear()
    second = drain(connector.poll(first.cursor))

    assert set(second.documents) == {"file:docs/vpn.md", "file:docs/new.md", "issue:2", "discussion:7"}
    assert "9443" in second.documents["file:docs/vpn.md"].text
    assert "still broken" in second.documents["issue:2"].text
    assert github.paths(f"{REPO}/compare/") and not github.paths(f"{REPO}/git/trees/")  # a diff, not the tree

    third = drain(connector.poll(second.cursor))
    assert not third.documents and not third.failures


def test_force_push_reads_the_tree_again(github: FakeGitHub, make: Callable[..., GitHubConnector]) -> None:
    connector = make(issues=False, discussions=False)
    first_commit = github.branches["main"]
    github.commit({"docs/vpn.md": "# VPN\n\nA mistake."})
    first = drain(connector.poll(None))

    github.force_push(first_commit)  # rewind: vpn.md is back to its old content
    second = drain(connector.poll(first.cursor))
    assert "axolotl" in second.documents["file:docs/vpn.md"].text
    assert github.paths(f"{REPO}/git/trees/")

    github.commit({"docs/onboarding.md": "# Onboarding\n\nChanged."})
    base = second.state["files"]["commit"]
    github.forget(base)  # the base commit is gone entirely: compare answers 404
    third = drain(connector.poll(second.cursor))
    assert {"file:docs/onboarding.md", "file:docs/vpn.md", "file:README.md"} <= set(third.documents)


def test_a_sync_killed_midway_resumes_without_loss_or_repeats(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.commit({f"pages/page-{n:03}.md": f"# Page {n}\n\nText {n}." for n in range(45)})
    stamp = github.tick()
    for n in range(40):  # one timestamp shared by more issues than a batch holds
        github.add_issue(f"Bulk-labelled issue {n}", stamp=stamp)
    connector = make(discussions=False)

    done: list[str] = []
    cursor = None
    while True:
        part = drain(connector.poll(cursor), batches=1)  # killed after each batch
        if not part.cursors:
            break
        done += part.ids_in_order
        if part.cursor == cursor:
            break
        cursor = part.cursor
    expected = {f"file:pages/page-{n:03}.md" for n in range(45)} | {"file:README.md", "file:docs/vpn.md"}
    expected |= {"file:docs/onboarding.md"} | {f"issue:{n}" for n in range(1, 41)}
    assert set(done) == expected
    assert len(done) == len(set(done))


def test_rate_limits_are_waited_out(github: FakeGitHub, make: Callable[..., GitHubConnector]) -> None:
    for n in range(3):
        github.add_issue(f"Issue {n}")
    connector = make(discussions=False)
    github.rate_limit(f"{REPO}/issues", status=429, headers={"Retry-After": "7"})
    reset = str(int(time.time()) + 30)
    github.rate_limit(
        f"{REPO}/git/trees", status=403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    )
    github.rate_limit(f"{REPO}/git/blobs", status=403, headers={})  # secondary limit: only a message

    polled = drain(connector.poll(None))

    assert {"issue:1", "issue:2", "issue:3", "file:README.md"} <= set(polled.documents)
    assert 7.0 in connector.sleep
    assert any(25 <= wait <= 32 for wait in connector.sleep)  # until x-ratelimit-reset
    assert 60.0 in connector.sleep  # GitHub: wait at least a minute for a secondary limit


def test_a_long_rate_limit_stops_the_sync_and_a_permission_403_is_not_retried(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    connector = make(discussions=False)
    reset = str(int(time.time()) + 3600)
    github.rate_limit(REPO, status=403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    with pytest.raises(ApiError, match="asked to wait") as caught:
        drain(connector.poll(None))
    assert caught.value.rate_limited

    github.clear_failures()
    github.fail(f"{REPO}/issues", 403, body=b'{"message": "Resource not accessible by integration"}')
    github.requests.clear()
    with pytest.raises(SourceError, match="HTTP 403"):
        drain(connector.poll(None))
    assert len(github.paths(f"{REPO}/issues")) == 1


def test_bad_token_names_the_variable(
    github: FakeGitHub, make: Callable[..., GitHubConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_expired")
    with pytest.raises(ApiError, match="GITHUB_TOKEN") as caught:
        drain(make().poll(None))
    assert caught.value.status == 401
    with pytest.raises(SourceError, match="GITHUB_TOKEN"):
        list(make().list_ids())


def test_token_needed_for_discussions_only(
    github: FakeGitHub, make: Callable[..., GitHubConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(SourceError, match="discussions = false"):
        drain(make().poll(None))
    polled = drain(make(discussions=False).poll(None))  # a public repository reads without a token
    assert "file:docs/vpn.md" in polled.documents
    github.private = True
    with pytest.raises(SourceError, match="does not exist .* or GITHUB_TOKEN cannot read it"):
        drain(make(discussions=False).poll(None))


def test_deleted_items_disappear_from_list_ids(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.add_issue("Keep me")
    github.add_issue("Delete me")
    github.add_issue("A pull request", pull_request=True)
    github.add_discussion("Keep this discussion")
    github.add_discussion("Delete this discussion")
    connector = make()
    before = set(connector.list_ids())
    assert before == {
        "file:README.md",
        "file:docs/vpn.md",
        "file:docs/onboarding.md",
        "issue:1",
        "issue:2",
        "discussion:4",
        "discussion:5",
    }

    del github.issues[2]
    del github.discussions[5]
    github.commit({"README.md": None, "docs/vpn.md": None, "docs/network/vpn.md": "# VPN\n\nMoved."})
    assert set(connector.list_ids()) == {
        "file:docs/onboarding.md",
        "file:docs/network/vpn.md",
        "issue:1",
        "discussion:4",
    }


def test_one_unreadable_file_is_a_failure_value_and_is_retried(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    connector = make(issues=False, discussions=False)
    broken = blob_sha(b"# VPN\n\nConnect with the axolotl client on port 8443.")
    github.fail(f"{REPO}/git/blobs/{broken}", 500)
    first = drain(connector.poll(None))
    assert set(first.failures) == {"file:docs/vpn.md"}
    assert "HTTP 500" in first.failures["file:docs/vpn.md"].reason
    assert {"file:README.md", "file:docs/onboarding.md"} == set(first.documents)
    assert first.state["retry"] == ["file:docs/vpn.md"]

    github.clear_failures()
    second = drain(connector.poll(first.cursor))  # nothing changed upstream, but the failure is read again
    assert set(second.documents) == {"file:docs/vpn.md"} and "retry" not in second.state


@pytest.mark.parametrize(
    ("private", "visibility", "principals", "public", "readers"),
    [
        (False, None, [], True, set()),
        (True, None, ["group:engineering"], False, {"group:engineering"}),
        (True, None, [], False, set()),
        (True, "internal", ["group:staff"], False, {"group:staff"}),
    ],
)
def test_acl_follows_the_repository_visibility(
    github: FakeGitHub,
    make: Callable[..., GitHubConnector],
    private: bool,
    visibility: str | None,
    principals: list[str],
    public: bool,
    readers: set[str],
) -> None:
    github.private, github.visibility = private, visibility
    github.add_issue("Secret roadmap")
    polled = drain(make(principals=principals, discussions=False).poll(None))
    assert polled.documents
    assert all(d.acl.public is public and d.acl.principals == readers for d in polled.documents.values())


def test_a_repository_made_private_sends_everything_again(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.add_issue("Roadmap")
    connector = make(principals=["group:engineering"], discussions=False)
    first = drain(connector.poll(None))
    assert all(d.acl.public for d in first.documents.values())
    github.private = True
    second = drain(connector.poll(first.cursor))
    assert set(second.documents) == set(first.documents)
    assert all(
        not d.acl.public and d.acl.principals == {"group:engineering"} for d in second.documents.values()
    )


def test_truncated_tree_is_read_folder_by_folder(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.truncate_trees = True
    polled = drain(make(issues=False, discussions=False).poll(None))
    assert set(polled.documents) == {"file:README.md", "file:docs/vpn.md", "file:docs/onboarding.md"}


def test_include_and_exclude_globs(github: FakeGitHub, make: Callable[..., GitHubConnector]) -> None:
    polled = drain(
        make(include=["docs/**"], exclude=["**/*.png"], issues=False, discussions=False).poll(None)
    )
    assert set(polled.documents) == {"file:docs/vpn.md", "file:docs/onboarding.md"}


def test_graphql_errors_are_clear(github: FakeGitHub, make: Callable[..., GitHubConnector]) -> None:
    github.graphql_errors = [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]
    with pytest.raises(ApiError, match="rate limit exhausted") as caught:
        drain(make(issues=False).poll(None))
    assert caught.value.rate_limited


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "'repo' is required"),
        ({"repo": "just-a-name"}, "owner/name"),
        ({"repo": "acme/../etc"}, "owner/name"),
        ({"repo": "acme/handbook", "branch": "bad branch"}, "branch"),
        ({"repo": "acme/handbook", "issues": "yes"}, "'issues' must be true or false"),
        ({"repo": "acme/handbook", "api_url": "ftp://example.com"}, "api_url"),
        ({"repo": "acme/handbook", "token_env": "not a variable"}, "token_env"),
        ({"repo": "acme/handbook", "include": []}, "include"),
        ({"repo": "acme/handbook", "wiki": True}, "unknown option"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        build_connector("gh", ConnectorSettings(type="github", **options), tmp_path)


def test_config_file_keeps_owner_slash_name(tmp_path: Path) -> None:
    config = tmp_path / "archivist.toml"
    config.write_text('[connectors.gh]\ntype = "github"\nrepo = "acme/handbook"\n', encoding="utf-8")
    settings = load_settings(config, environ={})
    connector = build_connector("gh", settings.connectors["gh"], tmp_path)
    assert connector.repo == "acme/handbook"
    assert connector.describe() == "GitHub acme/handbook (default branch): Markdown, issues, discussions"


# -- what the real service adds ---------------------------------------------------------------------


def test_a_transferred_issue_is_not_indexed_under_this_repository(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.add_issue("Printer on fire", "Third floor.")
    github.comment_issue(1, "Still smoking.")
    connector = make(discussions=False)
    github.fail(f"{REPO}/issues/1/comments", 500, times=1)
    first = drain(connector.poll(None))
    assert "issue:1" in first.failures  # to be read again on the next poll

    github.transfer_issue(1, "acme/facilities", 42)
    second = drain(connector.poll(first.cursor))
    assert not second.documents and not second.failures  # not followed to acme/facilities
    assert "retry" not in second.state
    assert "issue:1" not in set(connector.list_ids())  # gone from here: pruned


@pytest.mark.parametrize("status", [502, 504])
def test_graphql_gateway_errors_are_retried(
    github: FakeGitHub, make: Callable[..., GitHubConnector], status: int
) -> None:
    github.add_discussion("How do I reset the VPN?", "Asking for a friend.")
    github.fail("/graphql", status, times=2)
    connector = make(issues=False)
    polled = drain(connector.poll(None))
    assert any(item.startswith("discussion:") for item in polled.documents)
    assert len(connector.sleep) == 2


def test_a_graphql_secondary_rate_limit_in_an_ok_answer_is_waited_out(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.add_discussion("How do I reset the VPN?", "Asking for a friend.")
    github.graphql_secondary_limits = 1
    connector = make(issues=False)
    polled = drain(connector.poll(None))
    assert any(item.startswith("discussion:") for item in polled.documents)
    assert connector.sleep == [60.0]  # GitHub: wait at least a minute when no time is named


def test_a_lasting_graphql_secondary_rate_limit_stops_the_sync_as_transient(
    github: FakeGitHub, make: Callable[..., GitHubConnector]
) -> None:
    github.add_discussion("How do I reset the VPN?")
    github.graphql_secondary_limits = 99
    with pytest.raises(ApiError, match="secondary rate limit") as caught:
        drain(make(issues=False).poll(None))
    assert caught.value.rate_limited and caught.value.transient
