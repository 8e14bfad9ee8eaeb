"""👍/👎 on answers: each vote stored with the answer it judges; 👎 asks what was wrong.

The buttons carry the answer id; the core's FeedbackStore keeps question, answer,
sources, mode, model, user and channel with the vote. A 👎 opens a small modal
with one optional text field; what is typed there is stored as the vote's comment.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocking
from bot.slack.failures import log_failure, user_message
from bot.slack.render import VOTE_DOWN, VOTE_UP, notice

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from core.api import CoreAPI

COMMENT_MODAL = "archivist_feedback_comment"
_COMMENT_BLOCK = "comment"
_COMMENT_INPUT = "text"
THANKS_UP = ":thumbsup: Thanks! Your vote was recorded."
THANKS_DOWN = ":thumbsdown: Thanks, your vote was recorded. Tell me what was wrong in the form, if you like."
THANKS_COMMENT = "Thanks, your comment was recorded; it helps improve the answers."


class FeedbackHandlers:
    def __init__(self, core: CoreAPI) -> None:
        self._core = core

    def register(self, bolt: AsyncApp) -> None:
        bolt.action(VOTE_UP)(self.on_vote)
        bolt.action(VOTE_DOWN)(self.on_vote)
        bolt.view(COMMENT_MODAL)(self.on_comment)

    async def on_vote(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        answer_id = action["value"]
        down = action["action_id"] == VOTE_DOWN
        try:
            if down:
                # views.open must come within 3 s of the click: before anything slow.
                await client.views_open(
                    trigger_id=body["trigger_id"], view=comment_modal(answer_id, _where(body))
                )
            await blocking.quick(self._core.vote, answer_id, user, -1 if down else 1)
            await _tell(client, respond, body, THANKS_DOWN if down else THANKS_UP)
        except Exception as exc:  # noqa: BLE001 - the boundary for votes
            log_failure(exc, "recording a vote")
            await _tell(client, respond, body, user_message(exc))

    async def on_comment(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        user = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        value = (((view.get("state") or {}).get("values") or {}).get(_COMMENT_BLOCK) or {}).get(
            _COMMENT_INPUT
        ) or {}
        comment = (value.get("value") or "").strip()
        if not comment or not meta.get("answer_id"):
            return
        try:
            await blocking.quick(self._core.comment, meta["answer_id"], user, comment)
            text = THANKS_COMMENT
        except Exception as exc:  # noqa: BLE001 - the boundary for comments
            log_failure(exc, "recording a feedback comment")
            text = user_message(exc)
        if meta.get("channel"):
            await _ephemeral(client, meta["channel"], user, meta.get("thread_ts"), text)


def comment_modal(answer_id: str, where: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": COMMENT_MODAL,
        "private_metadata": json.dumps({"answer_id": answer_id, **where}),
        "title": {"type": "plain_text", "text": "What was wrong?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": _COMMENT_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What was wrong or missing? (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": _COMMENT_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            }
        ],
    }


def _where(body: dict[str, Any]) -> dict[str, str]:
    container = body.get("container") or {}
    if container.get("is_ephemeral"):
        return {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
    thread = message.get("thread_ts") or ""
    return {"channel": channel, "thread_ts": thread} if channel else {}


async def _tell(client: AsyncWebClient, respond: AsyncRespond, body: dict[str, Any], text: str) -> None:
    """An ephemeral note to the voter, in the thread of the answer when there is one."""
    where = _where(body)
    if where:
        await _ephemeral(client, where["channel"], body["user"]["id"], where["thread_ts"] or None, text)
    else:
        try:
            await respond(response_type="ephemeral", replace_original=False, **notice(text).as_kwargs())
        except Exception as exc:  # noqa: BLE001 - nothing more can be done than log it
            log_failure(exc, "answering a button")


async def _ephemeral(
    client: AsyncWebClient, channel: str, user: str, thread_ts: str | None, text: str
) -> None:
    try:
        await client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, **notice(text).as_kwargs()
        )
    except Exception as exc:  # noqa: BLE001 - nothing more can be done than log it
        log_failure(exc, "sending an ephemeral note")
