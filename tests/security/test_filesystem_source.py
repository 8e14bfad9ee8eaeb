"""A filesystem source never reads outside its root and survives odd trees.

Hostile or odd trees are built in tmp_path: links to a "secret" file beside the
source root, links swapped after listing, empty files, entries that cannot be
listed or stat'ed. Each test syncs for real (real embedder, real store) and checks
what a user would see: what is searchable, and what the sync report says.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.filesystem import FilesystemConnector
from core.app import App
from core.documents import Acl, LoadFailure
from core.errors import SourceError
from core.retrieval.store.base import AccessFilter
from tests.conftest import BASE_CONFIG, SAMPLES

SECRET = "root:$6$hunter2-swordfish-7781:19000:0:99999:7:::"
SAMPLE_DOCUMENTS = sum(1 for path in SAMPLES.rglob("*") if path.is_file())


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A private file beside the public source root, like /etc/shadow beside a handbook."""
    path = tmp_path / "outside" / "shadow.txt"
    path.parent.mkdir()
    path.write_text(f"Shadow file\n\n{SECRET}\n")
    return path


def sync(app: App):
    return app.sync_engine.sync(app.connector("handbook"))


def indexed_text(app: App) -> str:
    return "\n".join(chunk.text for chunk in app.store.chunks(AccessFilter()))


def indexed_ids(app: App) -> set[str]:
    return set(app.store.indexed_documents("handbook"))


def deny(monkeypatch: pytest.MonkeyPatch, name: str, denied: Callable[[Path], bool]) -> None:
    """Make ``os.<name>`` refuse the paths ``denied`` picks, as an unprivileged user meets them.

    Tests may run as root, where chmod 000 is still readable.
    """
    real = getattr(os, name)

    def guarded(path=".", *args, **kwargs):
        if isinstance(path, str | os.PathLike) and denied(Path(path)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, guarded)


def test_a_file_symlink_is_read_only_when_it_stays_inside_the_root(
    app: App, kb: Path, secret: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (kb / "shadow.txt").symlink_to(secret)
    (kb / "people" / "vacation.md").symlink_to("pto-policy.md")
    with caplog.at_level(logging.WARNING):
        report = sync(app)
    assert report.failed == 0, report.failures
    assert "hunter2" not in indexed_text(app)
    assert "shadow.txt" not in indexed_ids(app)
    assert {"people/vacation.md", "people/pto-policy.md"} <= indexed_ids(app)
    # The admin learns which link was skipped, and the log never quotes what it points at.
    assert any("shadow.txt" in r.getMessage() and "outside" in r.getMessage() for r in caplog.records)
    assert "hunter2" not in caplog.text


def test_a_skipped_link_is_warned_about_once_per_connector(
    kb: Path, secret: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (kb / "shadow.md").symlink_to(secret)
    connector = FilesystemConnector(name="handbook", root=kb, acl=Acl(public=True))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert "shadow.md" not in {ref.id for ref in connector.list_refs()}
    assert sum("shadow.md" in r.getMessage() for r in caplog.records) == 1


def test_a_directory_symlink_is_not_followed(
    app: App, kb: Path, secret: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (kb / "private").symlink_to(secret.parent, target_is_directory=True)
    (kb / "people-again").symlink_to("people", target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        report = sync(app)
    assert report.failed == 0, report.failures
    assert "hunter2" not in indexed_text(app)
    ids = indexed_ids(app)
    assert not any(i.startswith(("private/", "people-again/")) for i in ids)
    assert "people/pto-policy.md" in ids  # reachable through its real path
    warned = caplog.text
    assert "private" in warned and "people-again" in warned and "not followed" in warned


def test_a_link_swapped_after_listing_is_refused_when_read(kb: Path, secret: Path) -> None:
    connector = FilesystemConnector(name="handbook", root=kb, acl=Acl(public=True))
    refs = [ref for ref in connector.list_refs() if ref.id == "people/pto-policy.md"]
    page = kb / "people" / "pto-policy.md"
    page.unlink()
    page.symlink_to(secret)  # between listing and reading, as an attacker racing the sync would
    [[item]] = list(connector.load(refs))
    assert isinstance(item, LoadFailure)
    assert "outside the source root" in item.reason


def test_empty_files_are_not_failures_and_an_emptied_file_leaves_the_index(app: App, kb: Path) -> None:
    assert sync(app).failed == 0
    assert "27 days of paid vacation" in indexed_text(app)
    (kb / "people" / "pto-policy.md").write_bytes(b"")
    (kb / "placeholder.md").write_bytes(b"")
    emptied = sync(app)
    assert (emptied.failed, emptied.deleted) == (0, 1), emptied.failures
    assert "people/pto-policy.md" not in indexed_ids(app) and "placeholder.md" not in indexed_ids(app)
    assert "27 days of paid vacation" not in indexed_text(app)  # no stale answer from the old text
    again = sync(app)  # a later sync is clean too: nothing stays failed forever
    assert (again.failed, again.unchanged) == (0, SAMPLE_DOCUMENTS - 1), again.failures


def test_a_source_path_that_is_a_file_says_so(make_app, kb: Path) -> None:
    app = make_app(BASE_CONFIG.replace('path = "kb"', 'path = "kb/people/pto-policy.md"'))
    with pytest.raises(SourceError, match=r"pto-policy\.md is a file, not a directory"):
        sync(app)
    missing = make_app(BASE_CONFIG.replace('path = "kb"', 'path = "no-such-folder"'))
    with pytest.raises(SourceError, match="directory .*no-such-folder does not exist"):
        sync(missing)


def test_text_in_legacy_encodings_comes_out_readable(app: App, kb: Path) -> None:
    cafe = (
        "# Office café\n\nThe café on the second floor opens at 08:00 and closes at 16:30.\n"
        "An espresso costs 2 € and a croissant 1,50 € — staff get “one free coffee” a day.\n"
    )
    (kb / "cafe.md").write_bytes(cafe.encode("cp1252"))
    (kb / "relocation.txt").write_bytes(
        "Relocation\n\nMoving costs up to 5 000 € are reimbursed — keep the receipts.\n".encode("utf-16")
    )
    (kb / "kyuka.md").write_bytes(
        "# 休暇\n\n有給休暇は年間二十日です。申請は一週間前までに上司へ。\n".encode("shift_jis")
    )
    (kb / "blob.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    report = sync(app)
    assert report.failures == ["blob.txt: binary content in a text file"]  # binary is still refused
    text = indexed_text(app)
    assert "The café on the second floor" in text and "2 € and a croissant" in text
    assert "“one free coffee”" in text
    assert "5 000 € are reimbursed" in text
    assert "有給休暇は年間二十日です" in text


def test_entries_that_cannot_be_listed_or_stat_ed_are_skipped(
    app: App, kb: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    locked = kb / "locked"
    locked.mkdir()
    (locked / "salaries.md").write_text("# Salaries\n\nNobody should see this.\n")
    (kb / "unstatable.md").write_text("# Gone\n\nThis file cannot be stat'ed.\n")
    (kb / "dangling.md").symlink_to(kb / "nowhere.md")
    (kb / "loop-a.md").symlink_to("loop-b.md")
    (kb / "loop-b.md").symlink_to("loop-a.md")
    (kb / "people" / "cycle").symlink_to("..", target_is_directory=True)
    # What a source with path = "/" meets: permission denied, /proc/1/cwd-like entries.
    deny(monkeypatch, "scandir", lambda path: path.name == "locked")
    deny(monkeypatch, "stat", lambda path: path.name == "unstatable.md")
    with caplog.at_level(logging.WARNING):
        report = sync(app)
    assert report.failed == 0, report.failures
    assert report.added == SAMPLE_DOCUMENTS  # everything else is indexed
    assert "Nobody should see this" not in indexed_text(app)
    for name in ("locked", "unstatable.md", "dangling.md", "loop-a.md", "cycle"):
        assert name in caplog.text


def test_a_root_that_cannot_be_listed_fails_the_source_and_deletes_nothing(
    app: App, kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sync(app).added == SAMPLE_DOCUMENTS
    deny(monkeypatch, "scandir", lambda path: path.resolve() == kb.resolve())
    with pytest.raises(SourceError, match="cannot list"):
        sync(app)
    assert len(indexed_ids(app)) == SAMPLE_DOCUMENTS
