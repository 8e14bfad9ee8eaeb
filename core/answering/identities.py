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

A user never gains a principal by claiming it: entries come only from the platform's own
records or from an admin. Only chat *user* principals expand, and only in a DM's scope (a
channel's principals are the channel's); a link to another chat principal (a Slack channel, a
Discord role) is refused, so a link cannot smuggle in what a channel may read.

Storage: Redis hashes ``archivist:identity:<chat principal>`` (linked principal -> who linked it
and when) and ``archivist:identity-email:<chat principal>`` (with a TTL), plus the set
``archivist:identities`` of chat principals that have any. With Redis down the map expands
nothing: the asker sees what their chat identity alone may read (less, never more).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis

from core.answering.answers import Question
from core.errors import InputError, ServiceUnavailable

log = logging.getLogger(__name__)

EMAIL_TTL_S = 24 * 3600  # a verified address is asked for again a day later
_KEY = "archivist:identity:{chat}"
_EMAIL_KEY = "archivist:identity-email:{chat}"
_INDEX = "archivist:identities"
_CHAT_USER = re.compile(r"^(slack|discord):user:[A-Za-z0-9_.-]{1,64}$")
_CHAT_PLATFORMS = ("slack:", "discord:")
_EMAIL = re.compile(r"^[^@\s:]+@[^@\s:]+\.[^@\s:]+$")
_PRINCIPAL = re.compile(r"^[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*:\S{1,256}$")
_REDIS_ERRORS = (redis.RedisError, OSError, ServiceUnavailable)


def email_principals(email: str) -> frozenset[str]:
    """What a verified address stands for in the sources."""
    address = email.strip().lower()
    return frozenset({f"email:{address}", f"google:user:{address}"})


@dataclass(frozen=True)
class Link:
    principal: str
    by: str  # "admin" or where it was verified ("slack users.info")
    at: float


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
        if not client.hlen(_KEY.format(chat=user)):
            client.srem(_INDEX, user)
        return removed

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

    # -- answering --------------------------------------------------------------------------

    def principals_of(self, chat: str) -> frozenset[str]:
        """Every source principal ``chat`` holds (empty for anything but a chat user)."""
        if not _CHAT_USER.match(chat):
            return frozenset()
        try:
            client = self._redis()
            linked = [str(key) for key in client.hkeys(_KEY.format(chat=chat))]
            email = client.get(_EMAIL_KEY.format(chat=chat))
        except _REDIS_ERRORS as exc:
            self._warn(exc)
            return frozenset()
        found: set[str] = set()
        for principal in linked:
            found |= _expand_one(str(principal))
        if email:
            found |= email_principals(str(email))
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
