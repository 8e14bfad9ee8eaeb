"""Documents from a git repository: the files of one branch, read from commits.

The repository is a local path (read in place with ``git -C``) or a clone URL
(``https://``, ``ssh://``, ``git@host:path``, ``file://``), kept as a bare clone
under ``DATA_DIR/git/NAME`` (or ``cache_dir``) and fetched on each sync.

Incremental by commit: ``list_refs`` lists the files at the branch head with
``git ls-tree`` and versions each by its blob sha, so an unchanged file is never
re-read, a rename is a delete plus an add of the same blob, and a deleted file
is pruned. ``load`` reads the blobs of a batch through one ``git cat-file
--batch`` process. Only committed content is indexed, never a working tree.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Annotated
from urllib.parse import quote

from pydantic import Field, field_validator

from connectors.options import ConnectorOptions, Globs, Text
from connectors.parsers import PARSERS, UnreadableFile, parse_file
from core.documents import Acl, Document, DocumentRef, LoadFailure
from core.errors import SourceError
from core.settings import ConnectorSettings
from core.sync.connector import Batch, path_wanted

log = logging.getLogger(__name__)

# Bigger files are almost always exports or archives, not handbook pages (as for files on disk).
MAX_FILE_BYTES = 25 * 1024 * 1024
BATCH_SIZE = 64

# Local plumbing (rev-parse, ls-tree, config) answers in well under a second even on
# large repositories; a minute only guards against a hung filesystem or lock.
GIT_TIMEOUT_S = 60
# A first clone over the network copies the whole history; big repositories on slow
# links take minutes, but a sync must not hang forever on a stalled server.
CLONE_TIMEOUT_S = 900
# A fetch only transfers new commits; five minutes is generous and still bounded.
FETCH_TIMEOUT_S = 300
# Reading one blob from cat-file (at most MAX_FILE_BYTES) is local and fast; this
# bounds a wedged git process, per object, not the whole batch.
BLOB_TIMEOUT_S = 60
# Finding each file's last commit walks history newest first and stops once every
# wanted file is seen; the walk is capped so a huge history cannot stall a sync.
HISTORY_TIMEOUT_S = 120
MAX_HISTORY_COMMITS = 5000

DEFAULT_INCLUDE = ("**/*.md", "**/*.txt", "**/*.html", "**/*.pdf", "**/*.docx")
URL_FIELDS = {"branch": "main", "path": "a/b.md", "commit": "0" * 40}

# Regular files only: symlinks (120000) hold a link target and submodules (160000) a commit.
_FILE_MODES = {"100644", "100755"}
_REPOSITORY_VARIABLES = {
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
}  # fmt: skip
# scp-like remotes as git reads them: "user@host:path" or "host:path" before any slash.
_SCP_LIKE = re.compile(r"^(?:[\w.+-]+@)?[\w.-]+:(?!//)")


def _is_remote(repo: str) -> bool:
    if "://" in repo:
        return True
    # "C:\repo" is a Windows drive, not a host called C.
    return bool(_SCP_LIKE.match(repo)) and not re.match(r"^[A-Za-z]:[\\/]", repo)


class GitOptions(ConnectorOptions):
    """The keys of a ``type = "git"`` table."""

    repo: Annotated[Text, Field(description="a local path or a clone URL")]
    branch: Text | None = None  # None: the remote's default branch
    include: Globs = DEFAULT_INCLUDE
    exclude: Globs = ()
    url_template: Text = ""  # a link per file, from the fields {branch}, {path} and {commit}
    cache_dir: Text | None = None  # where a remote is cloned; default: under the data dir

    @field_validator("repo")
    @classmethod
    def _not_an_option(cls, repo: str) -> str:
        if repo.startswith("-"):
            msg = f"'repo' {repo!r} is not a path or URL"
            raise ValueError(msg)
        return repo

    @field_validator("branch")
    @classmethod
    def _branch_name(cls, branch: str | None) -> str | None:
        if branch is not None and (branch.startswith("-") or any(c in branch for c in " ~^:?*[\\")):
            msg = f"'branch' {branch!r} is not a valid branch name"
            raise ValueError(msg)
        return branch

    @field_validator("url_template")
    @classmethod
    def _template(cls, url_template: str) -> str:
        try:
            url_template.format(**URL_FIELDS)
        except (KeyError, IndexError, ValueError) as exc:
            msg = (
                f"'url_template' {url_template!r} is not a valid template ({exc}); "
                "use the fields {branch}, {path} and {commit}"
            )
            raise ValueError(msg) from None
        return url_template

    @field_validator("include")
    @classmethod
    def _some_include(cls, include: tuple[str, ...]) -> tuple[str, ...]:
        if not include:
            msg = "'include' must name at least one glob"
            raise ValueError(msg)
        return include


@dataclass
class _Head:
    commit: str
    branch: str  # the branch name for urls; the commit sha when HEAD is detached
    committed_at: datetime


@dataclass
class GitConnector:
    name: str
    repo: str
    acl: Acl
    branch: str | None = None
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    url_template: str = ""
    cache_dir: Path = Path(".archivist/git")  # where a remote is cloned; from_settings sets it
    kind: str = "git"
    _head: _Head | None = field(default=None, init=False, repr=False)
    _sizes: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings, *, data_dir: Path) -> GitConnector:
        options = GitOptions.parse(settings)
        return cls(
            name=name,
            repo=options.repo,
            acl=Acl(public=settings.public, principals=frozenset(settings.principals)),
            branch=options.branch,
            include=options.include,
            exclude=options.exclude,
            url_template=options.url_template,
            cache_dir=Path(options.cache_dir).expanduser() if options.cache_dir else data_dir / "git" / name,
        )

    # -- where the repository is ---------------------------------------------------------

    @property
    def remote(self) -> bool:
        return _is_remote(self.repo)

    @property
    def git_dir(self) -> Path:
        """The repository git reads: the local path, or the bare clone of a remote."""
        if not self.remote:
            return Path(self.repo).expanduser()
        return self.cache_dir

    def describe(self) -> str:
        return f"git repository {self.repo} ({self.branch or 'default branch'})"

    # -- running git ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        # Variables that point git at another repository (set inside hooks, say) would
        # make "git -C" read the wrong one.
        env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
        env["GIT_TERMINAL_PROMPT"] = "0"  # fail instead of waiting for a password nobody types
        env["LC_ALL"] = "C"  # git's messages in English, as the error mapping below expects
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        return env

    def _git(self, *args: str, timeout: float = GIT_TIMEOUT_S, cwd: Path | None = None) -> str:
        """Run git and return its stdout; raise CalledProcessError or SourceError."""
        command = ["git", *(["-C", str(cwd)] if cwd else []), *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                timeout=timeout,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                check=True,
            )
        except FileNotFoundError:
            raise self._no_git() from None
        except subprocess.TimeoutExpired:
            msg = f"source {self.name!r}: 'git {args[0]}' took longer than {timeout:.0f}s on {self.repo}"
            raise SourceError(msg) from None
        return done.stdout.decode("utf-8", "surrogateescape")

    def _in_repo(self, *args: str, timeout: float = GIT_TIMEOUT_S) -> str:
        return self._git(*args, timeout=timeout, cwd=self.git_dir)

    def _no_git(self) -> SourceError:
        msg = f"source {self.name!r}: git is not installed (no 'git' command on PATH); install git to sync it"
        return SourceError(msg)

    def _fail(self, what: str, exc: subprocess.CalledProcessError) -> SourceError:
        detail = _stderr(exc)
        return SourceError(f"source {self.name!r}: {what}" + (f" ({detail})" if detail else ""))

    # -- resolving the head --------------------------------------------------------------

    def _resolve_head(self) -> _Head:
        if shutil.which("git") is None:
            raise self._no_git()
        if self.remote:
            self._update_clone()
        else:
            self._check_local()
        branch = self.branch or self._default_branch()
        commit = self._commit_of(branch)
        stamp = self._in_repo("log", "-1", "--format=%ct", commit, "--").strip()
        return _Head(commit, branch, datetime.fromtimestamp(int(stamp), tz=UTC))

    def _check_local(self) -> None:
        path = self.git_dir
        if not path.exists():
            msg = f"source {self.name!r}: repository {path} does not exist"
            raise SourceError(msg)
        try:
            flags = self._in_repo("rev-parse", "--is-inside-git-dir", "--is-bare-repository").split()
            if "true" in flags:
                return  # a bare repository, or a .git directory named directly
            top = Path(self._in_repo("rev-parse", "--show-toplevel").strip())
        except subprocess.CalledProcessError as exc:
            raise self._fail(f"{path} is not a git repository", exc) from None
        if top.resolve() != path.resolve():
            # A plain folder inside some other checkout: reading "the repository" here
            # would index that whole other repository.
            msg = f"source {self.name!r}: {path} is not the top of a git repository (it lies inside {top})"
            raise SourceError(msg)

    def _default_branch(self) -> str:
        try:
            return self._in_repo("symbolic-ref", "--short", "-q", "HEAD").strip()
        except subprocess.CalledProcessError:
            # A detached HEAD: read that commit; its sha stands in for {branch} in urls.
            try:
                return self._in_repo("rev-parse", "--verify", "HEAD").strip()
            except subprocess.CalledProcessError as exc:
                raise self._fail(f"repository {self.repo} has no commits", exc) from None

    def _commit_of(self, branch: str) -> str:
        # A branch first; then anything git names a commit by (a tag, origin/main, a sha).
        for candidate in (f"refs/heads/{branch}", branch):
            try:
                return self._in_repo("rev-parse", "--verify", "-q", f"{candidate}^{{commit}}").strip()
            except subprocess.CalledProcessError:
                continue
        what = f"branch {branch!r} does not exist in repository {self.repo}"
        if not self.branch:
            what = f"repository {self.repo} has no commits on its default branch {branch!r}"
        raise SourceError(f"source {self.name!r}: {what}")

    def _update_clone(self) -> None:
        """Clone the remote bare on first use; afterwards fetch the branch we read."""
        target = self.git_dir
        if not (target / "HEAD").exists():
            self._clone(target)
            return  # a fresh clone has every branch already
        not_a_clone = f"cache {target} is not a git clone; remove it to clone again, or set cache_dir"
        try:
            # The cache must be its own repository: a folder that merely lies inside some
            # other checkout would make "git -C" fetch into that checkout.
            found = Path(self._in_repo("rev-parse", "--absolute-git-dir").strip())
            if found.resolve() != target.resolve():
                raise SourceError(f"source {self.name!r}: {not_a_clone}")
            configured = self._in_repo("config", "--default", "", "--get", "remote.origin.url").strip()
            if configured != self.repo:
                self._in_repo("config", "remote.origin.url", self.repo)
        except subprocess.CalledProcessError as exc:
            raise self._fail(not_a_clone, exc) from None
        branch = self.branch or self._default_branch()
        try:
            self._in_repo(
                "fetch", "--no-tags", "origin",
                f"+refs/heads/{branch}:refs/heads/{branch}",
                timeout=FETCH_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            if "couldn't find remote ref" in _stderr(exc).lower():
                msg = f"source {self.name!r}: branch {branch!r} does not exist in repository {self.repo}"
                raise SourceError(msg) from None
            raise self._fail(f"cannot fetch {self.repo}", exc) from None

    def _clone(self, target: Path) -> None:
        if target.exists() and any(target.iterdir()):
            msg = (
                f"source {self.name!r}: cache {target} exists and is not a git clone; "
                "remove it or set cache_dir"
            )
            raise SourceError(msg)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Clone beside the target and move it in whole, so an interrupted clone never
        # leaves a half-made repository where the next sync would look.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            self._git(
                "clone", "--bare", "--no-tags", "--", self.repo, str(staging / "repo"),
                timeout=CLONE_TIMEOUT_S,
            )  # fmt: skip
            if target.exists():
                target.rmdir()  # empty, checked above
            (staging / "repo").rename(target)
        except subprocess.CalledProcessError as exc:
            raise self._fail(f"cannot clone {self.repo}", exc) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- listing -------------------------------------------------------------------------

    def _wanted(self, relative: str) -> bool:
        if any(part.startswith(".") for part in relative.split("/")):
            return False  # .github/, .gitlab/ templates and the like, as hidden files on disk
        if PurePosixPath(relative).suffix.lower() not in PARSERS:
            return False
        return path_wanted(relative, self.include, self.exclude)

    def list_refs(self) -> Iterator[DocumentRef]:
        head = self._head = self._resolve_head()
        try:
            listing = self._in_repo("ls-tree", "-r", "-z", "-l", "--full-tree", head.commit)
        except subprocess.CalledProcessError as exc:
            raise self._fail(f"cannot list the files of {head.commit[:12]}", exc) from None
        self._sizes = {}
        refs: list[DocumentRef] = []
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, kind, sha, size = meta.split()
            if kind != "blob" or mode not in _FILE_MODES or not self._wanted(path):
                continue
            self._sizes[sha] = int(size)
            refs.append(DocumentRef(id=path, version=sha))
        yield from refs

    # -- loading -------------------------------------------------------------------------

    def load(self, refs: Sequence[DocumentRef]) -> Iterator[Batch]:
        if not refs:
            return
        head = self._head or self._resolve_head()
        self._head = head
        times = self._last_commit_times({ref.id for ref in refs}, head)
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start : start + BATCH_SIZE]
            yield [
                self._document(ref, data, head, times) if isinstance(data, bytes) else data
                for ref, data in zip(chunk, self._read_blobs(chunk), strict=True)
            ]

    def _read_blobs(self, refs: Sequence[DocumentRef]) -> list[bytes | LoadFailure]:
        """The content of each ref's blob, read by one ``git cat-file --batch`` process."""
        results: list[bytes | LoadFailure] = []
        try:
            process = subprocess.Popen(
                ["git", "-C", str(self.git_dir), "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=self._env(),
            )
        except FileNotFoundError:
            raise self._no_git() from None
        assert process.stdin is not None and process.stdout is not None
        try:
            for ref in refs:
                if self._sizes.get(ref.version, 0) > MAX_FILE_BYTES:
                    results.append(self._too_big(ref))
                    continue
                # One request, one answer: never more in flight than the pipe can hold.
                timer = threading.Timer(BLOB_TIMEOUT_S, process.kill)
                timer.start()
                try:
                    process.stdin.write(f"{ref.version}\n".encode())
                    process.stdin.flush()
                    results.append(self._answer(ref, process.stdout))
                except (OSError, ValueError, EOFError) as exc:
                    msg = f"source {self.name!r}: git cat-file stopped while reading {ref.id} ({exc})"
                    raise SourceError(msg) from None
                finally:
                    timer.cancel()
        finally:
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(timeout=GIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return results

    def _answer(self, ref: DocumentRef, stdout: IO[bytes]) -> bytes | LoadFailure:
        header = stdout.readline()
        if not header:
            msg = "no answer"
            raise EOFError(msg)
        fields = header.decode("ascii", "replace").split()
        if len(fields) == 2 and fields[1] == "missing":
            return LoadFailure(ref.id, self.name, f"blob {ref.version[:12]} is missing from the repository")
        if len(fields) != 3:
            msg = f"unexpected answer {header!r}"
            raise EOFError(msg)
        _, kind, size_text = fields
        size = int(size_text)
        if size > MAX_FILE_BYTES or kind != "blob":
            _skip(stdout, size + 1)
            return (
                self._too_big(ref)
                if kind == "blob"
                else LoadFailure(ref.id, self.name, f"not a file ({kind})")
            )
        data = _read_exactly(stdout, size)
        _read_exactly(stdout, 1)  # the newline after each object
        return data

    def _too_big(self, ref: DocumentRef) -> LoadFailure:
        return LoadFailure(ref.id, self.name, f"larger than {MAX_FILE_BYTES // 2**20} MiB")

    def _document(
        self, ref: DocumentRef, data: bytes, head: _Head, times: dict[str, datetime]
    ) -> Document | LoadFailure:
        try:
            mime_type, title, text = parse_file(PurePosixPath(ref.id), data)
        except UnreadableFile as exc:
            return LoadFailure(ref.id, self.name, str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - third-party parsers raise anything on hostile files
            return LoadFailure(ref.id, self.name, f"cannot parse: {type(exc).__name__}: {exc}")
        return Document(
            id=ref.id,
            source=self.name,
            title=title,
            text=text,
            url=self._url(ref.id, head),
            path=ref.id,
            version=ref.version,
            updated_at=times.get(ref.id, head.committed_at),
            acl=self.acl,
            mime_type=mime_type,
        )

    def _url(self, path: str, head: _Head) -> str:
        if not self.url_template:
            return ""
        return self.url_template.format(
            branch=quote(head.branch, safe="/"), path=quote(path), commit=head.commit
        )

    def _last_commit_times(self, paths: set[str], head: _Head) -> dict[str, datetime]:
        """When each path last changed, walking history newest first until all are seen.

        Files not met within MAX_HISTORY_COMMITS get the time of the oldest commit
        walked: they changed no later than that. Any trouble falls back to the head's time.
        """
        found: dict[str, datetime] = {}
        wanted = set(paths)
        command = [
            "git", "-C", str(self.git_dir), "log", "-z", "--name-only", "--no-renames",
            "--format=format:%x01%ct", f"--max-count={MAX_HISTORY_COMMITS}", head.commit, "--",
        ]  # fmt: skip
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env=self._env(),
            )
        except OSError as exc:
            log.warning(
                "source %s: cannot read file history (%s); using the head commit time", self.name, exc
            )
            return found
        assert process.stdout is not None
        timer = threading.Timer(HISTORY_TIMEOUT_S, process.kill)
        timer.start()
        current = head.committed_at
        buffer = b""
        try:
            while wanted:
                block = process.stdout.read1(1 << 16)
                if not block:
                    break
                *tokens, buffer = (buffer + block).split(b"\0")
                for token in tokens:
                    if token.startswith(b"\x01"):
                        stamp, _, token = token[1:].partition(b"\n")
                        current = datetime.fromtimestamp(int(stamp), tz=UTC)
                    path = token.decode("utf-8", "surrogateescape")
                    if path in wanted:
                        found[path] = current
                        wanted.discard(path)
        except ValueError:
            log.warning("source %s: unexpected git log output; using the head commit time", self.name)
        finally:
            timer.cancel()
            process.kill()
            process.wait()
        for path in wanted:
            found[path] = current  # older than every commit walked (or the head, if none)
        return found


def _stderr(exc: subprocess.CalledProcessError) -> str:
    """git's own complaint, without the advice it prints around it."""
    raw = exc.stderr or b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [
        line for line in lines if line.lower().startswith(("fatal:", "error:", "ssh:", "remote: error"))
    ]
    picked = [re.sub(r"^(fatal|error): ", "", line, flags=re.IGNORECASE) for line in reasons[:3]]
    return "; ".join(picked) or (lines[-1] if lines else "")


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        msg = "the answer ended early"
        raise EOFError(msg)
    return data


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        block = stream.read(min(size, 1 << 20))
        if not block:
            msg = "the answer ended early"
            raise EOFError(msg)
        size -= len(block)
