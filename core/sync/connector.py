"""The connector interface: every source yields the same Document batches.

A connector is built from its named config table and offers capabilities as
small protocols, in the manner of Onyx's connectors:

- ``list_refs()``  every document that exists now, with a cheap version stamp.
  The sync engine re-reads only new or changed ones and prunes the vanished.
- ``load(refs)``   read those documents, in batches. A document that cannot be
  read is yielded as a ``LoadFailure`` value; it never aborts the batch.

Sources that can only be read whole implement ``load_all`` instead; the engine
then diffs by content hash.

SaaS sources (Confluence, Notion, GitHub, Drive, Slack) implement ``PollsChanges``:

- ``poll(cursor)``  what changed since an opaque cursor (usually a modified time),
  oldest change first, in batches; each batch comes with the cursor to resume
  after it. The engine saves that cursor only once the batch is indexed, so a
  sync killed midway resumes there: nothing lost, nothing indexed twice.
- ``list_ids()``    the id of every document that exists now, for pruning.

Two optional declarations the engine honours, each a protocol of its own:

- ``HasSourceAcl``: ``acl``, the readers set in config for the whole source. A listed
  source whose ``acl`` changes has every document re-read, so a changed grant reaches
  every chunk even when no document changed.
- ``CarriesFailuresInCursor``: ``cursor_keeps_failures = True`` (a ``ClassVar``) on a
  poller whose cursor itself records the ids that failed, so they are retried. Without it
  (the default), the engine stops saving the cursor at the first failed document, and the
  next sync polls again from there.
- ``ConfirmsVanished``: ``still_there(ids)`` for a poller whose ``list_ids`` may miss documents
  that exist (Notion's search is not exhaustive). The engine asks it about every document it
  would prune and prunes only those it does not confirm.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from typing import ClassVar, Protocol, runtime_checkable

from core.documents import Acl, Document, DocumentRef, LoadFailure

Batch = list[Document | LoadFailure]


@runtime_checkable
class Connector(Protocol):
    name: str
    kind: str

    def describe(self) -> str:
        """One line saying where this source reads from."""
        ...


@runtime_checkable
class ListsRefs(Protocol):
    def list_refs(self) -> Iterator[DocumentRef]: ...

    def load(self, refs: Sequence[DocumentRef]) -> Iterator[Batch]: ...


@runtime_checkable
class LoadsAll(Protocol):
    def load_all(self) -> Iterator[Batch]: ...


@runtime_checkable
class PollsChanges(Protocol):
    def poll(self, cursor: str | None) -> Iterator[tuple[Batch, str]]:
        """Documents changed since ``cursor`` (None: all of them), each batch with its resume cursor."""
        ...

    def list_ids(self) -> Iterator[str]:
        """Every document id that exists in the source now; no bodies are read."""
        ...


@runtime_checkable
class HasSourceAcl(Protocol):
    """A source whose readers are set in config, the same for every document it yields."""

    acl: Acl


@runtime_checkable
class ConfirmsVanished(Protocol):
    """A poller whose listing can miss documents; it checks those the engine would prune."""

    def still_there(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` still exist (checked one by one); raises when it cannot tell."""
        ...


@runtime_checkable
class CarriesFailuresInCursor(Protocol):
    """A poller whose cursor records failed ids itself; ``True`` lets the engine save it past a failure."""

    cursor_keeps_failures: ClassVar[bool]


def path_wanted(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a source-relative path passes the include and exclude globs."""

    def matches(patterns: Sequence[str]) -> bool:
        # "**/*.md" should also match "top.md" at the root, as users expect.
        return any(fnmatch(relative, p) or fnmatch(relative, p.removeprefix("**/")) for p in patterns)

    return matches(include) and not matches(exclude)
