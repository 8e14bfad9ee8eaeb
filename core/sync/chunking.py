"""Structure-aware chunking: Markdown headings, then paragraphs, then sentences.

Each chunk keeps the heading path it sits under, so a passage about "Carry-over"
still says it belongs to "Vacation policy > Annual leave" when it is retrieved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.documents import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class ChunkingOptions:
    max_chars: int = 1200
    overlap_chars: int = 200
    min_chars: int = 80

    def __post_init__(self) -> None:
        if self.max_chars < 200:
            msg = "chunking.max_chars must be at least 200"
            raise ValueError(msg)
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            msg = "chunking.overlap_chars must be between 0 and half of max_chars"
            raise ValueError(msg)


@dataclass
class _Section:
    headings: tuple[str, ...]
    blocks: list[str]


def split_sections(text: str) -> list[_Section]:
    """Group paragraphs under the Markdown heading path they belong to.

    Fenced code blocks are kept whole and their ``#`` lines are not headings.
    """
    sections: list[_Section] = [_Section((), [])]
    trail: list[tuple[int, str]] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            block = "\n".join(paragraph).strip()
            if block:
                sections[-1].blocks.append(block)
            paragraph.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            paragraph.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            trail = [(lvl, title) for lvl, title in trail if lvl < level]
            trail.append((level, heading.group(2)))
            sections.append(_Section(tuple(title for _, title in trail), []))
        elif not in_fence and not line.strip():
            flush()
        else:
            paragraph.append(line)
    flush()
    return [section for section in sections if section.blocks]


def _split_long(block: str, limit: int) -> list[str]:
    """Split an over-long paragraph at sentence ends, then at spaces."""
    if len(block) <= limit:
        return [block]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(block):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def _overlap_tail(text: str, size: int) -> str:
    """The last ``size`` characters of a chunk, starting at a word boundary."""
    if size <= 0 or len(text) <= size:
        return ""
    tail = text[-size:]
    space = tail.find(" ")
    return tail[space + 1 :] if space >= 0 else tail


def pack_blocks(blocks: list[str], options: ChunkingOptions) -> list[str]:
    """Pack paragraphs into chunks of at most ``max_chars``, overlapping neighbours."""
    budget = options.max_chars - options.overlap_chars
    pieces = [piece for block in blocks for piece in _split_long(block, budget)]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > budget:
            chunks.append(current)
            tail = _overlap_tail(current, options.overlap_chars)
            current = f"{tail} … {piece}" if tail else piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    # A tiny trailing chunk reads better merged into its predecessor.
    if len(chunks) > 1 and len(chunks[-1]) < options.min_chars:
        last = chunks.pop()
        chunks[-1] = f"{chunks[-1]}\n\n{last}"
    return chunks


def chunk_document(document: Document, options: ChunkingOptions) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in split_sections(document.text):
        for text in pack_blocks(section.blocks, options):
            position = len(chunks)
            chunks.append(
                Chunk(
                    id=f"{document.source}:{document.id}#{position}",
                    document_id=document.id,
                    source=document.source,
                    title=document.title,
                    text=text,
                    heading_path=section.headings,
                    position=position,
                    url=document.url,
                    path=document.path,
                    content_hash=document.content_hash,
                    version=document.version,
                    updated_at=document.updated_at,
                    acl=document.acl,
                )
            )
    return chunks
