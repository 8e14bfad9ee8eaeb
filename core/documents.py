"""The values that flow from connectors through sync into the index."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Acl:
    """Who may read a document: everyone (``public``) or the listed principals.

    Principals are opaque strings such as ``slack:U123``, ``discord:role:42`` or
    ``group:finance``. The default is private with no principals: nobody but an
    explicit grant sees a document whose readers a connector could not tell.
    """

    public: bool = False
    principals: frozenset[str] = frozenset()

    @classmethod
    def everyone(cls) -> Acl:
        return cls(public=True)


@dataclass(frozen=True)
class DocumentRef:
    """A document as listed by a source, before its content is read.

    ``version`` changes whenever the content may have changed (a content hash,
    an ETag, a revision number), so unchanged documents are never re-read.
    """

    id: str
    version: str


@dataclass(frozen=True)
class Document:
    id: str
    source: str
    title: str
    text: str
    url: str = ""
    path: str = ""
    version: str = ""
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    acl: Acl = Acl()
    mime_type: str = "text/markdown"

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text)


@dataclass(frozen=True)
class LoadFailure:
    """One document a connector could not read; the rest of the sync goes on."""

    id: str
    source: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, the unit that is embedded, indexed and cited."""

    id: str
    document_id: str
    source: str
    title: str
    text: str
    heading_path: tuple[str, ...]
    position: int
    url: str
    path: str
    content_hash: str
    version: str
    updated_at: datetime
    acl: Acl

    @property
    def location(self) -> str:
        return self.url or self.path

    def search_text(self) -> str:
        """What is embedded and full-text indexed: the passage with its headings."""
        headings = [h for h in self.heading_path if h != self.title]
        trail = " > ".join((self.title, *headings))
        return f"{trail}\n\n{self.text}"


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()
