"""A local stand-in for GitHub's REST and GraphQL APIs, for one repository.

REST, as documented at docs.github.com/rest (JSON, ``Authorization: Bearer``, Link-header
pagination with ``per_page``/``page``):

- ``GET /repos/{o}/{r}``, ``GET /repos/{o}/{r}/branches/{branch}``
- ``GET /repos/{o}/{r}/git/trees/{sha}[?recursive=1]`` (``truncated`` when ``truncate_trees``)
- ``GET /repos/{o}/{r}/git/blobs/{sha}``, ``GET /repos/{o}/{r}/contents/{path}?ref=``
- ``GET /repos/{o}/{r}/compare/{base}...{head}`` (404 for an unknown base, at most 300 files)
- ``GET /repos/{o}/{r}/issues`` (state, sort=updated|created, direction, since >=, per_page,
  page; pull requests included, as GitHub does), ``GET .../issues/{n}``, ``.../issues/{n}/comments``

GraphQL (``POST /graphql``): the connector's operations by name (``Discussions``, ``Discussion``,
``DiscussionComments``, ``DiscussionNumbers``), answering ``{"data": ...}`` shaped like GitHub's
schema, with opaque ``endCursor`` strings, ``orderBy`` UPDATED_AT ASC/DESC, and ``{"errors": [...]}``.

Quirks of the real service:

- ``transfer_issue(n, "other/repo", m)``: ``GET .../issues/n`` answers 301 to the issue's new
  home, and the listing no longer has it ("If an issue was transferred ... the API returns
  301", docs.github.com/rest/issues/issues#get-an-issue).
- ``graphql_secondary_limits``: that many GraphQL requests answer HTTP 200 with an ``errors``
  entry naming the secondary rate limit and no ``type`` (docs.github.com/graphql/overview/
  rate-limits-and-node-limits-for-the-graphql-api#secondary-rate-limits).
- ``fail("/graphql", 502)`` / ``504``: the GraphQL endpoint's gateway errors on heavy queries
  (docs.github.com/graphql/overview/rate-limits-and-node-limits-for-the-graphql-api#timeouts).

Commits are real git object ids (sha1 of "blob N\\0..."), so blob shas behave like GitHub's: the
same content has the same sha in every commit. Time is a fake clock that moves a minute a tick.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

from tests.fakes.http_service import FakeService, Request, Response, json_response

TOKEN = "ghp_test_token"
OWNER, NAME = "acme", "handbook"


def blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()  # noqa: S324 - git's id


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    date: str
    parent: str | None


@dataclass
class Issue:
    number: int
    title: str
    body: str
    updated_at: str
    created_at: str
    state: str = "open"
    user: str = "alice"
    labels: tuple[str, ...] = ()
    comments: list[dict[str, Any]] = field(default_factory=list)
    pull_request: bool = False


@dataclass
class Discussion:
    number: int
    title: str
    body: str
    updated_at: str
    created_at: str
    category: str = "Q&A"
    author: str = "bob"
    comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGitHub(FakeService):
    token: str = TOKEN
    private: bool = False
    visibility: str | None = None  # "internal" on enterprise; else from ``private``
    default_branch: str = "main"
    truncate_trees: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # every blob ever committed, by sha
    branches: dict[str, str] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    discussions: dict[int, Discussion] = field(default_factory=dict)
    graphql_errors: list[dict[str, Any]] | None = None
    graphql_secondary_limits: int = 0
    transferred: dict[int, dict[str, Any]] = field(default_factory=dict)  # old number -> new issue
    clock: datetime = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

    # -- building the repository ---------------------------------------------------------

    def tick(self) -> str:
        self.clock += timedelta(minutes=1)
        return self.stamp()

    def stamp(self) -> str:
        return self.clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def commit(self, changes: dict[str, bytes | str | None], branch: str = "main") -> str:
        """A new commit on ``branch``: each path set to its content, or removed when None."""
        parent = self.branches.get(branch)
        files = dict(self.commits[parent].files) if parent else {}
        for path, content in changes.items():
            if content is None:
                files.pop(path, None)
            else:
                files[path] = content.encode() if isinstance(content, str) else content
                self.blobs[blob_sha(files[path])] = files[path]
        date = self.tick()
        sha = hashlib.sha1(f"{parent}:{sorted(files.items())}:{date}".encode()).hexdigest()  # noqa: S324
        self.commits[sha] = Commit(sha, files, date, parent)
        self.branches[branch] = sha
        return sha

    def force_push(self, sha: str, branch: str = "main") -> None:
        """Point ``branch`` at an older commit, as ``git push --force`` of a rewound branch does."""
        self.branches[branch] = sha

    def forget(self, sha: str) -> None:
        """Drop a commit, as garbage collection after a force push would."""
        del self.commits[sha]

    def _ancestors(self, sha: str) -> set[str]:
        seen: set[str] = set()
        current: str | None = sha
        while current and current in self.commits and current not in seen:
            seen.add(current)
            current = self.commits[current].parent
        return seen

    def transfer_issue(self, number: int, repo: str, new_number: int) -> None:
        """Move an issue to another repository, as the "Transfer issue" button does."""
        issue = self.issues.pop(number)
        moved = self._issue_json(issue)
        moved.update(
            number=new_number,
            repository_url=f"https://api.github.com/repos/{repo}",
            html_url=f"https://github.com/{repo}/issues/{new_number}",
            comments=0,
            updated_at=self.tick(),
        )
        self.transferred[number] = moved

    def add_issue(self, title: str, body: str = "", **kwargs: Any) -> Issue:
        number = max([*self.issues, *self.discussions, 0]) + 1
        stamp = kwargs.pop("stamp", None) or self.tick()
        issue = Issue(number, title, body, stamp, stamp, **kwargs)
        self.issues[number] = issue
        return issue

    def comment_issue(self, number: int, body: str, user: str = "carol") -> None:
        stamp = self.tick()
        issue = self.issues[number]
        issue.comments.append(
            {"id": len(issue.comments) + 1, "body": body, "user": user, "created_at": stamp}
        )
        issue.updated_at = stamp

    def add_discussion(self, title: str, body: str = "", **kwargs: Any) -> Discussion:
        number = max([*self.issues, *self.discussions, 0]) + 1
        stamp = kwargs.pop("stamp", None) or self.tick()
        discussion = Discussion(number, title, body, stamp, stamp, **kwargs)
        self.discussions[number] = discussion
        return discussion

    def comment_discussion(
        self, number: int, body: str, *, answer: bool = False, replies: tuple[str, ...] = ()
    ) -> None:
        stamp = self.tick()
        discussion = self.discussions[number]
        discussion.comments.append(
            {"body": body, "author": "dave", "createdAt": stamp, "isAnswer": answer, "replies": list(replies)}
        )
        discussion.updated_at = stamp

    # -- serving ---------------------------------------------------------------------------

    def error_body(self, status: int) -> bytes:
        message = "API rate limit exceeded for user." if status in (403, 429) else f"HTTP {status}"
        return json.dumps({"message": message, "documentation_url": "https://docs.github.com/rest"}).encode()

    def route(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if authorization and authorization != f"Bearer {self.token}":
            return json_response(
                401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com"}
            )
        if request.path == "/graphql" and request.method == "POST":
            if not authorization:
                return json_response(401, {"message": "This endpoint requires you to be authenticated."})
            return self._graphql(request.json())
        moved = re.match(r"^/repositories/moved/issues/(\d+)$", request.path)
        if moved and int(moved.group(1)) in self.transferred:
            return json_response(200, self.transferred[int(moved.group(1))])
        prefix = f"/repos/{OWNER}/{NAME}"
        if not request.path.startswith(prefix) or (self.private and not authorization):
            return json_response(404, {"message": "Not Found"})
        rest = request.path[len(prefix) :]
        for pattern, handler in (
            (r"^$", self._repo),
            (r"^/branches/(?P<branch>.+)$", self._branch),
            (r"^/git/trees/(?P<sha>[0-9a-f]+(?::.*)?)$", self._tree),
            (r"^/git/blobs/(?P<sha>[0-9a-f]{40})$", self._blob),
            (r"^/contents/(?P<path>.+)$", self._contents),
            (r"^/compare/(?P<base>[0-9a-f]+)\.\.\.(?P<head>[0-9a-f]+)$", self._compare),
            (r"^/issues$", self._issues),
            (r"^/issues/(?P<number>\d+)$", self._issue),
            (r"^/issues/(?P<number>\d+)/comments$", self._comments),
        ):
            match = re.match(pattern, rest)
            if match:
                return handler(request, **match.groupdict())
        return json_response(404, {"message": "Not Found"})

    def _repo(self, request: Request) -> Response:
        visibility = self.visibility or ("private" if self.private else "public")
        return json_response(
            200,
            {
                "id": 1,
                "full_name": f"{OWNER}/{NAME}",
                "private": visibility != "public",
                "visibility": visibility,
                "default_branch": self.default_branch,
                "html_url": f"https://github.com/{OWNER}/{NAME}",
                "has_discussions": True,
            },
        )

    def _branch(self, request: Request, branch: str) -> Response:
        sha = self.branches.get(unquote(branch))
        if sha is None:
            return json_response(404, {"message": "Branch not found"})
        date = self.commits[sha].date
        return json_response(
            200,
            {"name": branch, "commit": {"sha": sha, "commit": {"committer": {"name": "x", "date": date}}}},
        )

    def _tree(self, request: Request, sha: str) -> Response:
        # A tree id here is "COMMIT" (the root) or "COMMIT:DIR" (a folder, for non-recursive walks).
        commit_sha, _, folder = sha.partition(":")
        commit = self.commits.get(commit_sha)
        if commit is None:
            return json_response(404, {"message": "Not Found"})
        recursive = request.query.get("recursive") not in (None, "", "0", "false")
        if recursive and self.truncate_trees:
            return json_response(200, {"sha": commit_sha, "tree": [], "truncated": True})
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, content in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            relative = path[len(prefix) :]
            parts = relative.split("/")
            for depth in range(1, len(parts)):
                folder_path = "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        folder_path,
                        {
                            "path": folder_path,
                            "mode": "040000",
                            "type": "tree",
                            "sha": f"{commit_sha}:{prefix}{folder_path}",
                        },
                    )
            if recursive or len(parts) == 1:
                entries[relative] = {
                    "path": relative,
                    "mode": "100644",
                    "type": "blob",
                    "sha": blob_sha(content),
                    "size": len(content),
                }
        return json_response(200, {"sha": sha, "tree": list(entries.values()), "truncated": False})

    def _blob(self, request: Request, sha: str) -> Response:
        content = self.blobs.get(sha)
        if content is None:
            return json_response(404, {"message": "Not Found"})
        encoded = base64.encodebytes(content).decode()  # GitHub wraps base64 at 60 characters
        return json_response(
            200, {"sha": sha, "size": len(content), "content": encoded, "encoding": "base64"}
        )

    def _contents(self, request: Request, path: str) -> Response:
        ref = request.query.get("ref") or self.default_branch
        commit = self.commits.get(self.branches.get(ref, ref))
        content = commit.files.get(unquote(path)) if commit else None
        if content is None:
            return json_response(404, {"message": "Not Found"})
        return json_response(
            200,
            {
                "type": "file",
                "path": unquote(path),
                "sha": blob_sha(content),
                "size": len(content),
                "content": base64.encodebytes(content).decode(),
                "encoding": "base64",
            },
        )

    def _compare(self, request: Request, base: str, head: str) -> Response:
        old, new = self.commits.get(base), self.commits.get(head)
        if old is None or new is None:
            return json_response(404, {"message": "Not Found"})
        files = []
        for path in sorted(set(old.files) | set(new.files)):
            before, after = old.files.get(path), new.files.get(path)
            if before == after:
                continue
            status = "added" if before is None else "removed" if after is None else "modified"
            files.append(
                {"filename": path, "status": status, "sha": blob_sha(after) if after is not None else None}
            )
        if base == head:
            status = "identical"
        elif base in self._ancestors(head):
            status = "ahead"
        else:
            status = "behind" if head in self._ancestors(base) else "diverged"
        return json_response(200, {"status": status, "ahead_by": 1, "files": files[:300], "commits": []})

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        per_page = min(int(request.query.get("per_page", 30)), 100)
        page = int(request.query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            query = {**request.query, "page": str(page + 1)}
            headers["Link"] = f'<{self.base_url}{quote(request.path)}?{urlencode(query)}>; rel="next"'
        return json_response(200, chunk, headers)

    def _issue_json(self, issue: Issue) -> dict[str, Any]:
        data: dict[str, Any] = {
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": issue.state,
            "user": {"login": issue.user},
            "labels": [{"name": label} for label in issue.labels],
            "comments": len(issue.comments),
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "html_url": f"https://github.com/{OWNER}/{NAME}/issues/{issue.number}",
            "repository_url": f"https://api.github.com/repos/{OWNER}/{NAME}",
        }
        if issue.pull_request:
            data["pull_request"] = {
                "url": f"https://api.github.com/repos/{OWNER}/{NAME}/pulls/{issue.number}"
            }
        return data

    def _issues(self, request: Request) -> Response:
        state = request.query.get("state", "open")
        since = request.query.get("since")
        chosen = [i for i in self.issues.values() if state == "all" or i.state == state]
        if since:
            chosen = [i for i in chosen if i.updated_at >= since]
        key = "updated_at" if request.query.get("sort") == "updated" else "created_at"
        chosen.sort(
            key=lambda i: (getattr(i, key), i.number),
            reverse=request.query.get("direction", "desc") == "desc",
        )
        return self._page(request, [self._issue_json(i) for i in chosen])

    def _issue(self, request: Request, number: str) -> Response:
        if int(number) in self.transferred:
            where = f"{self.base_url}/repositories/moved/issues/{number}"
            payload = {
                "message": "Moved Permanently",
                "url": where,
                "documentation_url": "https://docs.github.com",
            }
            return json_response(301, payload, {"Location": where})
        issue = self.issues.get(int(number))
        if issue is None:
            return json_response(404, {"message": "Not Found"})
        return json_response(200, self._issue_json(issue))

    def _comments(self, request: Request, number: str) -> Response:
        issue = self.issues.get(int(number))
        if issue is None:
            return json_response(404, {"message": "Not Found"})
        comments = [
            {"id": c["id"], "body": c["body"], "user": {"login": c["user"]}, "created_at": c["created_at"]}
            for c in issue.comments
        ]
        return self._page(request, comments)

    # -- GraphQL ---------------------------------------------------------------------------

    def _graphql(self, body: dict[str, Any]) -> Response:
        if self.graphql_secondary_limits > 0:
            self.graphql_secondary_limits -= 1
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            )
            return json_response(200, {"data": None, "errors": [{"message": message}]})
        if self.graphql_errors:
            return json_response(200, {"data": None, "errors": self.graphql_errors})
        query, variables = str(body.get("query", "")), body.get("variables") or {}
        operation = re.search(r"query\s+(\w+)", query)
        if variables.get("owner") != OWNER or variables.get("name") != NAME:
            return json_response(
                200,
                {
                    "data": {"repository": None},
                    "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a Repository."}],
                },
            )
        name = operation.group(1) if operation else ""
        if name == "Discussions":
            return json_response(
                200, {"data": {"repository": {"discussions": self._discussion_page(variables, full=True)}}}
            )
        if name == "DiscussionNumbers":
            return json_response(
                200, {"data": {"repository": {"discussions": self._discussion_page(variables, full=False)}}}
            )
        if name in ("Discussion", "DiscussionComments"):
            discussion = self.discussions.get(int(variables.get("number", 0)))
            if discussion is None:
                return json_response(
                    200,
                    {
                        "data": {"repository": {"discussion": None}},
                        "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a Discussion."}],
                    },
                )
            if name == "Discussion":
                return json_response(
                    200, {"data": {"repository": {"discussion": self._discussion_json(discussion)}}}
                )
            comments = self._comment_page(discussion, variables.get("after"))
            return json_response(200, {"data": {"repository": {"discussion": {"comments": comments}}}})
        return json_response(200, {"errors": [{"message": f"unknown operation {name!r}"}]})

    def _discussion_page(self, variables: dict[str, Any], *, full: bool) -> dict[str, Any]:
        first = int(variables.get("first", 10))
        if not 1 <= first <= 100:
            return {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
        ordered = sorted(self.discussions.values(), key=lambda d: (d.updated_at, d.number))
        if variables.get("direction", "DESC") == "DESC":
            ordered.reverse()
        start = _offset(variables.get("after"))
        chunk = ordered[start : start + first]
        nodes = [self._discussion_json(d) if full else {"number": d.number} for d in chunk]
        more = start + first < len(ordered)
        return {"nodes": nodes, "pageInfo": {"hasNextPage": more, "endCursor": _cursor(start + len(chunk))}}

    def _comment_page(self, discussion: Discussion, after: str | None, first: int = 50) -> dict[str, Any]:
        start = _offset(after)
        chunk = discussion.comments[start : start + first]
        nodes = [
            {
                "body": c["body"],
                "createdAt": c["createdAt"],
                "isAnswer": c["isAnswer"],
                "author": {"login": c["author"]},
                "replies": {
                    "nodes": [
                        {"body": r, "createdAt": c["createdAt"], "author": {"login": "erin"}}
                        for r in c["replies"]
                    ]
                },
            }
            for c in chunk
        ]
        more = start + first < len(discussion.comments)
        return {"nodes": nodes, "pageInfo": {"hasNextPage": more, "endCursor": _cursor(start + len(chunk))}}

    def _discussion_json(self, discussion: Discussion) -> dict[str, Any]:
        return {
            "number": discussion.number,
            "title": discussion.title,
            "body": discussion.body,
            "url": f"https://github.com/{OWNER}/{NAME}/discussions/{discussion.number}",
            "createdAt": discussion.created_at,
            "updatedAt": discussion.updated_at,
            "author": {"login": discussion.author},
            "category": {"name": discussion.category},
            "comments": self._comment_page(discussion, None),
        }


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:v2:{offset}".encode()).decode()


def _offset(cursor: object) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(str(cursor)).decode().rsplit(":", 1)[1])
