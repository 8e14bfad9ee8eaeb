"""The quote answerer: the sentences of the retrieved passages that answer the question, cited.

A 135M-parameter generator cannot read reliably; the documents can be quoted
reliably. Every sentence of the retrieved passages is scored by how well it
answers the question:

- meaning: cosine similarity of question and sentence, with the embedder the
  store already uses (no second model is loaded);
- words: the share of the question's content words the sentence holds, rare
  words counting more than words every candidate sentence shares;
- the passage: its own similarity to the question, so a sentence from the page
  retrieval ranked first wins a tie;
- a cross-encoder's reading of question and sentence together, when one is
  configured (``[retrieval] reranker_path``).

The best sentence (and a second close behind it, or one that covers a part of
the question the best one lacks) is the answer.

Whether the documents answer at all is a separate judgement, ``answerability``:
how close the best passage is to the question, plus how close the best sentence
is in meaning beyond the words it shares with the question (a question written
with a page's own words scores high on word overlap whether or not the page
answers it). A question that looks answerable but is not is usually a
near-copy of an answerable one with one thing changed, so two checks lower the
score: the question says "not / never / no ..." (outside an "if ..." clause)
and the best sentence doesn't (it asks about the opposite of what the page
says), or a name or figure of the question (a capitalised word after the
first, a number) is neither in the best sentence nor in its page's title and
headings (the page speaks of something else). Below ``[assistant] quote_threshold`` the question is
declined. The weights and the threshold were chosen on the shared SQuAD v2
article and the sample handbook (docs/evaluation.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from langchain_core.embeddings import Embeddings

from core.answering.safety import INJECTION_NOTE, neutralize_instructions
from core.retrieval.store.base import SearchHit

# Weights of the score's parts; tuned on the shared SQuAD v2 article and the sample handbook.
MEANING_WEIGHT = 0.6
WORDS_WEIGHT = 0.2
PASSAGE_WEIGHT = 0.2
CROSS_ENCODER_WEIGHT = 0.3
# Answerability: best passage similarity + these times the best sentence's meaning and word share.
ANSWERABLE_MEANING = 0.5
ANSWERABLE_WORDS = -0.25
# ... minus this when the question is negated and the best sentence is not,
NEGATION_PENALTY = 0.3
# ... and minus this when a name or figure of the question is absent from the best sentence.
MISSING_NAME_PENALTY = 0.15
DEFAULT_THRESHOLD = 0.65
# A second sentence joins the answer when it scores within this of the best one.
SECOND_SENTENCE_MARGIN = 0.03
# "How many / how long / when ...": a sentence holding a figure scores this much more, and the best
# sentence without one is joined by the best with one within SECOND_SENTENCE_REACH.
FIGURE_BONUS = 0.05
_ASKS_FOR_FIGURE = re.compile(
    r"\b(how (many|much|long|quickly|soon|often|fast|far|old|big|large|early|late)|when|what (year|date|time|"
    r"percentage|age|number)|within how)\b",
    re.IGNORECASE,
)
# ... or within this when it holds a word of the question the best one lacks.
SECOND_SENTENCE_REACH = 0.2
_NEGATION = re.compile(r"\b(?:not|never|no|without|cannot)\b|n't\b", re.IGNORECASE)
# "... if I don't have VPN access?" sets a condition; it does not ask about the opposite of a fact.
_CONDITION = re.compile(r"\s(?:if|unless|in case)\b.*", re.IGNORECASE | re.DOTALL)
MAX_SENTENCE_CHARS = 600
FAQ_QUESTION_WORDS = 8  # a question shorter than this in a page is a heading, never an answer

_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_MARKUP = re.compile(r"\*\*|__|`|^#+\s*|^\s*>\s*|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
_STOP = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing done during each either for from get gets got
    had has have having he her here hers him his how i if in into is it its just may me might more
    most much must my no nor not now of off on once one only or other our out over own per same
    shall she should so some such than that the their them then there these they this those through
    to too under until up upon us very was we were what when where which while who whom whose why
    will with would you your yours many long quickly often""".split()
)


@dataclass(frozen=True)
class Quote:
    sentence: str
    passage: int  # index into the passages given, from 0
    score: float
    parts: tuple[float, ...] = ()  # meaning, words, passage (and cross-encoder): what the score adds up


def _table_rows(lines: list[str]) -> list[str]:
    """Markdown table rows as "first cell — Header: cell; ..." so each row reads on its own."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    rules = [k for k, line in enumerate(lines) if _TABLE_RULE.match(line)]
    if not rules or rules[0] == 0:
        return [" ".join(row) for row in cells if not _TABLE_RULE.match("|".join(row))]
    header = cells[rules[0] - 1]
    rows = []
    for row in cells[rules[0] + 1 :]:
        named = [
            f"{header[k]}: {cell}" if k < len(header) and header[k] else cell
            for k, cell in enumerate(row[1:], 1)
        ]
        rows.append(f"{row[0]} — " + "; ".join(named) if named else row[0])
    return rows


def _lines(text: str) -> list[tuple[str, bool]]:
    """Lines of text, tables turned into self-describing rows, wrapped list items joined.

    Each line comes with whether it is a table row: a row is one unit, never split into sentences.
    """
    lines: list[tuple[str, bool]] = []
    table: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            table.append(line)
            continue
        if table:
            lines += [(row, True) for row in _table_rows(table)]
            table = []
        last = lines[-1][0].rstrip() if lines and not lines[-1][1] else ""
        if last.endswith((",", ";", " and", " or")) and line.strip():
            lines[-1] = (f"{last} {line.strip().lstrip('-*• ')}", False)
        else:
            lines.append((line, False))
    return lines


def sentences(text: str) -> list[str]:
    """The sentences (and list items, table rows) of a passage, without Markdown markup."""
    found = []
    for line, is_row in _lines(text):
        for piece in [line] if is_row else _SPLIT.split(line):
            sentence = " ".join(_MARKUP.sub("", piece).split()).strip(" -•*")
            sentence = sentence.lstrip("….").strip()
            if len(sentence.split()) >= 3 and any(ch.isalpha() for ch in sentence):
                found.append(sentence[:MAX_SENTENCE_CHARS])
    return found


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def _word_scores(question: str, candidates: Sequence[str]) -> list[float]:
    """The rarity-weighted share of the question's content words each candidate holds."""
    wanted = content_words(question)
    if not wanted:
        return [0.0] * len(candidates)
    held = [content_words(c) for c in candidates]
    counts = Counter(word for words in held for word in words & wanted)
    total = len(candidates)
    weight = {w: math.log((total + 1) / (counts[w] + 0.5)) + 1.0 for w in wanted}
    whole = sum(weight.values())
    return [sum(weight[w] for w in words & wanted) / whole for words in held]


class QuoteScorer:
    """Scores passage sentences against a question; see the module docstring."""

    def __init__(self, embedder: Embeddings, cross_encoder: object | None = None) -> None:
        self._embedder = embedder
        self._cross_encoder = cross_encoder  # has .scores(query, texts) -> list[float]

    def rank(self, question: str, hits: Sequence[SearchHit]) -> list[Quote]:
        """Every sentence of the passages, best first."""
        candidates = [(i, s) for i, hit in enumerate(hits) for s in _quotable(hit.chunk.text)]
        if not candidates:
            return []
        # A sentence is read with its section heading: a table row under "First response times"
        # answers a question about first response times.
        read = [f"{_section(hits[i])}: {s}" if _section(hits[i]) else s for i, s in candidates]
        vectors = np.asarray(self._embedder.embed_documents([question, *read]), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        vectors = vectors / norms[:, None]
        meaning = vectors[1:] @ vectors[0]
        # Words count half from the sentence alone, so sentences under one heading still differ.
        words = [
            (alone + with_heading) / 2
            for alone, with_heading in zip(
                _word_scores(question, [s for _, s in candidates]), _word_scores(question, read), strict=True
            )
        ]
        parts: list[tuple[float, ...]] = [
            (float(meaning[k]), words[k], hits[i].similarity) for k, (i, _) in enumerate(candidates)
        ]
        if self._cross_encoder is not None:
            reading = self._cross_encoder.scores(question, read)  # type: ignore[attr-defined]
            parts = [(*p, _sigmoid(r)) for p, r in zip(parts, reading, strict=True)]
        weights = (MEANING_WEIGHT, WORDS_WEIGHT, PASSAGE_WEIGHT, CROSS_ENCODER_WEIGHT)
        scores = [sum(w * x for w, x in zip(weights, p, strict=False)) for p in parts]
        if asks_for_a_figure(question):
            scores = [s + FIGURE_BONUS * _has_figure(c) for s, (_, c) in zip(scores, candidates, strict=True)]
        order = sorted(range(len(candidates)), key=lambda k: -scores[k])
        return [Quote(candidates[k][1], candidates[k][0], scores[k], parts[k]) for k in order]


def _quotable(text: str) -> list[str]:
    """The sentences of a passage that may be quoted as an answer.

    Not text addressed to an assistant (it is data, and no answer), not a short question the page
    asks ("Lost your badge?": a heading; a long one may hold the answer), and not the cut-off start
    of a passage that overlaps the one before it.
    """
    cleaned = neutralize_instructions(text)[0].replace(INJECTION_NOTE, "\n")
    found = sentences(cleaned)
    if found and cleaned.lstrip()[:1].islower() and found[0][:1].islower():
        found = found[1:]
    return [s for s in found if not (s.endswith("?") and len(s.split()) < FAQ_QUESTION_WORDS)]


def asks_for_a_figure(question: str) -> bool:
    return _ASKS_FOR_FIGURE.search(question) is not None


def _has_figure(sentence: str) -> bool:
    return any(ch.isdigit() for ch in sentence)


def _section(hit: SearchHit) -> str:
    headings = [h for h in hit.chunk.heading_path if h != hit.chunk.title]
    return headings[-1] if headings else ""


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, value))))


def answerability(ranked: Sequence[Quote], hits: Sequence[SearchHit], question: str = "") -> float:
    """How sure it is that the passages answer the question; compare with ``quote_threshold``."""
    if not ranked or not hits:
        return float("-inf")
    best = ranked[0]
    meaning, words = best.parts[0], best.parts[1]
    best_passage = max(hit.similarity for hit in hits)
    score = best_passage + ANSWERABLE_MEANING * meaning + ANSWERABLE_WORDS * words
    if not question:
        return score
    if _NEGATION.search(_CONDITION.sub("", question)) and not _NEGATION.search(best.sentence):
        score -= NEGATION_PENALTY
    chunk = hits[best.passage].chunk
    if names_of(question) - content_words(" ".join([best.sentence, chunk.title, *chunk.heading_path])):
        score -= MISSING_NAME_PENALTY
    return score


def names_of(question: str) -> set[str]:
    """The names and figures a question mentions: its capitalised words after the first, and numbers."""
    found: set[str] = set()
    for word in question.split()[1:]:
        word = word.strip("?!.,;:\"'()[]")
        if word[:1].isupper() or word[:1].isdigit():
            found |= content_words(word)
    return found


def chosen_quotes(ranked: Sequence[Quote], question: str = "", limit: int = 2) -> list[Quote]:
    """The quotes that make the answer, best first.

    A second sentence joins the best one when it scores nearly as well, or when it holds a word of
    the question the best one lacks ("how many days, and in which tool?") and scores fairly well.
    """
    if not ranked:
        return []
    best = ranked[0]
    chosen = [best]
    wanted = content_words(question)
    covered = content_words(best.sentence) & wanted
    if asks_for_a_figure(question) and not _has_figure(best.sentence):
        with_figure = [q for q in ranked[1:6] if _has_figure(q.sentence)]
        if with_figure and with_figure[0].score >= best.score - SECOND_SENTENCE_REACH:
            return [best, with_figure[0]][:limit]
    for quote in ranked[1:6]:
        if len(chosen) >= limit:
            break
        if quote.sentence == best.sentence:
            continue
        adds = (content_words(quote.sentence) & wanted) - covered
        if quote.score >= best.score - SECOND_SENTENCE_MARGIN or (
            adds and quote.score >= best.score - SECOND_SENTENCE_REACH
        ):
            chosen.append(quote)
            covered |= adds
    return chosen
