"""Question/answer pairs written from indexed passages by the configured chat model.

The model sees a worked example, then one passage (sentences that address an AI
neutralised, as in answers), and must reply in a fixed two-line format. A reply
is parsed strictly and checked: a real question, an answer drawn from the
passage (its words and every figure), no talk of "the passage" (a user of the
fine-tuned model never sees one), no copy of the example. Each bad generation is
kept with the reason it was rejected, so nothing unchecked reaches training.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from core.answering.grounding import ungrounded_numbers
from core.answering.safety import neutralize_instructions, strip_fence_echo
from core.documents import Chunk
from core.finetune.dataset import Candidate, Rejection, chat_row
from core.models.chat import ChatModel, model_errors

GENERATION_SYSTEM = (
    "You write one question an employee could ask, and its answer, from a passage of a company's "
    "documents. The answer uses only facts stated in the passage. Reply in exactly this format:\n"
    "Question: ...\n"
    "Answer: ..."
)
# One worked example: small models follow an example far better than a described format
# (the bundled 135M model kept the format in 0 of 40 replies without it, 12 of 12 with it).
EXAMPLE_PASSAGE = (
    "Bicycle allowance\n\nEmployees who cycle to the office at least three days a week receive a "
    "bicycle allowance of 20 euros per month, paid with the salary."
)
EXAMPLE_REPLY = (
    "Question: How much is the bicycle allowance?\n"
    "Answer: Employees who cycle to the office at least three days a week receive 20 euros per month."
)
MIN_PASSAGE_WORDS = 25  # shorter chunks (headings, link lists) rarely hold a fact worth asking about
MAX_QUESTION_WORDS = 40
MAX_ANSWER_WORDS = 90
MIN_ANSWER_OVERLAP = 0.5  # share of the answer's content words that must appear in the passage
ATTEMPTS_PER_PAIR = 2  # passages tried per pair asked for, before giving up on reaching N

_REPLY = re.compile(
    r"^\s*\**question\**\s*:\s*(?P<question>.+?)\s*\n\s*\**answer\**\s*:\s*(?P<answer>.+?)\s*$", re.I | re.S
)
_LABEL = re.compile(r"^\s*\**(question|answer)\**\s*:", re.I | re.M)
_MENTIONS_PASSAGE = re.compile(
    r"\b(the|this|that|above|given|following) (passage|text|excerpt|document|paragraph|section|page)\b", re.I
)
_NO_ANSWER = re.compile(
    r"\b(not (mentioned|stated|specified|provided|given)|does not (say|mention|specify|state)|"
    r"doesn't (say|mention|specify|state)|no information|cannot be determined|i don't know)\b",
    re.I,
)
_WORD = re.compile(r"[a-z0-9]{4,}")
_COMMON = frozenset(
    "that this with have from your they will each were what when which their there about does".split()
)


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


def parse_reply(reply: str, passage: str) -> QAPair | str:
    """The pair in a model's reply, or the reason it cannot be used."""
    text = strip_fence_echo(reply)
    match = _REPLY.match(text)
    if not match:
        return "not in the 'Question: ... / Answer: ...' format"
    question = " ".join(match["question"].split())
    answer = " ".join(match["answer"].split())
    if _LABEL.search(match["answer"]):
        return "more than one question/answer pair"
    if not question.endswith("?"):
        return "the question does not end with '?'"
    if not 3 <= len(question.split()) <= MAX_QUESTION_WORDS:
        return f"the question has {len(question.split())} words (3 to {MAX_QUESTION_WORDS} allowed)"
    if _MENTIONS_PASSAGE.search(question):
        return "the question refers to the passage, which a user never sees"
    if len(answer.split()) > MAX_ANSWER_WORDS:
        return f"the answer has {len(answer.split())} words (at most {MAX_ANSWER_WORDS})"
    if _NO_ANSWER.search(answer):
        return "the answer says the passage does not tell"
    if normalised(answer) == normalised(question):
        return "the answer repeats the question"
    if normalised(question) in _EXAMPLE or normalised(answer) in _EXAMPLE:
        return "the reply copies the worked example"
    invented = ungrounded_numbers(answer, [passage])
    if invented:
        return f"the answer states {', '.join(sorted(invented))}, which the passage does not"
    words = [w for w in _WORD.findall(answer.lower()) if w not in _COMMON]
    in_passage = set(_WORD.findall(passage.lower()))
    if not words:
        return "the answer has no content words"
    if set(words) <= set(_WORD.findall(question.lower())):
        return "the answer only repeats words of the question"
    share = sum(w in in_passage for w in words) / len(words)
    if share < MIN_ANSWER_OVERLAP:
        return f"the answer is not drawn from the passage (only {share:.0%} of its words are in it)"
    return QAPair(question, answer)


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


_EXAMPLE = {normalised(line.partition(":")[2]) for line in EXAMPLE_REPLY.splitlines()}


def _messages(chunk: Chunk) -> list:
    body, _ = neutralize_instructions(chunk.text)
    title = " › ".join(dict.fromkeys((chunk.title, *chunk.heading_path)))  # headings often repeat the title
    return [
        SystemMessage(GENERATION_SYSTEM),
        HumanMessage(f"Passage:\n{EXAMPLE_PASSAGE}"),
        AIMessage(EXAMPLE_REPLY),
        HumanMessage(f"Passage:\n{title}\n\n{body}"),
    ]


def eligible(chunks: Sequence[Chunk]) -> list[Chunk]:
    return [chunk for chunk in chunks if len(chunk.text.split()) >= MIN_PASSAGE_WORDS]


def generate_pairs(
    chunks: Sequence[Chunk],
    model: ChatModel,
    wanted: int,
    seed: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[list[Candidate], list[Rejection]]:
    """Up to ``wanted`` pairs from a seeded sample of passages; every rejected reply with its reason.

    ``progress(tried, budget, accepted)`` is called after each passage.
    """
    passages = eligible(chunks)
    random.Random(seed).shuffle(passages)
    budget = min(len(passages), wanted * ATTEMPTS_PER_PAIR)
    accepted: list[Candidate] = []
    rejected: list[Rejection] = []
    for tried, chunk in enumerate(passages[:budget], start=1):
        with model_errors(model.name):
            reply = str(model.runnable.invoke(_messages(chunk)).content)
        parsed = parse_reply(reply, chunk.text)
        origin = f"generated:{chunk.id}"
        if isinstance(parsed, QAPair):
            accepted.append(Candidate(chat_row(parsed.question, parsed.answer), origin))
        else:
            rejected.append(Rejection(origin, f"generation rejected: {parsed}", {"reply": reply}))
        if progress:
            progress(tried, budget, len(accepted))
        if len(accepted) >= wanted:
            break
    return accepted, rejected
