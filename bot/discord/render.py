"""Answer text for Discord: numbered sources, a context line, defused mentions, 2,000-character messages.

``split_message`` breaks on the largest boundary that fits: paragraph, line,
sentence, word; a word longer than a message is the only thing ever cut. A code
block is kept whole when it fits in one message; a block longer than a message is
split between lines, each piece closed and reopened with the same fence, so every
message renders on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import discord

from core.answering.answers import Answer, Source

MESSAGE_LIMIT = 2000  # Discord's hard limit on a message's content
FALLBACK_REASON_CHARS = 160  # the context line stays one line on a phone
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
# @everyone, @here and raw user/role mentions; a zero-width space after the @ makes
# them plain text in the rendered message (allowed_mentions already stops the ping).
_MENTION = re.compile(r"(?<![\w.])@(everyone|here)\b|<@([!&]?)(\d+)>")
_ZWSP = "\u200b"


def no_mentions() -> discord.AllowedMentions:
    """What every message is sent with: nobody is pinged, not even the asker."""
    return discord.AllowedMentions.none()


def neutralize_mentions(text: str) -> str:
    def defuse(match: re.Match[str]) -> str:
        if match.group(1):
            return f"@{_ZWSP}{match.group(1)}"
        return f"<@{_ZWSP}{match.group(2)}{match.group(3)}>"

    return _MENTION.sub(defuse, text)


def _source_line(source: Source) -> str:
    title = _escape_link_text(source.title or source.path or source.url or "untitled")
    if source.url:
        # <url> keeps Discord from unfurling a preview for every source.
        return f"{source.index}. [{title}](<{source.url}>) · {source.source}"
    location = f" · `{source.path}`" if source.path and source.path != source.title else ""
    return f"{source.index}. {title}{location} · {source.source}"


def _escape_link_text(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").replace("\n", " ")


def context_line(answer: Answer) -> str:
    """Discord's small grey subtext (``-#``): which model answered, and why when it was a fallback."""
    line = f"-# Answered by {answer.model}" if answer.model else ""
    if answer.fallback:
        reason = " ".join(answer.fallback.split())
        if len(reason) > FALLBACK_REASON_CHARS:
            reason = reason[: FALLBACK_REASON_CHARS - 1].rstrip() + "…"
        line = f"{line or '-# Answered'} instead of the fine-tuned model ({reason})"
    return line


def render_answer(answer: Answer) -> str:
    """The answer as one markdown text: what the model said, numbered sources, the context line."""
    text = answer.text.strip()
    if answer.sources:
        lines = "\n".join(_source_line(source) for source in answer.sources)
        text = f"{text}\n\n**Sources**\n{lines}"
    context = context_line(answer)
    if context:
        text = f"{text}\n{context}"
    return neutralize_mentions(text)


# -- splitting ----------------------------------------------------------------


def _blocks(text: str) -> Iterator[tuple[str, str]]:
    """("prose", text) and ("code", text) segments, in order; code keeps its fences."""
    lines = text.split("\n")
    prose: list[str] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            prose.append(lines[index])
            index += 1
            continue
        if prose:
            yield "prose", "\n".join(prose)
            prose = []
        fence = opening.group(1)
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        yield "code", "\n".join(lines[index : end + 1])  # an unclosed block runs to the end
        index = end + 1
    if prose:
        yield "prose", "\n".join(prose)


def _prose_atoms(text: str, limit: int) -> list[tuple[str, str]]:
    atoms: list[tuple[str, str]] = []
    for p_index, paragraph in enumerate(p for p in re.split(r"\n\s*\n", text) if p.strip()):
        lead = "\n\n" if p_index else ""
        for l_index, line in enumerate(paragraph.split("\n")):
            line_lead = lead if l_index == 0 else "\n"
            for s_index, sentence in enumerate(_split_sentences(line, limit)):
                sentence_lead = line_lead if s_index == 0 else " "
                for w_index, word in enumerate(_split_words(sentence, limit)):
                    atoms.append((sentence_lead if w_index == 0 else " ", word))
    return atoms


def _split_sentences(line: str, limit: int) -> list[str]:
    if len(line) <= limit:
        return [line]
    return [s for s in _SENTENCE_END.split(line) if s]


def _split_words(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    words: list[str] = []
    for word in sentence.split():
        words += [word[i : i + limit] for i in range(0, len(word), limit)]
    return words


def _code_atoms(block: str, limit: int) -> list[tuple[str, str]]:
    if len(block) <= limit:
        return [("\n", block)]
    lines = block.split("\n")
    opening = lines[0]
    fence = _FENCE.match(opening).group(1)  # type: ignore[union-attr]
    body = lines[1:-1] if len(lines) > 1 and lines[-1].strip().startswith(fence) else lines[1:]
    room = limit - len(opening) - len(fence) - 2  # the two newlines around the body
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in body:
        for part in [line[i : i + room] for i in range(0, len(line), room)] or [""]:
            if current and size + len(part) + 1 > room:
                pieces.append("\n".join(current))
                current, size = [], 0
            current.append(part)
            size += len(part) + 1
    if current:
        pieces.append("\n".join(current))
    return [("\n", f"{opening}\n{piece}\n{fence}") for piece in pieces]


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as messages of at most ``limit`` characters, broken at natural boundaries."""
    text = text.strip()
    if not text:
        return []
    atoms: list[tuple[str, str]] = []
    for kind, segment in _blocks(text):
        new = _code_atoms(segment, limit) if kind == "code" else _prose_atoms(segment, limit)
        if not atoms and new:
            new[0] = ("", new[0][1])
        atoms += new
    messages: list[str] = []
    current = ""
    for separator, atom in atoms:
        if current and len(current) + len(separator) + len(atom) <= limit:
            current += separator + atom
            continue
        if current.strip():
            messages.append(current.strip())
        current = atom
    if current.strip():
        messages.append(current.strip())
    return messages
