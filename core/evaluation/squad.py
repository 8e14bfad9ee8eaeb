"""SQuAD v2.0 files: questions with gold answer spans (or none), and SQuAD's own scoring.

A file is ``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``;
each question has ``id``, ``question``, ``answers`` (``[{"text", ...}]``) and
``is_impossible``. The contexts become a throwaway indexed corpus, one document
per paragraph, so an answer's citations can be checked against the paragraph
the question was written from.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.documents import Acl, Document
from core.errors import InputError
from core.sync.connector import Batch

SOURCE = "squad"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True)
class Paragraph:
    id: str
    title: str
    path: str  # what a cited source carries: "<title>/paragraph-<n>"
    context: str


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    text: str
    paragraph: str  # Paragraph.id
    answers: tuple[str, ...]  # gold spans; empty when the paragraph does not answer it

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class SquadDataset:
    name: str
    paragraphs: dict[str, Paragraph]
    questions: list[SquadQuestion]


def _fail(path: Path, where: str, problem: str) -> InputError:
    return InputError(f"{path}: {where}: {problem} (expected SQuAD v2.0 JSON: data → paragraphs → qas)")


def _list(value: object, path: Path, where: str) -> list[object]:
    if not isinstance(value, list):
        raise _fail(path, where, f"expected a list, found {type(value).__name__}")
    return value


def _text(value: object, path: Path, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, "expected non-empty text")
    return value


def _question(raw: object, path: Path, where: str, paragraph: str) -> SquadQuestion:
    if not isinstance(raw, dict):
        raise _fail(path, where, "expected an object")
    text = _text(raw.get("question"), path, f"{where}.question")
    question_id = _text(raw.get("id"), path, f"{where}.id")
    answers = tuple(
        dict.fromkeys(
            _text(answer.get("text") if isinstance(answer, dict) else None, path, f"{where}.answers[{i}]")
            for i, answer in enumerate(_list(raw.get("answers", []), path, f"{where}.answers"))
        )
    )
    impossible = raw.get("is_impossible", not answers)  # SQuAD 1.1 files have no such key
    if not isinstance(impossible, bool):
        raise _fail(path, f"{where}.is_impossible", "expected true or false")
    if not impossible and not answers:
        raise _fail(path, where, f"question {question_id!r} is answerable but has no answers")
    return SquadQuestion(question_id, text.strip(), paragraph, () if impossible else answers)


def load_squad(path: Path) -> SquadDataset:
    if not path.is_file():
        msg = f"{path} is not a file; give a SQuAD v2.0 JSON file (data → paragraphs → context, qas)"
        raise InputError(msg)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path}: not valid JSON ({exc})"
        raise InputError(msg) from None
    if not isinstance(raw, dict) or "data" not in raw:
        raise _fail(path, "top level", "no 'data' list")
    paragraphs: dict[str, Paragraph] = {}
    questions: dict[str, SquadQuestion] = {}
    paths: set[str] = set()
    for a, article in enumerate(_list(raw["data"], path, "data")):
        where = f"data[{a}]"
        if not isinstance(article, dict):
            raise _fail(path, where, "expected an object")
        title = str(article.get("title") or f"Article {a + 1}").replace("_", " ")
        for p, paragraph in enumerate(_list(article.get("paragraphs"), path, f"{where}.paragraphs")):
            inner = f"{where}.paragraphs[{p}]"
            if not isinstance(paragraph, dict):
                raise _fail(path, inner, "expected an object")
            context = _text(paragraph.get("context"), path, f"{inner}.context")
            location = f"{title}/paragraph-{p + 1}"
            if location in paths:  # two articles with one title
                location = f"{title} ({a + 1})/paragraph-{p + 1}"
            paths.add(location)
            paragraph_id = f"{a:04d}-{p:04d}"
            paragraphs[paragraph_id] = Paragraph(paragraph_id, title, location, context)
            for q, qa in enumerate(_list(paragraph.get("qas"), path, f"{inner}.qas")):
                question = _question(qa, path, f"{inner}.qas[{q}]", paragraph_id)
                if question.id in questions:
                    raise _fail(path, f"{inner}.qas[{q}]", f"question id {question.id!r} appears twice")
                questions[question.id] = question
    if not questions:
        msg = f"{path}: holds no questions"
        raise InputError(msg)
    return SquadDataset(path.stem, paragraphs, list(questions.values()))


@dataclass
class SquadConnector:
    """The paragraphs as a source, so they are indexed through the real sync pipeline."""

    dataset: SquadDataset
    name: str = SOURCE
    kind: str = "squad"

    def describe(self) -> str:
        return f"SQuAD file {self.dataset.name} ({len(self.dataset.paragraphs)} paragraphs)"

    def load_all(self) -> Iterator[Batch]:
        batch: Batch = [
            Document(
                id=paragraph.id,
                source=self.name,
                title=paragraph.title,
                text=paragraph.context,
                path=paragraph.path,
                acl=Acl.everyone(),
                mime_type="text/plain",
            )
            for paragraph in self.dataset.paragraphs.values()
        ]
        yield batch


# -- SQuAD's scoring: lower case, drop punctuation and articles, collapse whitespace ------------


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: tuple[str, ...] | list[str]) -> float:
    """1.0 if the prediction equals any gold answer after normalisation."""
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in gold)


def contains_answer(prediction: str, gold: tuple[str, ...] | list[str]) -> float:
    """1.0 if the normalised prediction contains a normalised gold answer: what a reader needs."""
    said = f" {normalize_answer(prediction)} "
    return max(float(bool(normalize_answer(g)) and f" {normalize_answer(g)} " in said) for g in gold)


def token_f1(prediction: str, gold: tuple[str, ...] | list[str]) -> float:
    """The best token-overlap F1 over the gold answers."""
    return max(_f1(normalize_answer(prediction).split(), normalize_answer(g).split()) for g in gold)


def _f1(predicted: list[str], wanted: list[str]) -> float:
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)
