"""Core pieces the chat frontends share: access scopes, feedback, the sync service, async answers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.answering.access import ChannelPolicy, channel_question, direct_question
from core.answering.answers import Answer, Done, Question, Source, Token
from core.app import App
from core.errors import InputError
from core.sync.service import SyncBusy


def _answer() -> Answer:
    source = Source(1, "PTO", "handbook", "", "/kb/pto.md", 0.7, "27 days", True)
    return Answer("27 days [1]", [source], "rag", "smollm2", False, "vacation days?")


def test_channel_questions_read_only_what_the_channel_may() -> None:
    policy = ChannelPolicy(frozenset({"handbook"}), {"C9": frozenset({"handbook", "eng"})})
    general = channel_question(
        "q", platform="slack", workspace="T1", channel="C1", thread="1.2", policy=policy
    )
    eng = channel_question("q", platform="slack", workspace="T1", channel="C9", thread="", policy=policy)
    assert general.sources == {"handbook"} and eng.sources == {"handbook", "eng"}
    assert general.principals == {"slack:channel:C1"}  # never the asker's own grants
    dm = direct_question(
        "q", platform="discord", workspace="G", user="42", channel="D1", groups=["discord:role:7"]
    )
    assert dm.principals == {"discord:user:42", "discord:role:7"} and dm.sources is None


def test_feedback_is_stored_with_its_answer(app: App) -> None:
    answer = _answer()
    app.feedback.record_answer(answer, "How many vacation days?", platform="slack", user="U1", channel="C1")
    app.feedback.vote(answer.id, "U2", -1)
    app.feedback.comment(answer.id, "U2", "It forgot the US number")
    app.feedback.vote(answer.id, "U3", 1)
    votes = {f.user: f for f in app.feedback.all()}
    assert votes["U2"].vote == -1 and votes["U2"].comment == "It forgot the US number"
    assert votes["U2"].record.question == "How many vacation days?"
    assert votes["U2"].record.sources[0]["title"] == "PTO" and votes["U2"].record.model == "smollm2"
    assert votes["U3"].vote == 1 and votes["U3"].record.channel == "C1"


def test_feedback_on_an_unknown_answer_is_refused(app: App) -> None:
    with pytest.raises(InputError, match="too old or unknown"):
        app.feedback.vote("nope", "U1", 1)
    with pytest.raises(InputError):
        app.feedback.vote(_answer().id, "U1", 5)


def test_one_sync_of_a_source_at_a_time(app: App) -> None:
    engine = app.sync_engine
    started, release = threading.Event(), threading.Event()
    real_sync = engine.sync

    def slow_sync(connector, **kwargs):
        started.set()
        release.wait(30)
        return real_sync(connector, **kwargs)

    engine.sync = slow_sync  # type: ignore[method-assign]
    worker = threading.Thread(target=lambda: app.sync_service.sync("handbook"))
    worker.start()
    assert started.wait(30)
    assert app.sync_service.running("handbook")
    with pytest.raises(SyncBusy, match="already running"):
        app.sync_service.sync("handbook")
    outcomes = app.sync_service.sync_many(["all"])
    assert not outcomes[0].ok and "already running" in outcomes[0].error
    release.set()
    worker.join(60)
    assert app.sync_service.sync("handbook").unchanged > 0  # the lock was released
    assert not app.sync_service.running("handbook")


def test_async_stream_delivers_events_in_order(app: App) -> None:
    events = [Token("a"), Token("b"), Done(_answer())]

    class FakeAssistant:
        def stream(self, question):
            for event in events:
                time.sleep(0.01)
                yield event

    from core.answering.assistant import Assistant

    got = asyncio.run(_collect(Assistant.astream(FakeAssistant(), Question("q"))))  # type: ignore[arg-type]
    assert got == events


def test_async_stream_reraises_errors_in_the_caller(synced_app: App) -> None:
    with pytest.raises(InputError, match="empty"):
        asyncio.run(_collect(synced_app.assistant.astream(Question(""))))


async def _collect(stream):
    return [event async for event in stream]
