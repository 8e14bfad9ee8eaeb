"""A local stand-in for the Admin SDK Directory API's ``groups.list`` by member.

developers.google.com/admin-sdk/directory/reference/rest/v1/groups/list:

- ``GET /admin/directory/v1/groups?userKey=EMAIL``: the groups the user is a direct member of,
  ``{"kind": "admin#directory#groups", "groups": [{"id", "email", "name", ...}], "nextPageToken"}``;
  ``maxResults`` (1-200, default 200) and ``pageToken`` / ``nextPageToken``.
- Errors in Google's shape (``{"error": {"code", "message", "errors": [{"reason"}], "status"}}``):
  401 without the bearer token (the static one, or one ``issuer``'s token endpoint issued); 403 ``insufficientPermissions`` when the token lacks the
  ``admin.directory.group.readonly`` scope (``scope_granted = False``); 404 ``notFound`` for a
  user outside the domain; 400 ``invalid`` without ``userKey``, ``customer`` or ``domain``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.fakes.google_drive_server import DIRECTORY_SCOPE, TOKEN, FakeDrive, google_error
from tests.fakes.http_service import FakeService, Request, Response, json_response

GROUPS_PATH = "/admin/directory/v1/groups"


@dataclass
class FakeDirectory(FakeService):
    token: str = TOKEN
    users: set[str] = field(default_factory=set)  # the domain's accounts (primary emails, lower case)
    groups: dict[str, set[str]] = field(default_factory=dict)  # group email -> member emails
    scope_granted: bool = True
    max_results: int = 200  # a lower cap than Google's, to page small test domains
    issuer: FakeDrive | None = None  # whose token endpoint issued the tokens (service accounts)

    @property
    def directory_url(self) -> str:
        return self.base_url + "/admin/directory/v1"

    def add_group(self, email: str, *members: str) -> None:
        self.users |= set(members)
        self.groups[email] = set(members)

    def error_body(self, status: int) -> bytes:
        reason = "rateLimitExceeded" if status in (403, 429) else "backendError"
        return google_error(status, f"simulated HTTP {status}", reason)[2]

    def route(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        issued = self.issuer.issued_scopes.get(bearer) if self.issuer else None
        if bearer != self.token and issued is None:
            return google_error(401, "Request had invalid authentication credentials.", "authError")
        if request.path != GROUPS_PATH:
            return google_error(404, "Not Found", "notFound")
        if not self.scope_granted or (issued is not None and DIRECTORY_SCOPE not in issued):
            return google_error(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )
        user = request.query.get("userKey", "").lower()
        if not user:
            return google_error(400, "Bad Request", "invalid")
        if user not in self.users:
            return google_error(404, "Resource Not Found: userKey", "notFound")
        size = int(request.query.get("maxResults") or 200)
        if not 1 <= size <= 200:
            return google_error(400, "Invalid value for maxResults", "invalid")
        size = min(size, self.max_results)
        start = int(request.query.get("pageToken") or 0)
        mine = sorted(email for email, members in self.groups.items() if user in members)
        page = mine[start : start + size]
        body: dict[str, object] = {"kind": "admin#directory#groups", "etag": json.dumps(len(mine))}
        # A user in no group gets no "groups" key at all, not an empty list.
        if page:
            body["groups"] = [
                {"kind": "admin#directory#group", "id": f"g{n:04d}", "email": g, "name": g.split("@")[0]}
                for n, g in enumerate(page, start=start)
            ]
        if start + size < len(mine):
            body["nextPageToken"] = str(start + size)
        return json_response(200, body)
