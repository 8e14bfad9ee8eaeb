"""Block Kit for answers: the text, numbered linked sources, feedback buttons.

Slack's limits (https://api.slack.com/reference/block-kit/blocks): a section's
text holds at most 3000 characters, a message at most 50 blocks, and a
message's ``text`` at most 40,000 characters. Well below the block arithmetic,
Slack refuses a message whose blocks hold more than about 12,000 characters of
text together (``msg_blocks_too_long``). A long answer becomes several
messages; nothing is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.slack.safety import link_label, neutralize
from bot.slack.split import split_text
from core.answering.answers import Answer, Source

SECTION_CHARS = 3000
MAX_BLOCKS = 50
MESSAGE_TEXT_CHARS = 40_000
BLOCKS_TEXT_CHARS = 12_000  # all of a message's blocks together (msg_blocks_too_long past it)
# Room for a safety margin under each limit: a cut never lands exactly on it.
_SECTION_BUDGET = SECTION_CHARS - 100
_MESSAGE_BUDGET = BLOCKS_TEXT_CHARS - 1000
PREVIEW_CHARS = _SECTION_BUDGET

VOTE_UP = "archivist_vote_up"
VOTE_DOWN = "archivist_vote_down"
SHARE = "archivist_share"
FEEDBACK_BLOCK = "archivist_feedback"

PLACEHOLDER = ":hourglass_flowing_sand: _Looking through the documents…_"

Block = dict[str, Any]


@dataclass
class SlackMessage:
    text: str  # notification and fallback text
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def mrkdwn(text: str) -> str:
    """Model Markdown as Slack mrkdwn, neutralised: **bold** → *bold*, # Heading → *Heading*."""
    text = neutralize(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)
    text = re.sub(r"__(.+?)__", r"_\1_", text)
    return re.sub(r"(?m)^#{1,6}\s+(.+)$", r"*\1*", text)


def preview(text: str) -> str:
    """What a half-streamed answer looks like; the final render replaces it."""
    body = mrkdwn(text.strip())
    if len(body) > PREVIEW_CHARS:
        body = body[:PREVIEW_CHARS] + " …"
    return f"{body} :writing_hand:" if body else PLACEHOLDER


# Inside <url|label> a "|" ends the URL and ">" ends the link: those are percent-encoded (the
# URL means the same); & < > are escaped as "Formatting text for app surfaces" prescribes.
_URL_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "%3C", ">": "%3E", "|": "%7C", " ": "%20", "\n": "", "\r": "", "\t": ""}
)
_LINKABLE = re.compile(r"(?i)^(https?|mailto):")


def link_url(url: str) -> str | None:
    """``url`` safe inside ``<url|label>``; ``None`` for schemes Slack should not link."""
    url = url.strip()
    return url.translate(_URL_ESCAPES) if _LINKABLE.match(url) else None


def source_line(source: Source) -> str:
    title = link_label(source.title or source.path or source.url or "untitled")
    origin = neutralize(source.source)
    url = link_url(source.url) if source.url else None
    if url:
        return f"[{source.index}] <{url}|{title}> · {origin}"
    shown = source.path or source.url  # an address Slack should not link stays plain text
    where = f" · `{neutralize(shown)}`" if shown and shown != source.title else ""
    return f"[{source.index}] {title}{where} · {origin}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def feedback_actions(answer_id: str, *, share: bool = False) -> Block:
    elements = [
        _button(":thumbsup: Helpful", VOTE_UP, answer_id),
        _button(":thumbsdown: Not helpful", VOTE_DOWN, answer_id),
    ]
    if share:
        elements.append(_button("Share in channel", SHARE, answer_id, "primary"))
    return {"type": "actions", "block_id": FEEDBACK_BLOCK, "elements": elements}


def answer_messages(answer: Answer, *, share: bool = False, footer: str = "") -> list[SlackMessage]:
    """The answer as one or more messages; buttons on the last one."""
    return pack(text_blocks(answer.text) + answer_tail(answer, share=share, footer=footer))


def text_blocks(text: str) -> list[Block]:
    return [_section(piece) for piece in split_text(mrkdwn(text), _SECTION_BUDGET)]


def answer_tail(answer: Answer, *, share: bool = False, footer: str = "") -> list[Block]:
    """What follows the answer's words: sources, footer, feedback buttons."""
    tail: list[Block] = []
    if answer.sources:
        lines = "\n".join(source_line(s) for s in answer.sources)
        tail += [_section(piece) for piece in split_text(f"*Sources*\n{lines}", _SECTION_BUDGET)]
    notes = [footer] if footer else []
    notes.append(model_line(answer))
    tail.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note} for note in notes]})
    tail.append(feedback_actions(answer.id, share=share))
    return tail


def model_line(answer: Answer) -> str:
    """Which model answered, and why it was not the one the route asked for."""
    line = f"Answered by {neutralize(answer.model)} ({neutralize(answer.mode)})"
    if answer.fallback:
        line += f" · fallback: {neutralize(answer.fallback)}"
    return line


def pack(blocks: list[Block]) -> list[SlackMessage]:
    """Group blocks into messages under the block and text limits, in order."""
    messages: list[SlackMessage] = []
    size = 0
    for block in blocks:
        text = _block_text(block)
        current = messages[-1] if messages else None
        if current is None or len(current.blocks) >= MAX_BLOCKS or size + len(text) > _MESSAGE_BUDGET:
            messages.append(SlackMessage(""))
            size = 0
        messages[-1].blocks.append(block)
        size += len(text)
    for message in messages:
        message.text = (
            "\n\n".join(t for t in map(_block_text, message.blocks) if t)[:MESSAGE_TEXT_CHARS] or "Archivist"
        )
    return messages


def _block_text(block: Block) -> str:
    if block.get("type") == "section":
        return str(block["text"]["text"])
    return ""


def notice(text: str) -> SlackMessage:
    """A short message from Archivist itself (errors, help), neutralised like any other."""
    safe = neutralize(text)
    return SlackMessage(safe, [_section(piece) for piece in split_text(safe, _SECTION_BUDGET)])
