"""Who a chat user is in each source: the identity map.

A Drive file shared with ``google:user:ada@acme.example`` or a Confluence page restricted to
Ada's account reaches Ada's DM only if the core knows that ``slack:user:U0ADA`` is Ada. The map
holds, per chat user, the source principals they hold:

- **verified email** (``note_email``): the address the chat platform itself vouches for (Slack's
  ``users.info`` with ``is_email_confirmed``). It stands for ``email:<address>`` (Confluence pages
  carry it for restricted users whose address Confluence shows) and ``google:user:<address>``.
  Kept for ``EMAIL_TTL_S`` and looked up again after, so a changed address does not linger.
- **admin links** (``link``): ``archivist identities link discord:user:42 ada@acme.example``
  for platforms that give bots no email (Discord), or to add a principal by hand
  (``confluence:user:<accountId>``, ``google:group:eng@acme.example``). Kept until unlinked.

- **link requests** (``request_link``): a Discord user asks to be linked to an address with
  ``/link``; the request grants nothing until an admin approves it (``approve_link``, from
  Discord's ``/link-approve`` or ``archivist identities approve``), which makes it an admin
  link. Unanswered requests lapse after ``REQUEST_TTL_S``.

- **group memberships** (``refresh_groups``): sources that can say which groups a person is in
  (a ``GroupDirectory``: Google Workspace's Directory API, Confluence's ``user/memberof``) are
  asked by the worker for each chat user's principals; what they answer (``google:group:...``,
  ``confluence:group:...``, and the source's own account id for an email) is kept per source
  for ``GROUPS_TTL_S`` and asked again after ``GROUPS_REFRESH_S``. A source that cannot tell
  this time (an outage) keeps its last answer until the TTL runs out; one that refuses (403,
  scope not granted) answers nothing, so the user reads without groups (less, never more).

A user never gains a principal by claiming it: entries come only from the platform's own
records, from a source's directory or from an admin. Only chat *user* principals expand, and
only in a DM's scope (a channel's principals are the channel's); a link to another chat
principal (a Slack channel, a Discord role) is refused, so a link cannot smuggle in what a
channel may read.

Storage: Redis hashes ``archivist:identity:<chat principal>`` (linked principal -> who linked it
and when), ``archivist:identity-groups:<chat principal>`` (source -> its answer and when) and
``archivist:identity-email:<chat principal>`` (with a TTL), plus the set
``archivist:identities`` of chat principals that have any. With Redis down the map expands
nothing: the asker sees what their chat identity alone may read (less, never more).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import redis

from core.answering.answers import Question
from core.errors import InputError, ServiceUnavailable, SourceError

log = logging.getLogger(__name__)

EMAIL_TTL_S = 24 * 3600  # a verified address is asked for again a day later
_KEY = "archivist:identity:{chat}"
_EMAIL_KEY = "archivist:identity-email:{chat}"
_GROUPS_KEY = "archivist:identity-groups:{chat}"
GROUPS_REFRESH_S = 3600  # a source's memberships are asked for again an hour later
GROUPS_TTL_S = 6 * 3600  # and dropped when a source has not confirmed them for six hours
GROUPS_RETRY_S = 300  # a source that could not answer is not asked again before this
_INDEX = "archivist:identities"
_REQUESTS = "archivist:identity-requests"  # chat user -> {"target", "at"}: waiting for an admin
REQUEST_TTL_S = 7 * 24 * 3600
_CHAT_USER = re.compile(r"^(slack|discord):user:[A-Za-z0-9_.-]{1,64}$")
_CHAT_PLATFORMS = ("slack:", "discord:")
_EMAIL = re.compile(r"^[^@\s:]+@[^@\s:]+\.[^@\s:]+$")
_PRINCIPAL = re.compile(r"^[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*:\S{1,256}$")
_REDIS_ERRORS = (redis.RedisError, OSError, ServiceUnavailable)


def email_principals(email: str) -> frozenset[str]:
    """What a verified address stands for in the sources."""
    address = email.strip().lower()
    return frozenset({f"email:{address}", f"google:user:{address}"})


@runtime_checkable
class GroupDirectory(Protocol):
    """A source that can say which groups (and which account of its own) a person holds."""

    name: str

    def memberships(self, principals: frozenset[str]) -> frozenset[str] | None:
        """The source principals a person holding ``principals`` also holds (their groups);
        empty when the source knows of none or may not say (scope not granted); None when it
        cannot tell this time (then the last answer stands)."""
        ...


@dataclass(frozen=True)
class Link:
    principal: str
    by: str  # "admin" or where it was verified ("slack users.info")
    at: float


@dataclass(frozen=True)
class LinkRequest:
    chat: str  # who asked
    target: str  # what they wrote: an email address or a principal
    at: float

    @property
    def principal(self) -> str:
        return _target(self.target)


def _chat_user(value: str) -> str:
    chat = value.strip()
    if not _CHAT_USER.match(chat):
        msg = f"{value!r} is not a chat user: write slack:user:U0123 or discord:user:123456789"
        raise InputError(msg)
    return chat


def _target(value: str) -> str:
    """The principal an admin links: an email address, or a source principal."""
    text = value.strip()
    if _EMAIL.match(text):
        return f"email:{text.lower()}"
    if text.startswith(_CHAT_PLATFORMS):
        msg = f"{text!r} is a chat principal; link a chat user to an email or a source principal"
        raise InputError(msg)
    if not _PRINCIPAL.match(text):
        msg = f"{value!r} is neither an email address nor a principal such as confluence:user:ACCOUNT_ID"
        raise InputError(msg)
    return text


def _expand_one(principal: str) -> frozenset[str]:
    if principal.startswith("email:"):
        return email_principals(principal.removeprefix("email:"))
    return frozenset({principal})


class IdentityMap:
    """The identity map in Redis; ``redis_client`` is called for the client (it may raise)."""

    def __init__(self, redis_client: Callable[[], redis.Redis], *, clock: Callable[[], float] = time.time):
        self._redis = redis_client
        self._clock = clock
        self._warned = False

    # -- admin -----------------------------------------------------------------------------

    def link(self, chat: str, target: str, *, by: str = "admin") -> str:
        """Give ``chat`` the principal ``target`` names; returns that principal."""
        user, principal = _chat_user(chat), _target(target)
        client = self._redis()
        client.hset(_KEY.format(chat=user), principal, json.dumps({"by": by, "at": self._clock()}))
        client.sadd(_INDEX, user)
        return principal

    def unlink(self, chat: str, target: str) -> bool:
        user, principal = _chat_user(chat), _target(target)
        client = self._redis()
        removed = bool(client.hdel(_KEY.format(chat=user), principal))
        client.delete(_GROUPS_KEY.format(chat=user))  # looked up for an identity that changed
        if not client.hlen(_KEY.format(chat=user)):
            client.srem(_INDEX, user)
        return removed

    # -- requests an admin approves ----------------------------------------------------------

    def request_link(self, chat: str, target: str) -> str:
        """``chat`` asks to read as ``target``; nothing is granted until an admin approves.
        A newer request replaces an older one. Returns the principal asked for."""
        user, principal = _chat_user(chat), _target(target)
        self._redis().hset(_REQUESTS, user, json.dumps({"target": target.strip(), "at": self._clock()}))
        return principal

    def link_requests(self) -> list[LinkRequest]:
        """Requests waiting for an admin, oldest first; lapsed ones are dropped."""
        client = self._redis()
        waiting, lapsed = [], []
        for chat, raw in client.hgetall(_REQUESTS).items():
            try:
                entry = json.loads(raw)
                request = LinkRequest(str(chat), str(entry["target"]), float(entry["at"]))
                request.principal  # noqa: B018 - a stored target that no longer parses is dropped
            except (ValueError, TypeError, KeyError, InputError):
                lapsed.append(chat)
                continue
            if self._clock() - request.at > REQUEST_TTL_S:
                lapsed.append(chat)
            else:
                waiting.append(request)
        if lapsed:
            client.hdel(_REQUESTS, *lapsed)
        return sorted(waiting, key=lambda request: request.at)

    def approve_link(self, chat: str, *, by: str) -> str | None:
        """Make ``chat``'s waiting request an admin link; the principal, or None if none waits."""
        user = _chat_user(chat)
        request = next((r for r in self.link_requests() if r.chat == user), None)
        if request is None:
            return None
        self.link(user, request.target, by=by)
        self._redis().hdel(_REQUESTS, user)
        return request.principal

    def decline_link(self, chat: str) -> bool:
        return bool(self._redis().hdel(_REQUESTS, _chat_user(chat)))

    def users(self) -> list[str]:
        """Chat users with any admin link or verified email."""
        client = self._redis()
        return sorted(str(u) for u in client.smembers(_INDEX))

    def show(self, chat: str) -> tuple[list[Link], str | None]:
        """The admin links of ``chat`` and its verified email (None when unknown or expired)."""
        user = _chat_user(chat)
        client = self._redis()
        links = []
        for principal, raw in sorted(client.hgetall(_KEY.format(chat=user)).items()):
            info = json.loads(raw)
            links.append(Link(str(principal), str(info.get("by", "admin")), float(info.get("at", 0))))
        email = client.get(_EMAIL_KEY.format(chat=user))
        return links, str(email) if email else None

    # -- what the chat platforms verified ---------------------------------------------------

    def note_email(self, chat: str, email: str) -> None:
        """The platform vouches that ``chat`` owns ``email`` (kept for EMAIL_TTL_S)."""
        user = _chat_user(chat)
        if not _EMAIL.match(email.strip()):
            return
        try:
            client = self._redis()
            client.set(_EMAIL_KEY.format(chat=user), email.strip().lower(), ex=EMAIL_TTL_S)
            client.sadd(_INDEX, user)
        except _REDIS_ERRORS as exc:
            self._warn(exc)

    def knows_email(self, chat: str) -> bool:
        """Whether a verified email is on record (then the platform need not be asked again)."""
        try:
            return bool(self._redis().exists(_EMAIL_KEY.format(chat=_chat_user(chat))))
        except _REDIS_ERRORS as exc:
            self._warn(exc)
            return False

    # -- group memberships, from the sources' directories ----------------------------------

    def groups(self, chat: str) -> dict[str, tuple[frozenset[str], float]]:
        """Per source: the memberships it confirmed for ``chat`` and when (expired ones left out)."""
        raw = self._redis().hgetall(_GROUPS_KEY.format(chat=_chat_user(chat)))
        return self._fresh_groups(raw)

    def refresh_groups(self, directories: Iterable[GroupDirectory]) -> int:
        """Ask each directory about every known chat user whose answer is due; returns how many
        answers were stored. A directory that fails is not asked again in this run."""
        sources = list(directories)
        if not sources:
            return 0
        try:
            users = self.users()
        except _REDIS_ERRORS as exc:
            self._warn(exc)
            return 0
        stored, failed = 0, set()
        for user in users:
            try:
                held = self._redis().hgetall(_GROUPS_KEY.format(chat=user))
                own = self._own_principals(user)
            except _REDIS_ERRORS as exc:
                self._warn(exc)
                return stored
            for directory in sources:
                if directory.name in failed or not self._due(held.get(directory.name)):
                    continue
                try:
                    found = directory.memberships(own)
                except SourceError as exc:
                    log.warning("%s: cannot read group memberships now (%s); later", directory.name, exc)
                    failed.add(directory.name)
                    found = None
                stored += self._store_groups(user, directory.name, held.get(directory.name), found)
        return stored

    def _due(self, raw: object) -> bool:
        entry = _entry(raw)
        if entry is None:
            return True
        now = self._clock()
        return now - entry["at"] >= GROUPS_REFRESH_S and now - entry["tried"] >= GROUPS_RETRY_S

    def _store_groups(self, user: str, source: str, old: object, found: frozenset[str] | None) -> int:
        now = self._clock()
        if found is None:  # could not tell: keep the last answer (until its TTL), note the try
            entry = _entry(old) or {"principals": [], "at": 0.0, "tried": now}
            value = {**entry, "tried": now}
        else:
            kept = sorted(p for p in found if _PRINCIPAL.match(p) and not p.startswith(_CHAT_PLATFORMS))
            value = {"principals": kept, "at": now, "tried": now}
        try:
            client = self._redis()
            client.hset(_GROUPS_KEY.format(chat=user), source, json.dumps(value))
            client.expire(_GROUPS_KEY.format(chat=user), GROUPS_TTL_S)
        except _REDIS_ERRORS as exc:
            self._warn(exc)
            return 0
        return int(found is not None)

    def _fresh_groups(self, raw: dict[str, str]) -> dict[str, tuple[frozenset[str], float]]:
        now, fresh = self._clock(), {}
        for source, value in raw.items():
            entry = _entry(value)
            if entry is not None and now - entry["at"] < GROUPS_TTL_S:
                fresh[str(source)] = (frozenset(entry["principals"]), entry["at"])
        return fresh

    # -- answering --------------------------------------------------------------------------

    def _own_principals(self, chat: str) -> frozenset[str]:
        """What ``chat`` holds through links and a confirmed email (no groups)."""
        client = self._redis()
        linked = [str(key) for key in client.hkeys(_KEY.format(chat=chat))]
        email = client.get(_EMAIL_KEY.format(chat=chat))
        found: set[str] = set()
        for principal in linked:
            found |= _expand_one(str(principal))
        if email:
            found |= email_principals(str(email))
        return frozenset(found)

    def principals_of(self, chat: str) -> frozenset[str]:
        """Every source principal ``chat`` holds (empty for anything but a chat user)."""
        if not _CHAT_USER.match(chat):
            return frozenset()
        try:
            found = set(self._own_principals(chat))
            groups = self._fresh_groups(self._redis().hgetall(_GROUPS_KEY.format(chat=chat)))
        except _REDIS_ERRORS as exc:
            self._warn(exc)
            return frozenset()
        if found:  # memberships count only while the identity they were looked up for stands
            for principals, _ in groups.values():
                found |= principals
        return frozenset(found)

    def expand(self, question: Question) -> Question:
        """The question with its chat users' linked principals added (a DM's scope grows; a
        channel's has no user principal and stays as it is)."""
        extra: set[str] = set()
        for principal in question.principals:
            extra |= self.principals_of(principal)
        if not extra - question.principals:
            return question
        return replace(question, principals=question.principals | extra)

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            log.warning("the identity map is unavailable (%s); DMs read with chat identities only", exc)
            self._warned = True


def _entry(raw: object) -> dict[str, Any] | None:
    """A stored directory answer: {"principals": [...], "at": when answered, "tried": when asked}."""
    if raw is None:
        return None
    try:
        value = json.loads(str(raw))
        principals = [str(p) for p in value["principals"]]
        at = float(value["at"])
        return {"principals": principals, "at": at, "tried": float(value.get("tried", at))}
    except (ValueError, TypeError, KeyError):
        return None
