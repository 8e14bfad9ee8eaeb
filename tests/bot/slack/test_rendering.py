"""What people read: streaming edits, long answers split under Slack's limits, no pings."""

from __future__ import annotations

import json
import re

import pytest

from bot.slack.app import Tuning
from bot.slack.render import MAX_BLOCKS, SECTION_CHARS, answer_messages, source_line
from bot.slack.safety import ZERO_WIDTH_SPACE, neutralize
from bot.slack.split import split_text
from bot.slack.streaming import StreamingReply
from core.answering.answers import Answer, Source
from tests.bot.slack.conftest import start_harness
from tests.bot.slack.mock_web_api import BOT_USER_ID, wait_until

QUESTION = "How many vacation days do employees in the Netherlands get?"


def mention(ts: str) -> dict:
    return {
        "type": "app_mention",
        "user": "UASKER",
        "text": f"<@{BOT_USER_ID}> {QUESTION}",
        "ts": ts,
        "channel": "CGENERAL",
        "event_ts": ts,
    }


def visible(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.asyncio
async def test_answer_streams_placeholder_then_growing_edits_then_final(
    remote_model_app, mock_slack, openai_server
) -> None:
    # Several sentences: the core shows an answer a checked sentence at a time.
    openai_server.reply = (
        "Employees in the Netherlands get twenty-five vacation days a year [1]. "
        "Requests go to your manager before the holiday starts. Unused days carry over."
    )
    openai_server.chunk_chars = 8
    harness = await start_harness(remote_model_app, mock_slack, Tuning(stream_interval_s=0.0))
    try:
        await harness.send.event(mention("10.000001"))
        await wait_until(
            lambda: mock_slack.seen(lambda c: c.method == "chat.update" and c.params.get("blocks"))
        )
    finally:
        await harness.client.close()
    [placeholder] = mock_slack.posted()
    assert "Looking through the documents" in placeholder.params["text"]
    updates = [
        c
        for c in mock_slack.of("chat.update")
        if c.params["ts"] == mock_slack.posted()[0].params.get("ts", c.params["ts"])
    ]
    partial = [c.params["text"] for c in updates if not c.params.get("blocks")]
    assert len(partial) >= 2, "the answer should fill in as it is written"
    lengths = [len(t) for t in partial]
    assert lengths == sorted(lengths) and partial[0] != partial[-1]
    assert "twenty-five vacation days" in updates[-1].text()


class _FakeClient:
    def __init__(self) -> None:
        self.updates: list[str] = []

    async def chat_postMessage(self, **kwargs):  # noqa: N802 - slack_sdk's naming
        return {"channel": kwargs["channel"], "ts": "1.0"}

    async def chat_update(self, **kwargs):  # noqa: N802
        self.updates.append(kwargs["text"])
        return {"ok": True}


@pytest.mark.asyncio
async def test_edits_are_throttled_to_the_interval() -> None:
    now = [0.0]
    client = _FakeClient()
    reply = StreamingReply(client, "C1", "1.0", interval_s=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    await reply.start()
    for _ in range(10):  # ten tokens within the first second: no edit yet
        now[0] += 0.05
        await reply.add("word ")
    assert client.updates == []
    now[0] = 1.2
    await reply.add("more ")
    now[0] = 1.5
    await reply.add("again ")
    assert len(client.updates) == 1 and "more" in client.updates[0]


def test_split_keeps_every_word_and_prefers_paragraphs_then_sentences() -> None:
    paragraph = "This is a sentence about the policy. " * 40
    text = "\n\n".join([paragraph.strip()] * 5)
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert visible("".join(pieces)) == visible(text)
    assert all(p.endswith(".") for p in pieces)  # never cut inside a sentence
    assert split_text("word " * 10, 12)[0] == "word word"


@pytest.mark.asyncio
async def test_long_answer_is_split_into_several_messages_without_losing_text(slack, openai_server) -> None:
    def code(i: int) -> str:  # words, not figures: the core rejects figures its sources lack
        return "".join("abcdefghijklmnopqrstuvwxyz"[int(d)] for d in f"{i:04d}")

    sentences = [
        f"Point {code(i)} says employees should read section {code(i)} of the handbook carefully [1]."
        for i in range(1500)
    ]
    openai_server.reply = "\n\n".join(" ".join(sentences[i : i + 15]) for i in range(0, 1500, 15))
    openai_server.chunk_chars = 4000
    await slack.send.event(mention("20.000001"))
    await wait_until(
        lambda: slack.mock.seen(lambda c: "archivist_vote_up" in json.dumps(c.params.get("blocks") or [])),
        timeout=180,
    )
    answer_parts = slack.mock.seen(lambda c: bool(c.params.get("blocks")))
    assert len(answer_parts) >= 9  # > 100k characters, at most ~12k of block text a message
    assert not [c for c in slack.mock.calls if c.error == "msg_blocks_too_long"]
    shown = ""
    for part in answer_parts:
        assert len(part.params["blocks"]) <= MAX_BLOCKS
        assert len(part.params["text"]) <= 40_000
        for block in part.params["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SECTION_CHARS
                shown += block["text"]["text"]
    for sentence in (sentences[0], sentences[777], sentences[-1]):
        assert visible(sentence) in visible(shown)
    assert all(
        p.params.get("thread_ts") == "20.000001" for p in answer_parts if p.method == "chat.postMessage"
    )


def test_many_sources_and_blocks_fit_the_block_limit() -> None:
    answer = Answer("x. " * 60_000, [], "rag", "m", False, "q")
    messages = answer_messages(answer)
    assert len(messages) > 1 and all(len(m.blocks) <= MAX_BLOCKS for m in messages)
    assert messages[-1].blocks[-1]["type"] == "actions"


PINGS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@UABCDEF>",
    "<!subteam^S0123|@team>",
    "@channel",
    "@here",
    "@everyone",
]


def test_neutralize_leaves_no_mention_syntax() -> None:
    for ping in PINGS:
        safe = neutralize(f"Hey {ping} look")
        assert ping not in safe
        assert "<" not in safe and ">" not in safe
        if ping.startswith("@"):
            assert f"@{ZERO_WIDTH_SPACE}" in safe


@pytest.mark.asyncio
async def test_model_output_never_pings_anyone(slack, openai_server) -> None:
    openai_server.reply = "Attention <!channel> and <!here> and @everyone: ask <@UABCDEF> about it [1]."
    await slack.send.event(mention("30.000001"))
    await wait_until(
        lambda: slack.mock.seen(lambda c: "archivist_vote_up" in json.dumps(c.params.get("blocks") or []))
    )
    for call in slack.mock.seen(lambda c: c.method in ("chat.postMessage", "chat.update")):
        body = json.dumps(call.params, ensure_ascii=False)
        for ping in ("<!channel>", "<!here>", "<@UABCDEF>", "@everyone"):
            assert ping not in body
        assert not call.params.get("link_names")
    final = slack.mock.seen(lambda c: bool(c.params.get("blocks")))[-1]
    assert "&lt;!channel&gt;" in final.text()  # still readable, as plain text


def _source(url: str) -> Source:
    return Source(1, "Travel | Expenses", "wiki", url, "", 0.9, "", True)


def test_source_urls_with_separators_stay_one_working_link() -> None:
    """A | or > in a URL must not end the <url|label> link early (Slack's escaping rules)."""
    url = "https://wiki.example.com/pages?id=7|draft&view=a>b <x>"
    line = source_line(_source(url))
    [(linked, label)] = re.findall(r"<([^|>]+)\|([^>]+)>", line)
    from urllib.parse import unquote

    assert unquote(linked.replace("&amp;", "&")) == url
    assert label == "Travel / Expenses"
    assert line.count("<") == 1 and line.count(">") == 1


def test_addresses_slack_should_not_link_stay_plain_text() -> None:
    line = source_line(_source("javascript:alert(1)"))
    assert "<" not in line and "javascript:alert(1)" in line


def test_each_answer_says_which_model_answered_and_any_fallback() -> None:
    plain = Answer("Twenty days [1].", [], "rag", "gpt-test", False, "q")
    fell = Answer(
        "Twenty days [1].", [], "rag", "gpt-test", False, "q", fallback="fine-tuned model unreachable"
    )
    [first] = answer_messages(plain)
    [second] = answer_messages(fell)
    context = [b for b in first.blocks if b["type"] == "context"]
    assert (
        context
        and "Answered by gpt-test" in json.dumps(context)
        and "fallback" not in json.dumps(first.blocks)
    )
    assert "fallback: fine-tuned model unreachable" in json.dumps(second.blocks)


class _StreamClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    async def _call(self, name: str, kwargs: dict) -> dict:
        self.calls.append((name, kwargs))
        return {"ok": True, "channel": kwargs.get("channel", "C1"), "ts": "2.0"}

    async def chat_startStream(self, **kwargs):  # noqa: N802 - slack_sdk's naming
        return await self._call("chat.startStream", kwargs)

    async def chat_appendStream(self, **kwargs):  # noqa: N802
        return await self._call("chat.appendStream", kwargs)

    async def chat_stopStream(self, **kwargs):  # noqa: N802
        return await self._call("chat.stopStream", kwargs)

    async def chat_update(self, **kwargs):  # noqa: N802
        return await self._call("chat.update", kwargs)

    async def chat_postMessage(self, **kwargs):  # noqa: N802
        return await self._call("chat.postMessage", kwargs)


@pytest.mark.asyncio
async def test_a_streamed_answer_rewritten_at_the_end_is_replaced_by_the_final_one() -> None:
    """When the checked answer differs from the words streamed, people end up reading the final one."""
    from bot.slack.pacing import RateBudget
    from bot.slack.streaming import StreamedReply

    client = _StreamClient()
    reply = StreamedReply(client, "C1", "1.0", user="U1", team="T1", budget=RateBudget(), interval_s=0.0)  # type: ignore[arg-type]
    await reply.start()
    await reply.add("The budget is large. ")
    final = Answer("The handbook says: learning budget per employee [1].", [], "rag", "m", False, "q")
    await reply.finish(final)
    names = [name for name, _ in client.calls]
    assert names == ["chat.startStream", "chat.appendStream", "chat.stopStream", "chat.update"]
    assert "learning budget per employee" in json.dumps(client.calls[-1][1]["blocks"])
    assert client.calls[0][1]["recipient_user_id"] == "U1" and client.calls[0][1]["recipient_team_id"] == "T1"
