"""Discussions with their comments and replies, through GitHub's GraphQL API (``POST /graphql``).

GraphQL has no "updated since" filter for discussions, only ``orderBy: {field: UPDATED_AT}``:

- first poll: oldest change first (``direction: ASC``), cursor-paginated, each batch checkpointed;
- later polls: newest first (``DESC``) until a discussion older than the position, then those
  few are delivered oldest first. The position (timestamp + numbers seen at it) is the same
  either way, so a first poll killed midway resumes as a later poll would.

GraphQL reports errors in the body (HTTP 200, ``{"errors": [...]}``); a missing repository or an
exhausted rate limit stops the sync with a clear message. A secondary rate limit can arrive the
same way (HTTP 200, a message and no ``type``): it is waited out (a minute, GitHub's advice) a
few times, then stops the sync as a transient failure. 502 and 504 are retried by the client.
Up to 100 comments per page are read, more by paging each discussion's comments; replies are
read up to ``REPLIES_PER_COMMENT``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connectors.api_client import ApiError
from connectors.github.common import (
    BATCH_SIZE,
    SECONDARY_LIMIT_RETRIES,
    SECONDARY_LIMIT_WAIT_S,
    Repo,
    login,
    parse_time,
)
from connectors.saas import Checkpoints, Position, note_outcome, stops_sync
from core.documents import Document, LoadFailure
from core.errors import SourceError
from core.sync.connector import Batch

DISCUSSIONS_PER_PAGE = 25  # each carries its comments: keep a page well inside GraphQL's node limits
COMMENTS_PER_PAGE = 50
REPLIES_PER_COMMENT = 30
IDS_PER_PAGE = 100

_COMMENT_FIELDS = f"""
  pageInfo {{ hasNextPage endCursor }}
  nodes {{
    body createdAt isAnswer author {{ login }}
    replies(first: {REPLIES_PER_COMMENT}) {{ nodes {{ body createdAt author {{ login }} }} }}
  }}
"""
_DISCUSSION_FIELDS = f"""
  number title body url createdAt updatedAt
  author {{ login }}
  category {{ name }}
  comments(first: {COMMENTS_PER_PAGE}) {{ {_COMMENT_FIELDS} }}
"""
DISCUSSIONS_QUERY = f"""
query Discussions(
  $owner: String!, $name: String!, $first: Int!, $after: String, $direction: OrderDirection!
) {{
  repository(owner: $owner, name: $name) {{
    discussions(first: $first, after: $after, orderBy: {{field: UPDATED_AT, direction: $direction}}) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ {_DISCUSSION_FIELDS} }}
    }}
  }}
}}
"""
DISCUSSION_QUERY = f"""
query Discussion($owner: String!, $name: String!, $number: Int!) {{
  repository(owner: $owner, name: $name) {{
    discussion(number: $number) {{ {_DISCUSSION_FIELDS} }}
  }}
}}
"""
COMMENTS_QUERY = f"""
query DiscussionComments($owner: String!, $name: String!, $number: Int!, $after: String) {{
  repository(owner: $owner, name: $name) {{
    discussion(number: $number) {{
      comments(first: {COMMENTS_PER_PAGE}, after: $after) {{ {_COMMENT_FIELDS} }}
    }}
  }}
}}
"""
IDS_QUERY = """
query DiscussionNumbers($owner: String!, $name: String!, $first: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    discussions(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { number }
    }
  }
}
"""


def discussion_id(number: object) -> str:
    return f"discussion:{number}"


def graphql_url(api_url: str) -> str:
    """api.github.com/graphql; on GitHub Enterprise Server, HOST/api/graphql beside HOST/api/v3."""
    if api_url.endswith("/api/v3"):
        return api_url.removesuffix("/v3") + "/graphql"
    return api_url + "/graphql"


class GraphQL:
    def __init__(self, repo: Repo, url: str) -> None:
        self.repo = repo
        self.url = url
        self.owner, _, self.name = repo.full_name.partition("/")

    def query(self, query: str, **variables: Any) -> dict[str, Any]:
        body = {"query": query, "variables": {"owner": self.owner, "name": self.name, **variables}}
        for attempt in range(SECONDARY_LIMIT_RETRIES + 1):
            answer = self.repo.api.post_json(self.url, body)
            errors = answer.get("errors") if isinstance(answer, dict) else None
            if not errors or not _secondary_limit(errors) or attempt == SECONDARY_LIMIT_RETRIES:
                break
            self.repo.api.sleep(SECONDARY_LIMIT_WAIT_S)
        if errors:
            raise self._error(errors)
        repository = (answer.get("data") or {}).get("repository")
        if repository is None:
            msg = f"source {self.repo.source!r}: GitHub's GraphQL API does not show {self.repo.full_name}"
            raise SourceError(msg)
        return repository

    def _error(self, errors: list[dict[str, Any]]) -> SourceError:
        kinds = {str(error.get("type", "")) for error in errors if isinstance(error, dict)}
        first = str(errors[0].get("message", "")) if isinstance(errors[0], dict) else str(errors[0])
        where = f"source {self.repo.source!r}: GitHub GraphQL"
        if "RATE_LIMITED" in kinds:
            return ApiError(
                f"{where}: rate limit exhausted ({first}); sync again later", 200, rate_limited=True
            )
        if _secondary_limit(errors):
            return ApiError(
                f"{where}: still held by a secondary rate limit ({first}); sync again later",
                200,
                rate_limited=True,
                transient=True,
            )
        if "NOT_FOUND" in kinds:
            return SourceError(f"{where}: {first}")
        return SourceError(f"{where} error: {first[:300]}")


def _secondary_limit(errors: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(error, dict) and "secondary rate limit" in str(error.get("message", "")).lower()
        for error in errors
    )


def poll_discussions(
    graphql: GraphQL, state: dict[str, Any], checkpoints: Checkpoints
) -> Iterator[tuple[Batch, str]]:
    position = Position.from_json(state.get("discussions"))
    nodes = _changed_since(graphql, position) if position.since else _all_oldest_first(graphql)
    batch: Batch = []
    for node in nodes:
        stamp, number = str(node.get("updatedAt", "")), str(node.get("number", ""))
        if not position.is_new(stamp, number):
            continue
        position = position.advanced(stamp, number)
        item = discussion_document(graphql, node)
        note_outcome(state, discussion_id(number), item)
        batch.append(item)
        if len(batch) >= BATCH_SIZE:
            state["discussions"] = position.to_json()
            yield from checkpoints.emit(batch)
            batch = []
    state["discussions"] = position.to_json()
    yield from checkpoints.emit(batch)


def _pages(graphql: GraphQL, query: str, **variables: Any) -> Iterator[list[dict[str, Any]]]:
    after: str | None = None
    while True:
        connection = graphql.query(query, after=after, **variables)["discussions"]
        yield [node for node in connection.get("nodes") or [] if isinstance(node, dict)]
        info = connection.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return
        after = str(info["endCursor"])


def _all_oldest_first(graphql: GraphQL) -> Iterator[dict[str, Any]]:
    for page in _pages(graphql, DISCUSSIONS_QUERY, first=DISCUSSIONS_PER_PAGE, direction="ASC"):
        yield from page


def _changed_since(graphql: GraphQL, position: Position) -> list[dict[str, Any]]:
    changed: list[dict[str, Any]] = []
    for page in _pages(graphql, DISCUSSIONS_QUERY, first=DISCUSSIONS_PER_PAGE, direction="DESC"):
        for node in page:
            if str(node.get("updatedAt", "")) < position.since:
                return sorted(changed, key=lambda n: (str(n.get("updatedAt", "")), int(n.get("number", 0))))
            changed.append(node)
    return sorted(changed, key=lambda n: (str(n.get("updatedAt", "")), int(n.get("number", 0))))


def discussion_ids(graphql: GraphQL) -> Iterator[str]:
    for page in _pages(graphql, IDS_QUERY, first=IDS_PER_PAGE):
        for node in page:
            yield discussion_id(node.get("number"))


def reload_discussion(graphql: GraphQL, number: str) -> Document | LoadFailure | None:
    try:
        node = graphql.query(DISCUSSION_QUERY, number=int(number)).get("discussion")
    except ApiError as exc:
        if stops_sync(exc):
            raise
        return graphql.repo.failure(discussion_id(number), exc)
    except SourceError:
        return None  # NOT_FOUND: deleted since
    return discussion_document(graphql, node) if isinstance(node, dict) else None


def discussion_document(graphql: GraphQL, node: dict[str, Any]) -> Document | LoadFailure:
    repo = graphql.repo
    number = node.get("number")
    comments_page = node.get("comments") or {}
    comments = list(comments_page.get("nodes") or [])
    info = comments_page.get("pageInfo") or {}
    try:
        while info.get("hasNextPage") and info.get("endCursor"):
            more = graphql.query(COMMENTS_QUERY, number=int(str(number)), after=info["endCursor"])
            page = ((more.get("discussion") or {}).get("comments")) or {}
            comments += page.get("nodes") or []
            info = page.get("pageInfo") or {}
    except ApiError as exc:
        if stops_sync(exc):
            raise
        return repo.failure(discussion_id(number), exc)
    title = str(node.get("title") or "").strip() or f"Discussion {number}"
    category = (node.get("category") or {}).get("name")
    started = parse_time(node.get("createdAt")).date().isoformat()
    about = f"Discussion #{number}" + (f" in {category}" if category else "")
    about += f" by {login(node.get('author'))}, started {started}."
    parts = [f"# {title}", about, str(node.get("body") or "").strip()]
    if comments:
        parts.append("## Comments")
    for comment in comments:
        if not isinstance(comment, dict):
            continue
        when = parse_time(comment.get("createdAt")).date().isoformat()
        marker = " (marked as the answer)" if comment.get("isAnswer") else ""
        text = str(comment.get("body") or "").strip()
        parts.append(f"**{login(comment.get('author'))}** on {when}{marker}:\n\n{text}")
        for reply in (comment.get("replies") or {}).get("nodes") or []:
            if isinstance(reply, dict):
                quoted = str(reply.get("body") or "").strip().replace("\n", "\n> ")
                parts.append(f"> **{login(reply.get('author'))}** replied:\n> {quoted}")
    return Document(
        id=discussion_id(number),
        source=repo.source,
        title=f"Discussion #{number}: {title}",
        text="\n\n".join(part for part in parts if part),
        url=str(node.get("url") or f"{repo.html_url}/discussions/{number}"),
        version=str(node.get("updatedAt", "")),
        updated_at=parse_time(node.get("updatedAt")),
        acl=repo.acl,
        mime_type="text/markdown",
    )
