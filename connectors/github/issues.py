"""Issues (not pull requests) with their comments, incremental by ``updated_at``.

``GET /repos/{o}/{r}/issues?state=all&sort=updated&direction=asc&since=...`` lists issues oldest
change first; a new comment moves an issue's ``updated_at``, so it is read again with all its
comments. Pages are keyset pages: after each page the listing asks again ``since`` the last
timestamp delivered instead of following the page number, because page numbers shift when an
issue is updated mid-listing and an issue could slip between two pages unseen. Only when a whole
page shares one timestamp does it follow the Link header's next page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from connectors.api_client import ApiError
from connectors.github.common import BATCH_SIZE, PER_PAGE, Repo, login, paged, parse_time
from connectors.saas import Checkpoints, Position, note_outcome, stops_sync
from core.documents import Document, LoadFailure
from core.sync.connector import Batch


def issue_id(number: object) -> str:
    return f"issue:{number}"


def _listing(since: str) -> dict[str, str | int]:
    params: dict[str, str | int] = {
        "state": "all",
        "sort": "updated",
        "direction": "asc",
        "per_page": PER_PAGE,
    }
    if since:
        # One second early: whether GitHub's "since" includes its own second or not, the issues
        # stamped with it come back, and the position skips those already delivered.
        params["since"] = (parse_time(since) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return params


def poll_issues(repo: Repo, state: dict[str, Any], checkpoints: Checkpoints) -> Iterator[tuple[Batch, str]]:
    position = Position.from_json(state.get("issues"))
    path = f"{repo.rest}/issues"
    asked_since = position.since
    url: str = path
    params: dict[str, str | int] | None = _listing(asked_since)
    while True:
        response = repo.api.request("GET", url, params=params)
        page: list[dict[str, Any]] = response.json()
        batch: Batch = []
        for issue in page:
            stamp, number = str(issue.get("updated_at", "")), str(issue.get("number", ""))
            if not position.is_new(stamp, number):
                continue
            position = position.advanced(stamp, number)
            if "pull_request" in issue:
                continue  # pull requests are listed with issues; they are not knowledge here
            item = issue_document(repo, issue)
            note_outcome(state, issue_id(number), item)
            batch.append(item)
            if len(batch) >= BATCH_SIZE:
                state["issues"] = position.to_json()
                yield from checkpoints.emit(batch)
                batch = []
        state["issues"] = position.to_json()
        yield from checkpoints.emit(batch)
        following = response.links.get("next", {}).get("url")
        if not following or not page:
            return
        if position.since != asked_since:
            asked_since = position.since
            url, params = path, _listing(asked_since)
        else:
            url, params = following, None


def issue_ids(repo: Repo) -> Iterator[str]:
    for page in paged(repo.api, f"{repo.rest}/issues", {"state": "all", "per_page": PER_PAGE}):
        for issue in page:
            if "pull_request" not in issue:
                yield issue_id(issue.get("number"))


def reload_issue(repo: Repo, number: str) -> Document | LoadFailure | None:
    try:
        issue = repo.api.get_json(f"{repo.rest}/issues/{number}")
    except ApiError as exc:
        if exc.status in (301, 404, 410):  # deleted, or transferred to another repository
            return None
        if stops_sync(exc):
            raise
        return repo.failure(issue_id(number), exc)
    if not isinstance(issue, dict) or "pull_request" in issue:
        return None
    if not _belongs_to(repo, issue):  # transferred: GitHub redirected to its new repository
        return None
    return issue_document(repo, issue)


def _belongs_to(repo: Repo, issue: dict[str, Any]) -> bool:
    """Whether an issue GitHub answered with is still this repository's (a transfer redirects)."""
    home = issue.get("repository_url")
    if isinstance(home, str) and home:
        return home.rstrip("/").lower().endswith(f"/repos/{repo.full_name}".lower())
    return True  # older GitHub Enterprise answers without it: the request path was this repository


def issue_document(repo: Repo, issue: dict[str, Any]) -> Document | LoadFailure:
    number = issue.get("number")
    comments: list[dict[str, Any]] = []
    if issue.get("comments"):
        try:
            for page in paged(repo.api, f"{repo.rest}/issues/{number}/comments", {"per_page": PER_PAGE}):
                comments += page
        except ApiError as exc:
            if stops_sync(exc):
                raise
            return repo.failure(issue_id(number), exc)
    title = str(issue.get("title") or "").strip() or f"Issue {number}"
    labels = [str(label.get("name")) for label in issue.get("labels") or [] if isinstance(label, dict)]
    opened = parse_time(issue.get("created_at")).date().isoformat()
    state = "Closed" if issue.get("state") == "closed" else "Open"
    about = f"{state} issue #{number} by {login(issue.get('user'))}, opened {opened}."
    if labels:
        about += f" Labels: {', '.join(labels)}."
    parts = [f"# {title}", about, str(issue.get("body") or "").strip()]
    if comments:
        parts.append("## Comments")
        for comment in comments:
            when = parse_time(comment.get("created_at")).date().isoformat()
            parts.append(
                f"**{login(comment.get('user'))}** on {when}:\n\n{str(comment.get('body') or '').strip()}"
            )
    return Document(
        id=issue_id(number),
        source=repo.source,
        title=f"#{number} {title}",
        text="\n\n".join(part for part in parts if part),
        url=str(issue.get("html_url") or f"{repo.html_url}/issues/{number}"),
        version=str(issue.get("updated_at", "")),
        updated_at=parse_time(issue.get("updated_at")),
        acl=repo.acl,
        mime_type="text/markdown",
    )
