"""The access filter is applied inside the store's query."""

from core.app import App
from core.documents import Acl, Document
from core.retrieval.store.base import AccessFilter, SearchQuery

SECRET = "The Q3 acquisition target is codenamed Bluefin and the offer is EUR 42 million."


def _index(app: App, document: Document) -> None:
    from core.sync.chunking import ChunkingOptions, chunk_document

    chunks = chunk_document(document, ChunkingOptions())
    app.store.upsert(chunks, app.embedder.embed_documents([c.search_text() for c in chunks]))
    app.store.finish_sync()


def _found(app: App, access: AccessFilter, text: str = "acquisition target codename offer") -> list[str]:
    vector = app.embedder.embed_query(text)
    return [hit.chunk.document_id for hit in app.store.search(SearchQuery(text, vector, limit=10), access)]


def _secret(**acl) -> Document:
    return Document(id="board/mna.md", source="board", title="M&A", text=f"# M&A\n\n{SECRET}", acl=Acl(**acl))


def test_private_document_is_invisible_without_a_grant(synced_app: App) -> None:
    _index(synced_app, _secret(principals=frozenset({"group:board"})))
    assert "board/mna.md" not in _found(synced_app, AccessFilter())
    assert "board/mna.md" not in _found(synced_app, AccessFilter(principals=frozenset({"group:staff"})))
    assert "board/mna.md" in _found(synced_app, AccessFilter(principals=frozenset({"group:board"})))


def test_document_with_unknown_readers_is_private(synced_app: App) -> None:
    _index(synced_app, _secret())
    assert "board/mna.md" not in _found(synced_app, AccessFilter(principals=frozenset({"anyone", ""})))


def test_source_policy_narrows_what_a_channel_reads(synced_app: App) -> None:
    _index(synced_app, _secret(public=True))
    assert "board/mna.md" not in _found(synced_app, AccessFilter(sources=frozenset({"handbook"})))
    assert set(_found(synced_app, AccessFilter(sources=frozenset({"board"})))) == {"board/mna.md"}
    assert _found(synced_app, AccessFilter(sources=frozenset())) == []


def test_hostile_principal_cannot_widen_the_filter(synced_app: App) -> None:
    _index(synced_app, _secret(principals=frozenset({"group:board"})))
    hostile = frozenset({"x']) OR true OR array_has_any(acl_principals, ['y", "' OR 1=1 --"})
    assert "board/mna.md" not in _found(synced_app, AccessFilter(principals=hostile))


def test_assistant_never_cites_what_the_asker_cannot_read(synced_app: App) -> None:
    _index(synced_app, _secret(principals=frozenset({"group:board"})))
    hits = synced_app.assistant.retrieve("What is the acquisition target codename?", AccessFilter())
    assert all(hit.chunk.source == "handbook" for hit in hits)


def test_access_filter_admits_as_the_stores_filter() -> None:
    from core.documents import Acl
    from core.retrieval.store.base import AccessFilter

    hr = Acl(False, frozenset({"group:hr"}))
    assert AccessFilter().admits("kb", Acl(public=True)) and not AccessFilter().admits("kb", hr)
    assert AccessFilter(frozenset({"group:hr"})).admits("kb", hr)
    assert not AccessFilter(frozenset({"group:hr"}), frozenset({"wiki"})).admits("kb", hr)
    assert not AccessFilter(include_public=False).admits("kb", Acl(public=True))
    assert not AccessFilter(sources=frozenset()).admits("kb", Acl(public=True))
