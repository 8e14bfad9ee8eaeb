"""Documents from a directory tree: Markdown, text, HTML, PDF and DOCX files.

Nothing outside the source root is ever read: directory symlinks are not followed,
file symlinks are read only when they resolve inside the root, and every read
re-checks the resolved path, since a link can be swapped between listing and reading.
Entries that cannot be listed or stat'ed are skipped with a warning; the rest syncs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from connectors.options import ConnectorOptions, Globs, Text
from connectors.parsers import PARSERS, UnreadableFile, parse_file
from core.documents import Acl, Document, DocumentRef, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch, path_wanted

log = logging.getLogger(__name__)

# Bigger files are almost always exports or archives, not handbook pages; reading them
# would stall a sync for little value.
MAX_FILE_BYTES = 25 * 1024 * 1024
BATCH_SIZE = 64
# O_NOFOLLOW: a final component swapped for a link after the check is refused by the kernel.
# O_NONBLOCK: a FIFO swapped in must not hang the sync (no effect on regular files).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class _Refused(Exception):
    """A listed file that must not be read now; the message is the reason users see."""


class FilesystemOptions(ConnectorOptions):
    """The keys of a ``type = "filesystem"`` table."""

    path: Text  # the directory to read; relative paths resolve against the config file
    include: Globs = ("**/*",)
    exclude: Globs = ()


@dataclass
class FilesystemConnector:
    name: str
    root: Path
    acl: Acl
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()
    kind: str = "filesystem"
    _warned: set[str] = field(default_factory=set, init=False, repr=False)

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> FilesystemConnector:
        # data_dir is unused: the files are their own state.
        options = FilesystemOptions.parse(settings)
        return cls(
            name=name,
            root=Path(options.path),
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            include=options.include,
            exclude=options.exclude,
        )

    def describe(self) -> str:
        return f"files under {self.root}"

    def _skip(self, path: str | os.PathLike[str], why: str) -> None:
        """Warn once per path per connector: an odd entry is not worth a warning per listing."""
        key = os.fspath(path)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("source %s: skipping %s: %s", self.name, key, why)

    def _real_root(self) -> Path:
        try:
            is_dir = stat.S_ISDIR(self.root.stat().st_mode)
        except FileNotFoundError:
            msg = f"source {self.name!r}: directory {self.root} does not exist"
            raise SourceError(msg) from None
        except OSError as exc:
            msg = f"source {self.name!r}: cannot open directory {self.root} ({exc.strerror or exc})"
            raise SourceError(msg) from None
        if not is_dir:
            msg = f"source {self.name!r}: {self.root} is a file, not a directory"
            raise SourceError(msg)
        return Path(os.path.realpath(self.root))

    def _files(self, root: Path) -> Iterator[tuple[str, os.stat_result]]:
        """(id, stat) of every wanted, non-empty regular file under the resolved root."""

        def unlistable(exc: OSError) -> None:
            if exc.filename == os.fspath(root):
                # Skipping the root would list nothing and prune the whole index.
                msg = f"source {self.name!r}: cannot list {self.root} ({exc.strerror or exc})"
                raise SourceError(msg) from exc
            self._skip(exc.filename, f"cannot list it ({exc.strerror or exc})")

        for directory, dirs, files in os.walk(root, onerror=unlistable):
            here = Path(directory)
            # Never descend through a directory symlink: what it points at inside the root
            # is listed under its real path, and what lies outside must not be read.
            kept = []
            for name in sorted(dirs):
                if name.startswith("."):
                    continue
                if os.path.islink(here / name):
                    self._skip(here / name, "directory symlinks are not followed")
                else:
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(files):
                path = here / name
                relative = path.relative_to(root).as_posix()
                if (
                    name.startswith(".")
                    or path.suffix.lower() not in PARSERS
                    or not path_wanted(relative, self.include, self.exclude)
                ):
                    continue
                info = self._regular_file(path, root)
                # An empty file has nothing to index: unlisted, an older version is pruned.
                if info is not None and info.st_size > 0:
                    yield relative, info

    def _regular_file(self, path: Path, root: Path) -> os.stat_result | None:
        if os.path.islink(path):
            try:
                target = Path(os.path.realpath(path, strict=True))
            except OSError as exc:
                self._skip(path, f"cannot resolve the symlink ({exc.strerror or exc})")
                return None
            if not target.is_relative_to(root):
                self._skip(path, "a symlink to a file outside the source root")
                return None
        try:
            info = path.stat()
        except OSError as exc:
            self._skip(path, f"cannot stat it ({exc.strerror or exc})")
            return None
        if not stat.S_ISREG(info.st_mode):
            self._skip(path, "not a regular file")
            return None
        return info

    def _read_inside(self, root: Path, relative: str) -> tuple[bytes, os.stat_result]:
        """The bytes and stat of a listed file, re-checked: it may have changed since listing."""
        real = os.path.realpath(root / relative, strict=True)
        if not Path(real).is_relative_to(root):
            raise _Refused("outside the source root")
        with os.fdopen(os.open(real, _OPEN_FLAGS), "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _Refused("not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise _Refused(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
            return file.read(), info

    def list_refs(self) -> Iterator[DocumentRef]:
        root = self._real_root()
        for relative, _ in self._files(root):
            try:
                digest = hashlib.sha256(self._read_inside(root, relative)[0]).hexdigest()
            except (OSError, _Refused) as exc:
                log.warning("source %s: cannot read %s: %s", self.name, relative, exc)
                digest = "unreadable"  # _read reports why, as a failure of this document
            yield DocumentRef(id=relative, version=digest)

    def load(self, refs: Sequence[DocumentRef]) -> Iterator[Batch]:
        root = self._real_root()
        batch: Batch = []
        for ref in refs:
            batch.append(self._read(ref, root))
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if batch:
            yield batch

    def _read(self, ref: DocumentRef, root: Path) -> Document | LoadFailure:
        path = self.root / ref.id
        try:
            data, info = self._read_inside(root, ref.id)
            mime_type, title, text = parse_file(path, data)
        except (OSError, UnreadableFile, _Refused) as exc:
            return LoadFailure(ref.id, self.name, str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - third-party parsers raise anything on hostile files
            return LoadFailure(ref.id, self.name, f"cannot parse: {type(exc).__name__}: {exc}")
        modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
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
