"""Documents from a GitHub repository: its Markdown files, issues and discussions.

``[connectors.NAME] type = "github"`` with ``repo = "owner/name"`` (required), ``branch`` (the
default branch), ``include`` / ``exclude`` globs for files (``**/*.md``), ``issues`` and
``discussions`` (both true), ``api_url`` (``https://api.github.com``; GitHub Enterprise Server:
``https://HOST/api/v3``) and ``token_env`` (``GITHUB_TOKEN``). A public repository can be read
without a token (at 60 requests an hour) except its discussions: GraphQL always needs one.

``poll(cursor)`` delivers files (by commit diff, ``files.py``), then issues (by ``updated_at``,
``issues.py``), then discussions (``discussions.py``). The cursor is a small JSON object:

    {"files": {"commit": SHA, "head": SHA|null, "after": PATH}, "issues": {"since": T, "seen": [N]},
     "discussions": {...}, "acl": STAMP, "retry": [ID, ...]}

Ids are ``file:PATH``, ``issue:N`` and ``discussion:N``. Items that failed to load are read again
at the start of the next poll. Access: a public repository's documents are public; a private
or internal one's are readable by the source's ``principals`` only (private when none). When
that changes (the repository is made public, the principals are edited), everything is sent
again with the new ACL. Rate limits (403/429 with Retry-After, or x-ratelimit-remaining: 0 and
x-ratelimit-reset, or the secondary limit's message) are waited out when the wait is short,
and stop the sync with a message saying so when it is long.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, field_validator

from connectors.api_client import ApiClient, ApiError
from connectors.github.common import TRANSIENT, Repo, github_rate_limit_wait, parse_time
from connectors.github.discussions import (
    GraphQL,
    discussion_ids,
    graphql_url,
    poll_discussions,
    reload_discussion,
)
from connectors.github.files import Head, file_id, poll_files, reload_file, wanted_blobs
from connectors.github.issues import issue_ids, poll_issues, reload_issue
from connectors.options import ConnectorOptions, EnvName, Flag, HttpUrl, Strings, Text
from connectors.saas import (
    Checkpoints,
    acl_fingerprint,
    note_outcome,
    read_cursor,
    retries,
    with_grants,
)
from core.documents import Acl
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch, path_wanted

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_INCLUDE = ("**/*.md",)
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_BRANCH_FORBIDDEN = re.compile(r"[\s~^:?*\[\\]|\.\.|^[-/]|/$")


class GitHubOptions(ConnectorOptions):
    """The keys of a ``type = "github"`` table."""

    repo: Annotated[Text, Field(description='as "owner/name"')]
    branch: Text | None = None  # None: the repository's default branch
    include: Strings = DEFAULT_INCLUDE
    exclude: Strings = ()
    issues: Flag = True
    discussions: Flag = True
    api_url: HttpUrl = DEFAULT_API_URL
    token_env: EnvName = "GITHUB_TOKEN"

    @field_validator("repo")
    @classmethod
    def _owner_name(cls, repo: str) -> str:
        repo = repo.removeprefix("https://github.com/").removesuffix(".git")
        if not _REPO.match(repo) or ".." in repo:
            msg = f"'repo' must be \"owner/name\", not {repo!r}"
            raise ValueError(msg)
        return repo

    @field_validator("branch")
    @classmethod
    def _branch(cls, branch: str | None) -> str | None:
        if branch is not None and _BRANCH_FORBIDDEN.search(branch):
            msg = f"'branch' {branch!r} is not a valid branch name"
            raise ValueError(msg)
        return branch

    @field_validator("include")
    @classmethod
    def _some_globs(cls, include: tuple[str, ...]) -> tuple[str, ...]:
        if not include:
            msg = "'include' must name at least one glob"
            raise ValueError(msg)
        return include


@dataclass
class GitHubConnector:
    name: str
    repo: str  # owner/name
    grants: Acl  # what the config grants on top of the repository's own visibility
    branch: str | None = None
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    issues: bool = True
    discussions: bool = True
    api_url: str = DEFAULT_API_URL
    token_env: str = "GITHUB_TOKEN"
    kind: str = "github"
    cursor_keeps_failures: ClassVar[bool] = True  # failed ids ride in the cursor and are retried
    sleep: Callable[[float], None] = time.sleep  # tests pass a fast one

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> GitHubConnector:
        options = GitHubOptions.parse(settings)
        return cls(
            name=name,
            repo=options.repo,
            grants=Acl(public=settings.public, principals=frozenset(settings.principals)),
            branch=options.branch,
            include=options.include,
            exclude=options.exclude,
            issues=options.issues,
            discussions=options.discussions,
            api_url=options.api_url,
            token_env=options.token_env,
        )

    def describe(self) -> str:
        parts = ["Markdown" if self.include == DEFAULT_INCLUDE else "files"]
        parts += ["issues"] * self.issues + ["discussions"] * self.discussions
        return f"GitHub {self.repo} ({self.branch or 'default branch'}): {', '.join(parts)}"

    # -- PollsChanges ---------------------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        with self._client() as api:
            repo, head = self._open(api)
            state = read_cursor(self.name, cursor)
            stamp = acl_fingerprint(repo.acl)
            if state.get("acl") != stamp:
                state = {"acl": stamp}  # who may read changed: send everything again
            checkpoints = Checkpoints(state, cursor)
            graphql = GraphQL(repo, graphql_url(self.api_url)) if self.discussions else None
            yield from self._retry(repo, graphql, head, state, checkpoints)
            yield from poll_files(repo, state, checkpoints, self._wanted, head)
            if self.issues:
                yield from poll_issues(repo, state, checkpoints)
            if graphql is not None:
                yield from poll_discussions(graphql, state, checkpoints)

    def list_ids(self) -> Iterator[str]:
        with self._client() as api:
            repo, head = self._open(api)
            ids = [file_id(blob.path) for blob in wanted_blobs(repo, head.sha, self._wanted)]
            if self.issues:
                ids += issue_ids(repo)
            if self.discussions:
                ids += discussion_ids(GraphQL(repo, graphql_url(self.api_url)))
        yield from ids  # only once every listing succeeded: a half listing would prune too much

    # -- internals ------------------------------------------------------------------------

    def _wanted(self, path: str) -> bool:
        return path_wanted(path, self.include, self.exclude)

    def _client(self) -> ApiClient:
        token = os.environ.get(self.token_env, "").strip()
        if not token and self.discussions:
            msg = (
                f"source {self.name!r}: {self.token_env} is not set, and GitHub's GraphQL API (discussions) "
                f"needs a token: export {self.token_env}, or set discussions = false"
            )
            raise SourceError(msg)
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "Archivist",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return ApiClient(
            self.name,
            "GitHub",
            self.api_url,
            headers=headers,
            credential_hint=(
                f"set {self.token_env} to a token that can read {self.repo} "
                "(fine-grained: Contents, Issues and Discussions read-only)"
            ),
            sleep=self.sleep,
            rate_limit_wait=github_rate_limit_wait,
            transient=TRANSIENT,
        )

    def _open(self, api: ApiClient) -> tuple[Repo, Head]:
        """The repository (visibility, default branch) and the branch head to read."""
        try:
            info = api.get_json(f"/repos/{self.repo}")
        except ApiError as exc:
            if exc.status == 404:
                msg = (
                    f"source {self.name!r}: repository {self.repo} does not exist on {self.api_url}, "
                    f"or {self.token_env} cannot read it"
                )
                raise SourceError(msg) from None
            raise
        branch = self.branch or str(info.get("default_branch") or "main")
        try:
            found = api.get_json(f"/repos/{self.repo}/branches/{branch}")
        except ApiError as exc:
            if exc.status == 404:
                msg = (
                    f"source {self.name!r}: branch {branch!r} does not exist in {self.repo} (or it is empty)"
                )
                raise SourceError(msg) from None
            raise
        commit = found.get("commit") or {}
        committed = ((commit.get("commit") or {}).get("committer") or {}).get("date")
        # "internal" repositories are visible to a whole enterprise, not to everyone: private here.
        public = info.get("visibility", "private" if info.get("private") else "public") == "public"
        acl = with_grants(Acl(public=public), self.grants.public, self.grants.principals)
        html_url = str(info.get("html_url") or f"https://github.com/{self.repo}").rstrip("/")
        repo = Repo(api, self.name, self.repo, html_url, branch, acl)
        return repo, Head(str(commit.get("sha", "")), parse_time(committed))

    def _retry(
        self, repo: Repo, graphql: GraphQL | None, head: Head, state: dict, checkpoints: Checkpoints
    ) -> Iterator[tuple[Batch, str]]:
        pending = retries(state)
        for start in range(0, len(pending), 32):
            batch: Batch = []
            for item_id in pending[start : start + 32]:
                kind, _, key = item_id.partition(":")
                if kind == "file":
                    item = reload_file(repo, key, head.committed_at)
                elif kind == "issue" and self.issues:
                    item = reload_issue(repo, key)
                elif kind == "discussion" and graphql is not None:
                    item = reload_discussion(graphql, key)
                else:
                    item = None  # that part is no longer synced
                note_outcome(state, item_id, item)
                if item is not None:
                    batch.append(item)
            yield from checkpoints.emit(batch)
