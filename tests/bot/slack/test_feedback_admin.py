"""👍/👎 stored with the answer; admin commands for admins only."""

from __future__ import annotations

import json

import pytest

from tests.bot.slack.conftest import start_harness
from tests.bot.slack.mock_web_api import BOT_USER_ID, wait_until
from tests.bot.slack.signed import block_action

pytestmark = pytest.mark.asyncio
QUESTION = "How many vacation days do employees in the Netherlands get?"


async def answered(harness) -> tuple[str, str]:
    await harness.send.event(
        {
            "type": "app_mention",
            "user": "UASKER",
            "text": f"<@{BOT_USER_ID}> {QUESTION}",
            "ts": "9.000001",
            "channel": "CGENERAL",
            "event_ts": "9.000001",
        }
    )
    [final] = await wait_until(
        lambda: harness.mock.seen(lambda c: "archivist_vote_up" in json.dumps(c.params.get("blocks") or []))
    )
    actions = next(b for b in final.params["blocks"] if b["type"] == "actions")
    return actions["elements"][0]["value"], final.params["ts"]


async def test_thumbs_up_is_stored_with_question_answer_and_context(slack) -> None:
    answer_id, ts = await answered(slack)
    await slack.send.interaction(
        block_action(
            "archivist_vote_up",
            answer_id,
            user="UVOTER",
            channel="CGENERAL",
            message_ts=ts,
            thread_ts="9.000001",
            response_url=slack.send.response_url,
        )
    )
    [thanks] = await wait_until(lambda: slack.mock.of("chat.postEphemeral"))
    assert thanks.params["user"] == "UVOTER" and "recorded" in thanks.text()
    [feedback] = list(slack.core.feedback.all())
    assert (feedback.vote, feedback.user) == (1, "UVOTER")
    record = feedback.record
    assert record.question == QUESTION and "The documents say so" in record.answer
    assert record.sources and record.model == "gpt-test" and record.mode == "rag"
    assert (record.platform, record.user, record.channel) == ("slack", "UASKER", "CGENERAL")


async def test_thumbs_down_asks_what_was_wrong_and_stores_the_comment(slack) -> None:
    answer_id, ts = await answered(slack)
    await slack.send.interaction(
        block_action(
            "archivist_vote_down",
            answer_id,
            user="UVOTER",
            channel="CGENERAL",
            message_ts=ts,
            thread_ts="9.000001",
            response_url=slack.send.response_url,
        )
    )
    [opened] = await wait_until(lambda: slack.mock.of("views.open"))
    view = opened.params["view"]
    await wait_until(lambda: list(slack.core.feedback.all()))
    view_state = {
        "values": {
            "comment": {"text": {"type": "plain_text_input", "value": "It ignored the Austin office."}}
        }
    }
    await slack.send.interaction(
        {
            "type": "view_submission",
            "user": {"id": "UVOTER"},
            "trigger_id": "1.2.3",
            "view": {**view, "id": "V0VIEW", "state": view_state},
        }
    )
    await wait_until(lambda: [f for f in slack.core.feedback.all() if f.comment])
    [feedback] = list(slack.core.feedback.all())
    assert (feedback.vote, feedback.comment) == (-1, "It ignored the Austin office.")


async def test_non_admin_is_politely_refused(slack) -> None:
    await slack.send.command("/archivist", "sync all", user="UNOBODY")
    [reply] = await wait_until(lambda: slack.mock.of("response_url"))
    assert reply.params["response_type"] == "ephemeral" and "only Archivist admins" in reply.params["text"]
    assert not slack.mock.posted()


@pytest.fixture
def admin_app(make_remote_app):
    return make_remote_app('\n[slack]\nadmins = ["UADMIN"]\n', sync=())


async def test_admin_syncs_from_slack_and_gets_progress_and_a_summary(admin_app, mock_slack) -> None:
    harness = await start_harness(admin_app, mock_slack)
    try:
        await harness.send.command("/archivist", "sync all", user="UADMIN")
        summary = await wait_until(lambda: mock_slack.seen(lambda c: "Sync summary" in c.text()), timeout=300)
        await harness.send.command("/archivist", "status", user="UADMIN")
        await harness.send.command("/archivist", "sources", user="UADMIN")
        await wait_until(lambda: len(mock_slack.of("response_url")) >= 3)
    finally:
        await harness.client.close()
    text = summary[0].text()
    assert summary[0].params["channel"] == "DADMIN"  # the admin's DM
    for word in ("handbook", "added", "updated", "deleted", "failed"):
        assert word in text
    assert "0 added" not in text  # a first sync adds the handbook
    top = mock_slack.posted()[0]
    assert top.params["channel"] == "UADMIN" and summary[0].params["thread_ts"]
    replies = " ".join(c.params.get("text", "") for c in mock_slack.of("response_url"))
    assert "Syncing handbook" in replies and "Last sync" in replies and "Configured sources" in replies


async def test_workspace_admins_may_run_admin_commands_when_configured(remote_model_app, mock_slack) -> None:
    slack_settings = remote_model_app.settings.slack.model_copy(update={"workspace_admins": True})
    remote_model_app.settings = remote_model_app.settings.model_copy(update={"slack": slack_settings})
    mock_slack.users["UOWNER"] = {"id": "UOWNER", "is_admin": False, "is_owner": True}
    mock_slack.users["UMEMBER"] = {"id": "UMEMBER", "is_admin": False, "is_owner": False}
    harness = await start_harness(remote_model_app, mock_slack)
    try:
        await harness.send.command("/archivist", "sources", user="UMEMBER")
        [refusal] = await wait_until(lambda: mock_slack.of("response_url"))
        assert "only Archivist admins" in refusal.params["text"]
        await harness.send.command("/archivist", "sources", user="UOWNER")
        replies = await wait_until(
            lambda: len(mock_slack.of("response_url")) == 2 and mock_slack.of("response_url")
        )
        assert (
            "handbook" in replies[1].params["text"]
            and "only Archivist admins" not in replies[1].params["text"]
        )
    finally:
        await harness.client.close()


async def test_sync_progress_shows_counts_per_source() -> None:  # async: the module marks every test asyncio
    from bot.slack.admin import progress_text
    from core.sync.engine import Progress

    text = progress_text(
        {
            "handbook": Progress("handbook", 12, 40, "indexing"),
            "wiki": Progress("wiki", 3, None, "indexing"),
            "drive": None,
        }
    )
    assert "handbook: indexing 12/40 documents" in text
    assert "wiki: indexing (3 documents so far)" in text
    assert "drive: starting" in text
