"""Sync against the real embedded store and embedder."""

from pathlib import Path

import pytest

from core.app import App
from core.errors import SourceError
from core.retrieval.store.base import AccessFilter, SearchQuery
from core.settings import load_settings
from tests.conftest import BASE_CONFIG, CountingEmbedder


def _search(app: App, text: str, limit: int = 3):
    vector = app.embedder.embed_query(text)
    return app.store.search(SearchQuery(text, vector, limit=limit), AccessFilter())


def test_first_sync_indexes_everything_and_resync_embeds_nothing(app: App) -> None:
    first = app.sync_engine.sync(app.connector("handbook"))
    assert first.added >= 25 and first.failed == 0 and first.chunks_embedded > first.added
    counting = CountingEmbedder(app.embedder)
    app.sync_engine._embedder = counting  # noqa: SLF001 - observe the engine's embedding calls
    again = app.sync_engine.sync(app.connector("handbook"))
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)
    assert again.unchanged == first.added
    assert counting.texts == 0


def test_edit_replaces_old_chunks(synced_app: App, kb: Path) -> None:
    page = kb / "people" / "learning-budget.md"
    page.write_text("# Learning budget\n\nThe yearly learning budget is EUR 4,321 per person.\n")
    report = synced_app.sync_engine.sync(synced_app.connector("handbook"))
    assert report.updated == 1 and report.added == 0
    hits = _search(synced_app, "yearly learning budget per person")
    assert "4,321" in hits[0].chunk.text
    stored = synced_app.store.indexed_documents("handbook")["people/learning-budget.md"]
    assert stored.chunks == 1  # the old page's chunks are gone, not shadowed


def test_deleted_file_leaves_the_index(synced_app: App, kb: Path) -> None:
    (kb / "it" / "vpn-setup.html").unlink()
    report = synced_app.sync_engine.sync(synced_app.connector("handbook"))
    assert report.deleted == 1
    assert "it/vpn-setup.html" not in synced_app.store.indexed_documents("handbook")
    assert all(
        hit.chunk.document_id != "it/vpn-setup.html" for hit in _search(synced_app, "WireGuard VPN", 10)
    )


def test_added_file_becomes_searchable(synced_app: App, kb: Path) -> None:
    (kb / "company" / "parking.md").write_text(
        "# Parking\n\nThe Rotterdam garage code is 7781; bikes go to level -1.\n"
    )
    report = synced_app.sync_engine.sync(synced_app.connector("handbook"))
    assert report.added == 1
    assert (
        _search(synced_app, "garage code for parking in Rotterdam")[0].chunk.document_id
        == "company/parking.md"
    )


def test_corrupt_file_is_reported_and_the_rest_syncs(app: App, kb: Path) -> None:
    (kb / "scanned.pdf").write_bytes(b"%PDF-1.7\n garbage")
    report = app.sync_engine.sync(app.connector("handbook"))
    assert report.failed == 1 and report.failures[0].startswith("scanned.pdf: ")
    assert report.added >= 25
    assert app.sync_status.last("handbook").failed == 1  # recorded for `archivist sources`


def test_a_corrupted_edit_keeps_the_last_good_version(synced_app: App, kb: Path) -> None:
    (kb / "sales-support" / "refund-policy.pdf").write_bytes(b"%PDF-1.4 truncated")
    report = synced_app.sync_engine.sync(synced_app.connector("handbook"))
    assert report.failed == 1
    assert "sales-support/refund-policy.pdf" in synced_app.store.indexed_documents("handbook")


def test_missing_directory_fails_the_source_and_deletes_nothing(synced_app: App, kb: Path) -> None:
    before = synced_app.store.count("handbook")
    kb.rename(kb.with_name("moved"))
    with pytest.raises(SourceError, match="does not exist"):
        synced_app.sync_engine.sync(synced_app.connector("handbook"))
    assert synced_app.store.count("handbook") == before
    assert "does not exist" in synced_app.sync_status.last("handbook").error


def test_full_sync_reindexes_every_document(synced_app: App) -> None:
    report = synced_app.sync_engine.sync(synced_app.connector("handbook"), full=True)
    assert report.updated >= 25 and report.unchanged == 0


def test_keyword_search_sees_documents_added_by_a_later_sync(synced_app: App, kb: Path) -> None:
    (kb / "it" / "printers.md").write_text("# Printers\n\nThe third-floor printer is called Zorblatt-7.\n")
    synced_app.sync_engine.sync(synced_app.connector("handbook"))
    vector = synced_app.embedder.embed_query("Zorblatt")
    keyword_only = synced_app.store.search(
        SearchQuery("Zorblatt", vector, limit=3, alpha=0.0), AccessFilter()
    )
    assert keyword_only and keyword_only[0].chunk.document_id == "it/printers.md"
    (kb / "it" / "printers.md").unlink()
    synced_app.sync_engine.sync(synced_app.connector("handbook"))
    after = synced_app.store.search(SearchQuery("Zorblatt", vector, limit=3, alpha=0.0), AccessFilter())
    assert all(hit.chunk.document_id != "it/printers.md" for hit in after)


def test_making_a_source_private_takes_effect_on_the_next_sync(synced_app: App, write_config) -> None:
    private = App(
        load_settings(write_config(BASE_CONFIG.replace("public = true", "public = false")), environ={})
    )
    private.embedder = synced_app.embedder
    report = private.sync_engine.sync(private.connector("handbook"))
    assert report.updated >= 25  # every document re-written with its new readers
    assert _search(private, "WireGuard VPN", 10) == []  # nobody without a grant sees them now
    private.redis.shutdown(nosave=True)
