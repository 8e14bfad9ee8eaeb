"""Conversation memory never carries text the current asker may not read.

A finance-only page answers a finance member's question in a shared thread; a
colleague without access then asks a follow-up in the same thread. Nothing of the
first answer may reach the model for them, and deleting the page (or taking it
away from finance) removes the remembered answer too, from Redis and from disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.answering.answers import Question
from core.answering.history import ConversationKey
from core.app import App
from core.retrieval.store.base import AccessFilter

SECRET = "BLUEHERON"
FINANCE = frozenset({"group:finance"})
THREAD = ConversationKey("slack", "T1", "C1", "1700000000.000100")


def _secrets_source(principals: str) -> str:
    return f"""
[assistant]
condense = "history"

[store]
keep_versions_s = 0

[connectors.secrets]
type = "filesystem"
path = "secrets"
principals = [{principals}]
"""


@pytest.fixture
def secret_page(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    page = folder / "acquisition.md"
    page.write_text(
        f"# Project acquisition\n\nThe acquisition code name is {SECRET}. "
        "The acquisition closes next quarter and only finance may know the code name.\n",
        encoding="utf-8",
    )
    return page


@pytest.fixture
def scoped_app(secret_page: Path, make_remote_app: Callable[..., App], openai_server) -> App:
    # The stand-in model repeats whatever its context says about the code name.
    openai_server.reply = lambda messages: (
        f"The code name is {SECRET} [1]." if SECRET in str(messages) else "The documents don't cover that."
    )
    return make_remote_app(_secrets_source('"group:finance"'), sync=("handbook", "secrets"))


def _ask(app: App, text: str, principals: frozenset[str] = frozenset()):
    return app.assistant.ask(Question(text, conversation=THREAD, principals=principals))


def _model_saw_secret_since(openai_server, start: int) -> bool:
    return any(SECRET in str(request["body"]) for request in openai_server.requests[start:])


def test_a_follow_up_by_someone_without_access_does_not_replay_the_private_answer(
    scoped_app: App, openai_server
) -> None:
    first = _ask(scoped_app, "What is the acquisition code name?", FINANCE)
    assert SECRET in first.text  # the finance member is answered from the private page

    start = len(openai_server.requests)
    follow = _ask(scoped_app, "And when does the acquisition close?")
    assert SECRET not in follow.text
    assert not _model_saw_secret_since(openai_server, start)
    replayed = scoped_app.history.load(THREAD, AccessFilter())
    assert [turn.question for turn in replayed] == ["And when does the acquisition close?"]

    # The finance member still has the whole conversation.
    remembered = scoped_app.history.load(THREAD, AccessFilter(principals=FINANCE))
    assert any(SECRET in turn.answer for turn in remembered)


def test_a_channel_limited_to_public_sources_does_not_replay_private_turns(scoped_app: App) -> None:
    _ask(scoped_app, "What is the acquisition code name?", FINANCE)
    channel_policy = AccessFilter(principals=FINANCE, sources=frozenset({"handbook"}))
    assert all(SECRET not in turn.answer for turn in scoped_app.history.load(THREAD, channel_policy))


def test_deleting_the_page_removes_the_remembered_answer_and_the_text_on_disk(
    scoped_app: App, secret_page: Path
) -> None:
    _ask(scoped_app, "What is the acquisition code name?", FINANCE)
    finance = AccessFilter(principals=FINANCE)
    assert any(SECRET in turn.answer for turn in scoped_app.history.load(THREAD, finance))
    lancedb_dir = scoped_app.settings.data_dir / "lancedb"
    assert _files_containing(lancedb_dir, SECRET.encode())  # the check below can see the text

    secret_page.unlink()
    report = scoped_app.sync_service.sync("secrets")
    assert report.deleted == 1

    assert all(SECRET not in turn.answer for turn in scoped_app.history.load(THREAD, finance))
    raw = scoped_app.redis.lrange(THREAD.redis_key(), 0, -1)
    assert not any(SECRET in item for item in raw)
    assert not _files_containing(lancedb_dir, SECRET.encode())
    assert not _masked_rows(lancedb_dir), "deleted rows must be rewritten away, not only masked"


def test_taking_the_page_away_from_finance_removes_the_remembered_answer(
    scoped_app: App, make_remote_app: Callable[..., App], openai_server
) -> None:
    _ask(scoped_app, "What is the acquisition code name?", FINANCE)
    regranted = make_remote_app(_secrets_source('"group:legal"'), sync=())
    regranted.sync_service.sync("secrets")
    finance = AccessFilter(principals=FINANCE)
    assert all(SECRET not in turn.answer for turn in regranted.history.load(THREAD, finance))


def test_turns_saved_before_memory_was_scoped_are_not_replayed(scoped_app: App) -> None:
    # An old-format turn carries no record of its documents: nobody can tell who may read it.
    scoped_app.redis.rpush(THREAD.redis_key(), '{"question": "q", "answer": "' + SECRET + '"}')
    assert scoped_app.history.load(THREAD, AccessFilter(principals=FINANCE)) == []


def _files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


def _masked_rows(folder: Path) -> int:
    import lance

    total = 0
    for table in folder.glob("*.lance"):
        for fragment in lance.dataset(str(table)).get_fragments():
            deletions = fragment.metadata.deletion_file
            total += deletions.num_deleted_rows if deletions else 0
    return total
