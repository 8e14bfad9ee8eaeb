"""Markdown (or other wanted files) of one branch, read through the REST API, incremental by commit.

The first poll lists the branch head's tree (``git/trees/{sha}?recursive=1``; folder by folder
when GitHub truncates a very large tree) and reads each wanted blob (``git/blobs/{sha}``). Later
polls ask ``compare/{base}...{head}`` for the files changed since the last commit read and read
only those. The tree is read again instead when the diff cannot be trusted: the base commit is
gone or not an ancestor of the head (a force push), or the diff lists GitHub's maximum of 300
files. Removed and renamed-away files need nothing here: ``list_ids`` no longer lists them.

A pass is resumable: the cursor keeps the commit it reads towards and the last path done, in
path order, so a sync killed midway re-reads no file it already delivered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from connectors.api_client import ApiError
from connectors.github.common import BATCH_SIZE, Repo
from connectors.parsers import PARSERS, parse_file, parse_markdown
from connectors.saas import Checkpoints, note_outcome, stops_sync, unparsable
from core.documents import Document, LoadFailure
from core.sync.connector import Batch

# Bigger files are exports or archives, not pages (as for files on disk and in git sources).
MAX_FILE_BYTES = 25 * 1024 * 1024
# The compare API lists at most this many changed files; a diff of that size may be cut short.
MAX_COMPARE_FILES = 300
_FILE_MODES = {"100644", "100755"}  # regular files; not symlinks (120000) or submodules (160000)

Wanted = Callable[[str], bool]


@dataclass(frozen=True)
class Blob:
    path: str
    sha: str


@dataclass(frozen=True)
class Head:
    sha: str
    committed_at: datetime


def file_id(path: str) -> str:
    return f"file:{path}"


def wanted_blobs(repo: Repo, commit: str, wanted: Wanted) -> list[Blob]:
    """Every wanted file in a commit's tree, sorted by path."""
    data = repo.api.get_json(f"{repo.rest}/git/trees/{commit}", params={"recursive": "1"})
    entries: list[dict[str, Any]] = data.get("tree") or []
    if data.get("truncated"):
        # Past GitHub's limit (100,000 entries or 7 MB) the recursive answer is cut; one folder
        # at a time is complete.
        entries = list(_walk(repo, str(data.get("sha") or commit), ""))
    blobs = [
        Blob(str(e["path"]), str(e["sha"]))
        for e in entries
        if e.get("type") == "blob" and e.get("mode") in _FILE_MODES and wanted(str(e.get("path", "")))
    ]
    return sorted(blobs, key=lambda blob: blob.path)


def _walk(repo: Repo, tree: str, prefix: str) -> Iterator[dict[str, Any]]:
    data = repo.api.get_json(f"{repo.rest}/git/trees/{tree}")
    for entry in data.get("tree") or []:
        path = prefix + str(entry.get("path", ""))
        if entry.get("type") == "tree":
            yield from _walk(repo, str(entry["sha"]), path + "/")
        else:
            yield {**entry, "path": path}


def changed_blobs(repo: Repo, base: str, head: str, wanted: Wanted) -> list[Blob] | None:
    """Wanted files added or changed from ``base`` to ``head``; None when only the tree can tell."""
    try:
        data = repo.api.get_json(f"{repo.rest}/compare/{base}...{head}")
    except ApiError as exc:
        if exc.status in (404, 422):  # the base commit no longer exists (history rewritten)
            return None
        raise
    if data.get("status") not in ("ahead", "identical"):
        return None  # diverged or behind: a force push; files may have changed back as well
    files: list[dict[str, Any]] = data.get("files") or []
    if len(files) >= MAX_COMPARE_FILES:
        return None
    blobs = [
        Blob(str(f["filename"]), str(f["sha"]))
        for f in files
        if f.get("status") != "removed" and f.get("sha") and wanted(str(f.get("filename", "")))
    ]
    return sorted(blobs, key=lambda blob: blob.path)


def poll_files(
    repo: Repo, state: dict[str, Any], checkpoints: Checkpoints, wanted: Wanted, head: Head
) -> Iterator[tuple[Batch, str]]:
    files: dict[str, Any] = state.setdefault("files", {})
    base, target, after = files.get("commit"), files.get("head"), str(files.get("after") or "")
    if not target:
        if base == head.sha:
            return
        target, after = head.sha, ""
        files.update(head=target, after="")
    todo = changed_blobs(repo, base, target, wanted) if base else None
    if todo is None:
        todo = wanted_blobs(repo, target, wanted)
    todo = [blob for blob in todo if blob.path > after]
    for start in range(0, len(todo), BATCH_SIZE):
        chunk = todo[start : start + BATCH_SIZE]
        batch: Batch = []
        for blob in chunk:
            item = load_blob(repo, blob, head.committed_at)
            note_outcome(state, file_id(blob.path), item)
            batch.append(item)
        files["after"] = chunk[-1].path
        yield from checkpoints.emit(batch)
    state["files"] = {"commit": target, "head": None, "after": ""}
    yield from checkpoints.emit([])


def load_blob(repo: Repo, blob: Blob, committed_at: datetime) -> Document | LoadFailure:
    try:
        data = repo.api.get_json(f"{repo.rest}/git/blobs/{blob.sha}")
    except ApiError as exc:
        if stops_sync(exc):
            raise
        return repo.failure(file_id(blob.path), exc)
    return _document(repo, blob, data, committed_at)


def reload_file(repo: Repo, path: str, committed_at: datetime) -> Document | LoadFailure | None:
    """A file that failed before, read again at the branch head; None if it is gone."""
    try:
        data = repo.api.get_json(f"{repo.rest}/contents/{quote(path)}", params={"ref": repo.branch})
    except ApiError as exc:
        if exc.status == 404:
            return None
        if stops_sync(exc):
            raise
        return repo.failure(file_id(path), exc)
    if not isinstance(data, dict) or data.get("type") != "file":
        return None
    blob = Blob(path, str(data.get("sha", "")))
    if data.get("encoding") != "base64":  # over 1 MB the contents API leaves the content out
        return load_blob(repo, blob, committed_at)
    return _document(repo, blob, data, committed_at)


def _document(repo: Repo, blob: Blob, data: dict[str, Any], committed_at: datetime) -> Document | LoadFailure:
    def fail(reason: str) -> LoadFailure:
        return LoadFailure(file_id(blob.path), repo.source, reason)

    size = data.get("size")
    if isinstance(size, int) and size > MAX_FILE_BYTES:
        return fail(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        content = base64.b64decode(str(data.get("content", "")))
    except (binascii.Error, ValueError) as exc:
        return fail(f"GitHub sent content that is not base64 ({exc})")
    path = PurePosixPath(blob.path)
    try:
        if path.suffix.lower() in PARSERS:
            mime_type, title, text = parse_file(path, content)
        else:  # an include glob chose another text format (.rst, .adoc): read it as plain text
            title, text = parse_markdown(content)
            mime_type = "text/plain"
    except Exception as exc:  # noqa: BLE001 - parsers raise anything on hostile files
        return fail(unparsable(exc))
    if not text.strip():
        return fail("the file has no text")
    return Document(
        id=file_id(blob.path),
        source=repo.source,
        title=title.strip() or path.stem.replace("-", " ").replace("_", " "),
        text=text,
        url=f"{repo.html_url}/blob/{quote(repo.branch)}/{quote(blob.path)}",
        path=blob.path,
        version=blob.sha,
        updated_at=committed_at,
        acl=repo.acl,
        mime_type=mime_type,
    )
