"""What the polling SaaS connectors (GitHub, Google Drive, Slack channels) share.

- ``Position``: where a listing sorted by modified time stands. A modified time alone is not
  enough: several items can share one timestamp, and a batch may end between them. The position
  keeps the ids already taken at its timestamp, so a listing can ask again from that timestamp
  inclusively (``>=``) and skip exactly what it already yielded: nothing lost, nothing twice.
- ``CursorState``: the small JSON document a connector's resume cursor is. A cursor that cannot
  be read (from an older version, or damaged) means "start again from the beginning", with a
  warning, never a crash.
- ``token_from_env``: credentials come only from the environment, named by ``token_env``.
- ``Checkpoints``: yields each batch with its cursor, and an empty batch when only the cursor
  moved (a commit that touched no wanted file still moves a git position).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.api_client import ApiError
from connectors.parsers import UnreadableFile
from core.documents import Acl, Document, LoadFailure
from core.errors import SourceError
from core.sync.connector import Batch

log = logging.getLogger(__name__)

# Ids kept per position: only those sharing the last timestamp, so this stays tiny unless a bulk
# edit stamped thousands of items with one time; past the cap the oldest are dropped (those items
# are then read once more on the next poll, which is harmless).
MAX_SEEN_AT_POSITION = 1000
# Items that failed to load are retried at the start of the next poll, whatever their modified
# time; more than this many failing at once means something is badly wrong, not one bad item.
MAX_RETRIES = 500


@dataclass(frozen=True)
class Position:
    """Everything modified before ``since``, and the items ``seen`` at exactly ``since``, is done."""

    since: str = ""
    seen: tuple[str, ...] = ()

    def is_new(self, stamp: str, item_id: str, key: Any = None) -> bool:
        """Whether an item modified at ``stamp`` lies after this position.

        ``key`` turns stamps into comparable values when their text does not sort (Slack's ts).
        """
        if not self.since:
            return True
        order = key or (lambda value: value)
        here, there = order(self.since), order(stamp)
        return there > here or (there == here and item_id not in self.seen)

    def advanced(self, stamp: str, item_id: str) -> Position:
        if stamp == self.since:
            return Position(stamp, (*self.seen, item_id)[-MAX_SEEN_AT_POSITION:])
        return Position(stamp, (item_id,))

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "seen": list(self.seen)}

    @classmethod
    def from_json(cls, value: object) -> Position:
        if not isinstance(value, dict):
            return cls()
        since = value.get("since")
        seen = value.get("seen")
        if not isinstance(since, str) or not isinstance(seen, list):
            return cls()
        return cls(since, tuple(str(item) for item in seen))


def read_cursor(source: str, cursor: str | None) -> dict[str, Any]:
    """The cursor's JSON object; {} for None or anything unreadable (then everything is read again)."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        log.warning("%s: the saved sync position is unreadable; reading the whole source again", source)
        return {}
    return value


def write_cursor(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


class Checkpoints:
    """Pairs batches with the cursor of the state they leave behind, never repeating a bare cursor."""

    def __init__(self, state: dict[str, Any], initial: str | None) -> None:
        self.state = state
        self._last = initial

    def emit(self, batch: Batch) -> Iterator[tuple[Batch, str]]:
        cursor = write_cursor(self.state)
        if batch or cursor != self._last:
            self._last = cursor
            yield batch, cursor


def note_outcome(state: dict[str, Any], item_id: str, item: Document | LoadFailure | None) -> None:
    """Keep a failed item's id in the cursor so the next poll reads it again; forget it otherwise."""
    retry = [i for i in retries(state) if i != item_id]
    if isinstance(item, LoadFailure):
        retry.append(item_id)
    if retry:
        state["retry"] = retry[-MAX_RETRIES:]
    else:
        state.pop("retry", None)


def retries(state: dict[str, Any]) -> list[str]:
    value = state.get("retry", [])
    return [str(item) for item in value] if isinstance(value, list) else []


def acl_fingerprint(acl: Acl) -> str:
    """A short stamp of an ACL: when it changes, documents already indexed must be re-sent."""
    text = ("public" if acl.public else "private") + "\n" + "\n".join(sorted(acl.principals))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_grants(acl: Acl, public: bool, principals: Iterable[str]) -> Acl:
    """The source's own ACL plus what the config grants (``public = true``, ``principals``)."""
    return Acl(public=acl.public or public, principals=acl.principals | frozenset(principals))


def token_from_env(source: str, variable: str, what: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        msg = f"source {source!r}: {variable} is not set: export {what}"
        raise SourceError(msg)
    return value


def stops_sync(exc: ApiError) -> bool:
    """Errors that stop the whole sync rather than fail one item: credentials and rate limits."""
    return exc.status == 401 or exc.rate_limited


def unparsable(exc: Exception) -> str:
    """Why a downloaded file could not be read, as the sync report says it."""
    if isinstance(exc, UnreadableFile):
        return str(exc) or "unreadable file"
    return f"cannot parse: {type(exc).__name__}: {exc}"


def parse_time(value: object) -> datetime | None:
    """An aware datetime from an API's ISO 8601 stamp ("2026-11-21T09:30:12.345Z"); None if not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
