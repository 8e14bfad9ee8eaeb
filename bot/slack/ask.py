"""The ways to ask: @mention, DM, a reply in a followed thread, an emoji reaction, /ask.

Each trigger turns a Slack event into a core ``Question`` with the right access
scope — in a channel, what everyone there may read (``channel_question``); in a
DM, what the asker may read (``direct_question``) — and claims the message, so
two triggers (or two processes) never answer it twice.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocking
from bot.slack.answering import PLATFORM, Answerer
from bot.slack.claims import FollowedThreads, Once
from bot.slack.failures import log_failure, user_message
from bot.slack.identity import SlackIdentities
from bot.slack.render import SHARE, SlackMessage, answer_messages, notice
from bot.slack.safety import neutralize
from core.answering.access import ChannelPolicy, channel_question, direct_question
from core.answering.answers import Answer, Question
from core.errors import AccessDenied, ArchivistError, InputError

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from core.api import CoreAPI

# Messages with these subtypes are people writing; every other subtype (edits,
# joins, bot posts, deletions) is not a question.
_PEOPLE_SUBTYPES = {None, "file_share", "thread_broadcast"}
MESSAGE_TTL_S = 24 * 3600  # a message is answered once; reactions a day later still count once
SHARE_TTL_S = 24 * 3600  # how long an ephemeral /ask answer can still be shared
# https://api.slack.com/interactivity/handling#message_responses: a response_url works 5 times in 30 minutes.
RESPONSE_URL_TTL_S = 30 * 60
ASK_SHORTCUT = "archivist_ask_message"  # the message shortcut's callback_id (slack-manifest.yml)
USAGE = "Ask me about your documents, e.g. `/ask How many vacation days do we get?`"


def is_dm(channel: str) -> bool:
    return channel.startswith("D")


def strip_mentions(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", " ")
    return re.sub(r"\s+", " ", text).strip()


class AskHandlers:
    def __init__(self, core: CoreAPI, answerer: Answerer, messages: Once, threads: FollowedThreads) -> None:
        self._core = core
        self._settings = core.settings.slack
        self._policy = ChannelPolicy.from_settings(core.settings.slack)
        self._answerer = answerer
        self._messages = messages
        self._threads = threads
        self._identities = SlackIdentities(core.identities)

    def register(self, bolt: AsyncApp) -> None:
        bolt.event("app_mention")(self.on_mention)
        bolt.event("message")(self.on_message)
        bolt.event("reaction_added")(self.on_reaction)
        bolt.command("/ask")(self.on_ask)
        bolt.action(SHARE)(self.on_share)
        bolt.shortcut(ASK_SHORTCUT)(self.on_shortcut)

    # -- scope ---------------------------------------------------------------

    def question(self, text: str, *, team: str, channel: str, user: str, thread: str) -> Question:
        if is_dm(channel):
            return direct_question(
                text, platform=PLATFORM, workspace=team, user=user, channel=channel, thread=thread
            )
        return channel_question(
            text, platform=PLATFORM, workspace=team, channel=channel, thread=thread, policy=self._policy
        )

    async def scoped_question(
        self, client: AsyncWebClient, text: str, *, team: str, channel: str, user: str, thread: str
    ) -> Question:
        """``question`` for another surface (the assistant thread): a DM reads what the asker may."""
        if is_dm(channel):
            await self._identities.learn(client, user)
        return self.question(text, team=team, channel=channel, user=user, thread=thread)

    def _from_other_bot(self, event: dict[str, Any]) -> bool:
        return self._settings.ignore_bots and bool(
            event.get("bot_id") or event.get("subtype") == "bot_message"
        )

    async def _answer_message(
        self,
        client: AsyncWebClient,
        *,
        team: str,
        channel: str,
        ts: str,
        thread_ts: str | None,
        user: str,
        text: str,
    ) -> None:
        if not await self._messages.claim(f"{team}:{channel}:{ts}"):
            return  # another trigger or process has it
        if not text:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=USAGE)
            return
        memory = thread_ts or ""
        if is_dm(channel):  # a DM reads what the asker's confirmed email may read too
            await self._identities.learn(client, user)
        question = self.question(text, team=team, channel=channel, user=user, thread=memory)
        await self._answerer.into_thread(
            client,
            question,
            team=team,
            channel=channel,
            thread_ts=thread_ts,
            user=user,
            follow=not is_dm(channel),
        )

    # -- triggers ------------------------------------------------------------

    async def on_mention(
        self, event: dict[str, Any], body: dict[str, Any], context: Any, client: AsyncWebClient
    ) -> None:
        channel = event["channel"]
        if self._from_other_bot(event) or is_dm(channel):  # DMs arrive as message events
            return
        await self._answer_message(
            client,
            team=_team(body, context),
            channel=channel,
            ts=event["ts"],
            thread_ts=event.get("thread_ts") or event["ts"],
            user=event.get("user", ""),
            text=strip_mentions(event.get("text", ""), context.bot_user_id),
        )

    async def on_message(
        self, event: dict[str, Any], body: dict[str, Any], context: Any, client: AsyncWebClient
    ) -> None:
        if (
            event.get("subtype") not in _PEOPLE_SUBTYPES
            or self._from_other_bot(event)
            or not event.get("user")
        ):
            return
        channel, ts, thread_ts = event["channel"], event["ts"], event.get("thread_ts")
        team = _team(body, context)
        text = event.get("text", "")
        if is_dm(channel):
            await self._answer_message(
                client,
                team=team,
                channel=channel,
                ts=ts,
                thread_ts=thread_ts,
                user=event["user"],
                text=strip_mentions(text, context.bot_user_id),
            )
            return
        mentioned = bool(context.bot_user_id) and f"<@{context.bot_user_id}>" in text
        follows = self._settings.follow_threads and channel not in self._settings.no_follow_channels
        if not thread_ts or thread_ts == ts or mentioned or not follows:
            return  # a mention is answered by on_mention
        if await self._threads.followed(team, channel, thread_ts):
            await self._answer_message(
                client,
                team=team,
                channel=channel,
                ts=ts,
                thread_ts=thread_ts,
                user=event["user"],
                text=text.strip(),
            )

    async def on_reaction(
        self, event: dict[str, Any], body: dict[str, Any], context: Any, client: AsyncWebClient
    ) -> None:
        item = event.get("item") or {}
        if event.get("reaction") != self._settings.trigger_emoji.strip(":") or item.get("type") != "message":
            return
        channel, ts = item["channel"], item["ts"]
        try:
            message = await _fetch_message(client, channel, ts)
        except Exception as exc:  # noqa: BLE001 - the boundary for this trigger
            log_failure(exc, f"reading the message reacted to in {channel}")
            await _tell_quietly(client, channel, event.get("user", ""), ts, user_message(exc))
            return
        if message is None or self._from_other_bot(message) or message.get("user") == context.bot_user_id:
            return
        thread_ts = message.get("thread_ts") or message["ts"]
        await self._answer_message(
            client,
            team=_team(body, context),
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            user=event.get("user", ""),
            text=strip_mentions(message.get("text", ""), context.bot_user_id),
        )

    async def on_shortcut(
        self,
        ack: AsyncAck,
        shortcut: dict[str, Any],
        context: Any,
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        """The message shortcut "Ask Archivist about this message": the emoji trigger's robust twin."""
        await ack()
        message = shortcut.get("message") or {}
        channel = (shortcut.get("channel") or {}).get("id", "")
        user = (shortcut.get("user") or {}).get("id", "")
        ts = message.get("ts", "")
        team = (shortcut.get("team") or {}).get("id") or context.team_id or "-"
        if not (channel and ts):
            return
        if not await self._messages.claim(f"{team}:{channel}:{ts}"):
            await respond(
                response_type="ephemeral",
                replace_original=False,
                text="I have answered that message already.",
            )
            return
        text = strip_mentions(message.get("text", ""), context.bot_user_id)
        if not text:
            await respond(response_type="ephemeral", replace_original=False, text=USAGE)
            return
        thread_ts = message.get("thread_ts") or ts
        question = self.question(text, team=team, channel=channel, user=user, thread=thread_ts)

        async def privately(told: SlackMessage) -> None:  # a shortcut works where Archivist is no member
            await respond(response_type="ephemeral", replace_original=False, **told.as_kwargs())

        await self._answerer.into_thread(
            client,
            question,
            team=team,
            channel=channel,
            thread_ts=thread_ts,
            user=user,
            follow=not is_dm(channel),
            privately=privately,
        )

    async def on_ask(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        body: dict[str, Any],
        context: Any,
        respond: AsyncRespond,
    ) -> None:
        text = (command.get("text") or "").strip()
        if not text:
            await ack(text=USAGE)
            return
        await ack(text=f":mag: Looking that up: _{_quote(text)}_")
        channel, user = command["channel_id"], command["user_id"]
        # Private to the asker, but shareable: scope it as the channel, not the person.
        question = self.question(
            text, team=_team(body, context), channel=channel, user=user, thread=f"ask-{user}"
        )
        try:
            answer = await self._answerer.generate(question)
            # Recorded once, for 👍/👎 and for the share button alike.
            await self._answerer.record(answer, text, user=user, channel=channel)
            await self._keep_response_url(answer.id, command.get("response_url"))
            for message in answer_messages(answer, share=True):
                await respond(response_type="ephemeral", replace_original=False, **message.as_kwargs())
        except Exception as exc:  # noqa: BLE001 - the boundary for /ask
            log_failure(exc, "answering /ask")
            await respond(
                response_type="ephemeral", replace_original=False, **notice(user_message(exc)).as_kwargs()
            )

    async def on_share(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        try:
            answer, question = await blocking.quick(self._shareable, action["value"], user)
            footer = f"Shared by <@{user}> · asked: _{_quote(question)}_"
            # Through the /ask command's response_url, not chat.postMessage: /ask works where
            # Archivist is no member (DMs between people, channels it was never invited to), and
            # there chat.postMessage fails with not_in_channel. The action's own URL is the spare.
            kept = await self._kept_response_url(action["value"])
            post = AsyncRespond(response_url=kept) if kept else respond
            for message in answer_messages(answer, footer=footer):
                sent = await post(
                    response_type="in_channel",
                    replace_original=False,
                    unfurl_links=False,
                    **message.as_kwargs(),
                )
                _check(sent.status_code, sent.body)
            await respond(delete_original=True)
        except Exception as exc:  # noqa: BLE001 - the boundary for sharing
            log_failure(exc, "sharing an answer")
            await respond(
                response_type="ephemeral", replace_original=False, **notice(user_message(exc)).as_kwargs()
            )

    # -- /ask answers, shared from what the feedback store recorded -------------

    async def _kept_response_url(self, answer_id: str) -> str | None:
        try:
            kept = await blocking.quick(lambda: self._core.redis().get(_url_key(answer_id)))
        except ArchivistError as exc:
            log_failure(exc, "reading the /ask response_url")
            return None
        return kept.decode() if isinstance(kept, bytes) else kept if isinstance(kept, str) else None

    async def _keep_response_url(self, answer_id: str, url: str | None) -> None:
        """The command's response_url, for sharing later (Slack honours it for 30 minutes)."""
        if not url:
            return
        try:
            await blocking.quick(
                lambda: self._core.redis().set(_url_key(answer_id), url, ex=RESPONSE_URL_TTL_S)
            )
        except ArchivistError as exc:  # sharing falls back to the button's own response_url
            log_failure(exc, "keeping the /ask response_url")

    def _shareable(self, answer_id: str, user: str) -> tuple[Answer, str]:
        record = self._core.answer_record(answer_id)
        if record is None or time.time() - record.at > SHARE_TTL_S:
            msg = "That answer is too old to share; ask again with /ask."
            raise InputError(msg)
        if record.user != user:  # it may come from documents only the asker may read
            msg = "Only the person who asked can share this answer."
            raise AccessDenied(msg)
        return record.as_answer(), record.question


def _url_key(answer_id: str) -> str:
    return f"archivist:slack:ask-url:{answer_id}"


def _check(status: int, body: str) -> None:
    """A response_url refusal (used up, expired, too long) becomes an error the user is told."""
    if status != 200:
        msg = f"Slack refused the shared answer ({neutralize(str(body))[:80] or status})."
        raise InputError(msg)


def _team(body: dict[str, Any], context: Any) -> str:
    return body.get("team_id") or (body.get("team") or {}).get("id") or context.team_id or "-"


def _quote(text: str, limit: int = 200) -> str:
    text = neutralize(text.replace("\n", " ").replace("_", " "))
    return text if len(text) <= limit else text[:limit] + "…"


async def _fetch_message(client: AsyncWebClient, channel: str, ts: str) -> dict[str, Any] | None:
    """The message at ``ts``: top-level messages from history, thread replies from replies."""
    history = await client.conversations_history(
        channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1
    )
    for message in history.get("messages") or []:
        if message.get("ts") == ts:
            return dict(message)
    # A reply: Slack puts the thread's parent first in every page and counts it toward
    # ``limit``, so ask for two, starting at the reply itself.
    replies = await client.conversations_replies(channel=channel, ts=ts, oldest=ts, inclusive=True, limit=2)
    for message in replies.get("messages") or []:
        if message.get("ts") == ts:
            return dict(message)
    return None


async def _tell_quietly(client: AsyncWebClient, channel: str, user: str, thread_ts: str, text: str) -> None:
    try:
        await client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, **notice(text).as_kwargs()
        )
    except Exception as exc:  # noqa: BLE001 - nothing more can be done than log it
        log_failure(exc, "reporting a failure in Slack")
