"""Documents from a directory tree: Markdown, text, HTML, PDF and DOCX files."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Batch, path_wanted
from connectors.parsers import PARSERS, UnreadableFile, parse_file
from core.documents import Acl, Document, DocumentRef, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings

log = logging.getLogger(__name__)

# Bigger files are almost always exports or archives, not handbook pages; reading them
# would stall a sync for little value.
MAX_FILE_BYTES = 25 * 1024 * 1024
BATCH_SIZE = 64


@dataclass
class FilesystemConnector:
    name: str
    root: Path
    acl: Acl
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()
    kind: str = "filesystem"

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> FilesystemConnector:
        # data_dir is unused: the files are their own state.
        options = settings.options({"path", "include", "exclude"})
        if "path" not in options:
            msg = "'path' is required for a filesystem source"
            raise ValueError(msg)
        return cls(
            name=name,
            root=Path(str(options["path"])),
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            include=tuple(options.get("include", ("**/*",))),  # type: ignore[arg-type]
            exclude=tuple(options.get("exclude", ())),  # type: ignore[arg-type]
        )

    def describe(self) -> str:
        return f"files under {self.root}"

    def _files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            msg = f"source {self.name!r}: directory {self.root} does not exist"
            raise SourceError(msg)
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if any(part.startswith(".") for part in path.relative_to(self.root).parts):
                continue
            if (
                path.is_file()
                and path.suffix.lower() in PARSERS
                and path_wanted(relative, self.include, self.exclude)
            ):
                yield path

    def list_refs(self) -> Iterator[DocumentRef]:
        for path in self._files():
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                digest = "unreadable"
            yield DocumentRef(id=path.relative_to(self.root).as_posix(), version=digest)

    def load(self, refs: Sequence[DocumentRef]) -> Iterator[Batch]:
        batch: Batch = []
        for ref in refs:
            batch.append(self._read(ref))
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if batch:
            yield batch

    def _read(self, ref: DocumentRef) -> Document | LoadFailure:
        path = self.root / ref.id
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                return LoadFailure(ref.id, self.name, f"larger than {MAX_FILE_BYTES // 2**20} MiB")
            data = path.read_bytes()
            mime_type, title, text = parse_file(path, data)
        except (OSError, UnreadableFile) as exc:
            return LoadFailure(ref.id, self.name, str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - third-party parsers raise anything on hostile files
            return LoadFailure(ref.id, self.name, f"cannot parse: {type(exc).__name__}: {exc}")
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return Document(
            id=ref.id,
            source=self.name,
            title=title,
            text=text,
            path=str(path),
            version=hashlib.sha256(data).hexdigest(),
            updated_at=modified,
            acl=self.acl,
            mime_type=mime_type,
        )
