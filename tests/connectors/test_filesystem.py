from pathlib import Path

import pytest

from connectors.filesystem import FilesystemConnector
from core.documents import Acl, Document, LoadFailure
from core.errors import ConfigError
from core.settings import ConnectorSettings
from core.sync.registry import build_connector


def _connector(root: Path, **options) -> FilesystemConnector:
    return FilesystemConnector(name="kb", root=root, acl=Acl(), **options)


def _load(connector: FilesystemConnector) -> dict[str, Document | LoadFailure]:
    refs = list(connector.list_refs())
    return {item.id: item for batch in connector.load(refs) for item in batch}


def test_reads_every_format_of_the_sample_handbook(kb: Path) -> None:
    items = _load(_connector(kb))
    assert len(items) >= 25
    assert all(isinstance(item, Document) for item in items.values())
    formats = {Path(name).suffix for name in items}
    assert {".md", ".txt", ".html", ".pdf", ".docx"} <= formats


def test_html_keeps_headings_and_drops_page_chrome(kb: Path) -> None:
    page = _load(_connector(kb))["it/vpn-setup.html"]
    assert isinstance(page, Document)
    assert "WireGuard" in page.text
    assert page.text.count("\n#") >= 2  # headings survive as Markdown headings
    assert "<nav" not in page.text and "<footer" not in page.text
    assert page.title


def test_docx_headings_and_pdf_text_are_extracted(kb: Path) -> None:
    items = _load(_connector(kb))
    docx = items["people/parental-leave.docx"]
    pdf = items["sales-support/refund-policy.pdf"]
    assert isinstance(docx, Document) and "\n## " in docx.text and "weeks" in docx.text
    assert isinstance(pdf, Document) and "30 days" in pdf.text


def test_documents_are_private_unless_the_source_says_otherwise(kb: Path) -> None:
    document = next(iter(_load(_connector(kb)).values()))
    assert document.acl.public is False and not document.acl.principals


def test_include_and_exclude_globs(kb: Path) -> None:
    connector = _connector(kb, include=("**/*.md",), exclude=("engineering/**",))
    ids = [ref.id for ref in connector.list_refs()]
    assert ids and all(i.endswith(".md") and not i.startswith("engineering/") for i in ids)


def test_corrupt_and_empty_files_are_failures_not_crashes(kb: Path) -> None:
    (kb / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (kb / "broken.docx").write_bytes(b"PK\x03\x04 truncated zip")
    (kb / "empty.md").write_text("   \n")
    items = _load(_connector(kb))
    for name in ("broken.pdf", "broken.docx", "empty.md"):
        assert isinstance(items[name], LoadFailure), name
        assert items[name].reason
    assert sum(isinstance(i, Document) for i in items.values()) >= 25


def test_hidden_and_unsupported_files_are_skipped(kb: Path) -> None:
    (kb / ".git").mkdir()
    (kb / ".git" / "notes.md").write_text("# secret")
    (kb / "image.png").write_bytes(b"\x89PNG")
    ids = {ref.id for ref in _connector(kb).list_refs()}
    assert ".git/notes.md" not in ids and "image.png" not in ids


def test_version_changes_only_when_the_bytes_change(kb: Path) -> None:
    connector = _connector(kb)
    before = {r.id: r.version for r in connector.list_refs()}
    (kb / "people" / "pto-policy.md").write_text("# PTO\n\nNew text.\n")
    after = {r.id: r.version for r in connector.list_refs()}
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {"people/pto-policy.md"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "connectors.docs: 'path' is required for a filesystem source"),
        (
            {"path": "kb", "paths": "kb"},
            r"unknown option\(s\) \['paths'\] for a filesystem source \(known: \['exclude'",
        ),
        ({"path": 7}, "'path' must be a non-empty string"),
        ({"path": "kb", "exclude": [1]}, "'exclude' must be a list of glob strings"),
    ],
)
def test_bad_options_name_the_key(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_connector("docs", ConnectorSettings(type="filesystem", **options), tmp_path)


def test_one_glob_may_be_given_as_a_string(tmp_path: Path) -> None:
    connector = build_connector(
        "docs", ConnectorSettings(type="filesystem", path=str(tmp_path), include="**/*.md"), tmp_path
    )
    assert isinstance(connector, FilesystemConnector)
    assert connector.include == ("**/*.md",) and connector.exclude == ()
