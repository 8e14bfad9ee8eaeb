"""Slack's AI-app split view: suggested prompts, a status while answering, the answer with
sources in the assistant thread, its title, and the viewed channel's access policy."""

from __future__ import annotations

import json

import pytest

from bot.slack.assistant import RedisThreadContexts
from tests.bot.slack.conftest import Harness, start_harness
from tests.bot.slack.mock_web_api import TEAM_ID, MockSlack, wait_until

pytestmark = pytest.mark.asyncio

QUESTION = "How many vacation days do employees in the Netherlands get?"
SECRET_FACT = "The server room vault combination is kept by the facilities lead, Marguerite Okonkwo."


def thread_started(
    dm: str, thread_ts: str, *, user: str = "UASKER", viewing: str | None = "CGENERAL"
) -> dict:
    context = {"channel_id": viewing, "team_id": TEAM_ID, "enterprise_id": None} if viewing else {}
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": user, "context": context, "channel_id": dm, "thread_ts": thread_ts},
        "event_ts": thread_ts,
    }


def thread_message(dm: str, thread_ts: str, ts: str, text: str, *, user: str = "UASKER") -> dict:
    return {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel": dm,
        "channel_type": "im",
        "event_ts": ts,
    }


def final_answer(mock: MockSlack, dm: str, thread_ts: str) -> str:
    """The answer as the person finally sees it in the thread, with its buttons."""
    for ts, message in list(mock.board.items()):
        if message["channel"] == dm and message.get("thread_ts") == thread_ts:
            if "archivist_vote_up" in json.dumps(message.get("blocks") or []):
                return mock.shown(ts)
    return ""


async def test_new_assistant_thread_gets_suggested_prompts_from_the_sources(slack: Harness) -> None:
    await slack.send.event(thread_started("DASKER", "70.000001"))
    [prompts] = await wait_until(
        lambda: slack.mock.seen(lambda c: c.method == "assistant.threads.setSuggestedPrompts")
    )
    assert prompts.params["channel_id"] == "DASKER" and prompts.params["thread_ts"] == "70.000001"
    shown = json.dumps(prompts.params["prompts"])
    assert "handbook" in shown  # one per configured source
    [greeting] = slack.mock.posted()
    assert greeting.params["thread_ts"] == "70.000001"


@pytest.mark.parametrize("streaming", [True, False])
async def test_question_in_the_assistant_thread_gets_status_title_then_answer_with_sources(
    slack: Harness, streaming: bool
) -> None:
    slack.mock.streaming = streaming
    await slack.send.event(thread_started("DASKER", "71.000001"))
    await wait_until(lambda: slack.mock.seen(lambda c: c.method == "assistant.threads.setSuggestedPrompts"))
    await slack.send.event(thread_message("DASKER", "71.000001", "71.000002", QUESTION))

    answer = await wait_until(lambda: final_answer(slack.mock, "DASKER", "71.000001"))
    assert "The documents say so" in answer and "*Sources*" in answer and "Helpful" in answer
    [status] = slack.mock.seen(lambda c: c.method == "assistant.threads.setStatus")
    assert "Searching" in status.params["status"] and status.params["thread_ts"] == "71.000001"
    [title] = slack.mock.seen(lambda c: c.method == "assistant.threads.setTitle")
    assert title.params["title"] == QUESTION
    methods = [c.method for c in slack.mock.seen(lambda c: True)]
    answered = "chat.startStream" if streaming else "chat.update"
    assert methods.index("assistant.threads.setStatus") < methods.index(answered)  # status first

    # A second question keeps the title, and the thread remembers the first.
    await slack.send.event(thread_message("DASKER", "71.000001", "71.000003", "And in Austin?"))
    await wait_until(
        lambda: len([c for c in slack.mock.seen(lambda c: c.method == "assistant.threads.setStatus")]) == 2
    )
    assert len(slack.mock.seen(lambda c: c.method == "assistant.threads.setTitle")) == 1


@pytest.fixture
def vault_app(tmp_path, make_remote_app):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "vault.md").write_text(f"# Server room vault\n\n{SECRET_FACT}\n", encoding="utf-8")
    grants = '["slack:channel:CVAULT", "slack:user:UALICE"]'
    vault_source = f'\n[connectors.vault]\ntype = "filesystem"\npath = "vault"\nprincipals = {grants}\n'
    return make_remote_app(vault_source, sync=("handbook", "vault"))


async def test_the_channel_in_view_scopes_the_answer_like_a_question_there(vault_app, mock_slack) -> None:
    harness = await start_harness(vault_app, mock_slack)
    question = "Who keeps the server room vault combination?"
    try:
        for thread, viewing in (("72.000001", "CGENERAL"), ("73.000001", "CVAULT")):
            await harness.send.event(thread_started("DALICE", thread, user="UALICE", viewing=viewing))
            await harness.send.event(
                thread_message("DALICE", thread, thread.replace("000001", "000002"), question, user="UALICE")
            )
            await wait_until(lambda thread=thread: final_answer(mock_slack, "DALICE", thread))
        # Alice opens the view beside #general, then switches to #vault: the scope follows her.
        await harness.send.event(thread_started("DALICE", "74.000001", user="UALICE", viewing="CGENERAL"))
        await wait_until(
            lambda: len(mock_slack.seen(lambda c: c.method == "assistant.threads.setSuggestedPrompts")) == 3
        )
        changed = thread_started("DALICE", "74.000001", user="UALICE", viewing="CVAULT")
        await harness.send.event({**changed, "type": "assistant_thread_context_changed"})
        key = RedisThreadContexts._key("DALICE", "74.000001")
        await wait_until(lambda: "CVAULT" in (vault_app.redis.get(key) or ""))
        await harness.send.event(thread_message("DALICE", "74.000001", "74.000002", question, user="UALICE"))
        await wait_until(lambda: final_answer(mock_slack, "DALICE", "74.000001"))
    finally:
        await harness.client.close()
    # Beside #general, nobody there was granted the vault, though Alice may read it herself.
    assert "Server room vault" not in final_answer(mock_slack, "DALICE", "72.000001")
    assert "Server room vault" in final_answer(mock_slack, "DALICE", "73.000001")
    assert "Server room vault" in final_answer(mock_slack, "DALICE", "74.000001")
