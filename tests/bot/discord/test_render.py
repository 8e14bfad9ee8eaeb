"""Formatting, splitting and the edit throttle, without Discord."""

from __future__ import annotations

import pytest

from bot.discord.render import neutralize_mentions, render_answer, split_message
from bot.discord.streaming import StreamedReply
from core.answering.answers import Answer, Source


def _source(index: int, url: str = "", path: str = "") -> Source:
    return Source(index, f"Doc {index}", "handbook", url, path, 0.9, "snippet", True)


def test_sources_are_numbered_links_or_paths() -> None:
    answer = Answer(
        "It is so [1][2].",
        [_source(1, url="https://wiki/x"), _source(2, path="people/pto.md")],
        "rag",
        "m",
        False,
        "q",
    )
    text = render_answer(answer)
    assert "1. [Doc 1](<https://wiki/x>) · handbook" in text
    assert "2. Doc 2 · `people/pto.md` · handbook" in text


def test_raw_mentions_become_plain_text() -> None:
    text = neutralize_mentions(
        "ping <@123456789012345678>, <@!42>, <@&99>, @everyone and @here; mail a@here.com"
    )
    assert "<@1" not in text and "<@!" not in text and "<@&" not in text
    assert "@everyone" not in text and " @here" not in text
    assert "a@here.com" in text  # addresses are left alone


def test_short_text_is_one_message() -> None:
    assert split_message("Hello.\n\nWorld.") == ["Hello.\n\nWorld."]


def test_paragraphs_are_kept_together_when_they_fit() -> None:
    paragraph = "word " * 300  # 1,500 characters
    parts = split_message(f"{paragraph.strip()}.\n\n{paragraph.strip()}.")
    assert len(parts) == 2 and all(p.endswith("word.") for p in parts)


def test_a_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "```sh\n" + "\n".join(f"echo line-{i:04d}" for i in range(300)) + "\n```"
    parts = split_message(f"Run this:\n\n{code}\n\nDone.")
    assert all(len(p) <= 2000 for p in parts)
    code_parts = [p for p in parts if "```" in p]
    assert len(code_parts) >= 2
    for part in code_parts:
        assert part.count("```") == 2 and "```sh\n" in part  # each piece reopens with the language
    joined = "\n".join(parts)
    assert all(f"echo line-{i:04d}" in joined for i in range(300))


def test_a_word_is_never_cut_unless_it_alone_exceeds_a_message() -> None:
    words = [f"w{i:05d}" for i in range(700)]  # 4,900 characters, no sentence ends
    parts = split_message(" ".join(words))
    assert [w for p in parts for w in p.split()] == words
    url = "https://example.com/" + "a" * 2500
    assert "".join(split_message(url)) == url


class _Message:
    def __init__(self, log: list[str], text: str) -> None:
        self.id = len(log)
        self.log = log
        self.text = text

    async def edit(self, **fields: object) -> None:
        self.log.append("edit")
        self.text = str(fields["content"])

    async def delete(self) -> None:
        self.log.append("delete")


class _Outbox:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.sent: list[_Message] = []

    async def send(self, text: str, *, view: object = None) -> _Message:
        self.log.append("send")
        self.sent.append(_Message(self.log, text))
        return self.sent[-1]

    def expired(self) -> bool:
        return False


@pytest.mark.asyncio
async def test_streaming_edits_at_most_once_per_interval_then_shows_the_final_text() -> None:
    now = [0.0]
    outbox = _Outbox()
    reply = StreamedReply(outbox, interval_s=1.0, clock=lambda: now[0])
    text = ""
    for _ in range(50):  # 50 tokens over 5 seconds
        text += "token "
        await reply.update(text)
        now[0] += 0.1
    assert outbox.log[0] == "send"
    assert 3 <= outbox.log.count("edit") <= 5  # about one a second, not one per token
    await reply.finish(["The final answer."], None)
    assert outbox.sent[-1].text == "The final answer."


@pytest.mark.asyncio
async def test_streaming_overflows_into_new_messages_and_drops_unneeded_ones() -> None:
    now = [0.0]
    outbox = _Outbox()
    reply = StreamedReply(outbox, interval_s=1.0, clock=lambda: now[0])
    await reply.update("Sentence here. " * 200)  # 3,000 characters: two messages
    assert len(outbox.sent) == 2
    await reply.finish(["Short final answer."], None)
    assert outbox.log[-1] == "delete" and outbox.sent[0].text == "Short final answer."


def test_a_small_line_under_the_answer_names_the_model_and_any_fallback() -> None:
    answer = Answer("It is so [1].", [_source(1, url="https://wiki/x")], "rag", "gpt-4o-mini", False, "q")
    assert render_answer(answer).endswith("\n-# Answered by gpt-4o-mini")

    fell_back = Answer(
        "It is so [1].",
        [_source(1, url="https://wiki/x")],
        "rag",
        "gpt-4o-mini",
        False,
        "q",
        route="finetuned",
        fallback="fine-tuned model ft-handbook failed: timed out",
    )
    last = render_answer(fell_back).splitlines()[-1]
    assert last.startswith("-# Answered by gpt-4o-mini") and "instead of the fine-tuned model" in last
    assert "ft-handbook failed: timed out" in last
