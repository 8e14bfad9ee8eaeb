"""The assistant: a Question in, a stream of answer events out.

The answer chain, in order: load history → condense the follow-up into a
standalone query → retrieve with the asker's access filter → abstain below the
relevance floor → then, in ``quote`` style, the passages' best sentences, cited,
or a decline when they don't answer (core.answering.extractive); in ``generate``
style, numbered, fenced context trimmed to the model's window → stream the
answer a checked sentence at a time (a figure absent from the passages switches
the answer to quotes) → map ``[n]`` citations to sources. Last, save the turn.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser

from core.answering.answers import Answer, AnswerEvent, Done, Mode, Question, Source, Token
from core.answering.extractive import Quote, QuoteScorer, answerability, chosen_quotes
from core.answering.grounding import is_looping, ungrounded_numbers, without_repeats
from core.answering.history import ConversationHistory, Turn, passages_of
from core.answering.prompts import (
    ANSWER_PROMPT,
    CLOSED_BOOK_PROMPT,
    CONDENSE_PROMPT,
    NOT_COVERED,
    context_block,
)
from core.answering.router import Route, Router
from core.answering.safety import FenceEchoFilter, fence_marker, neutralize_instructions, strip_fence_echo
from core.errors import ConfigError, InputError, ModelError, ServiceUnavailable
from core.models.chat import ChatModel, LlamaCppChatModel, model_errors
from core.models.lineup import ModelLineup
from core.retrieval.reranker import CrossEncoderReranker
from core.retrieval.retriever import StoreRetriever
from core.retrieval.store.base import AccessFilter, SearchHit, VectorStore
from core.settings import AssistantSettings, RetrievalSettings, RouterSettings

log = logging.getLogger(__name__)

_CITATION = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_ABSTAIN_HINTS = ("don't cover", "do not cover", "doesn't cover", "does not cover", "not covered")
# Reserve for the template's own words and the chat format's special tokens.
_PROMPT_OVERHEAD_TOKENS = 64
SNIPPET_CHARS = 300


class _Clock:
    """Milliseconds spent in each step of one answer."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}
        self._mark = self.start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = (now - self._mark) * 1000
        self._mark = now

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": (time.perf_counter() - self.start) * 1000}


@dataclass(frozen=True)
class _Asking:
    """One question on its way through the chain."""

    question: Question
    text: str
    turns: list[Turn]
    standalone: str
    clock: _Clock


def _history_messages(turns: list[Turn]) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for turn in turns:
        messages += [HumanMessage(turn.question), AIMessage(turn.answer)]
    return messages


def _one_per_document(hits: list[SearchHit]) -> list[SearchHit]:
    """Merge passages of one document into one numbered block, so sources don't repeat."""
    merged: dict[tuple[str, str], SearchHit] = {}
    for hit in hits:
        key = (hit.chunk.source, hit.chunk.document_id)
        if key not in merged:
            merged[key] = hit
            continue
        first = merged[key]
        pair = sorted((first.chunk, hit.chunk), key=lambda chunk: chunk.position)
        text = "\n…\n".join(chunk.text for chunk in pair)
        merged[key] = replace(first, chunk=replace(first.chunk, text=text))
    return list(merged.values())


def cited_indexes(text: str, available: int) -> list[int]:
    found: list[int] = []
    for group in _CITATION.findall(text):
        for number in group.split(","):
            index = int(number)
            if 1 <= index <= available and index not in found:
                found.append(index)
    return found


def _drop_invalid_citations(text: str, available: int) -> str:
    def keep(match: re.Match[str]) -> str:
        valid = [n.strip() for n in match.group(1).split(",") if 1 <= int(n) <= available]
        return f"[{', '.join(valid)}]" if valid else ""

    return _CITATION.sub(keep, text)


def _cite(sentence: str, index: int) -> str:
    """``sentence`` with ``[index]`` before its closing punctuation, as a writer would cite."""
    body = sentence.rstrip()
    if body.endswith((".", "!", "?")):
        return f"{body[:-1].rstrip()} [{index}]{body[-1]}"
    return f"{body} [{index}]"


class _CheckedSentences:
    """Holds streamed text back until its sentence is complete, then lets it through if every figure
    in it is in the passages. After one fails, nothing more is shown (``failed``)."""

    def __init__(self, passages: list[str]) -> None:
        self._passages = passages
        self._pending = ""
        self.shown = ""
        self.failed = False

    def feed(self, piece: str, final: bool = False) -> str:
        self._pending += piece
        end = len(self._pending) if final else _last_sentence_end(self._pending)
        ready, self._pending = self._pending[:end], self._pending[end:]
        if not ready:
            return ""
        if self._passages and ungrounded_numbers(ready, self._passages):
            self.failed = True
            return ""
        self.shown += ready
        return ready


def _last_sentence_end(text: str) -> int:
    """Where the last complete sentence (". ", "!\n", a line break) ends in ``text``; 0 if none has."""
    ends = [m.end() for m in re.finditer(r"[.!?](?:\s*\[\d[\d,\s]*\])?\s+|\n", text)]
    return ends[-1] if ends else 0


class Assistant:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embeddings,
        models: dict[str, ChatModel],
        history: ConversationHistory | None,
        retrieval: RetrievalSettings,
        settings: AssistantSettings,
        lineup: ModelLineup | None = None,
        router: Router | None = None,
        reranker: CrossEncoderReranker | None = None,
    ) -> None:
        self._reranker = reranker
        self._store = store
        self._embedder = embedder
        self._models = models
        self._history = history
        self._retrieval = retrieval
        self._settings = settings
        self._lineup = lineup or ModelLineup(models)
        self._router = router or Router(RouterSettings(), settings.default_mode, embedder)
        self._quotes = QuoteScorer(embedder, reranker)

    # -- public surface ------------------------------------------------------

    def ask(self, question: Question) -> Answer:
        for event in self.stream(question):
            if isinstance(event, Done):
                return event.answer
        msg = "the answer stream ended without an answer"
        raise RuntimeError(msg)

    def stream(self, question: Question) -> Iterator[AnswerEvent]:
        text = self._validate(question.text)
        clock = _Clock()
        turns = (
            self._history.load(question.conversation, self._access(question))
            if self._history and question.conversation
            else []
        )
        clock.lap("history")
        # Condensing serves retrieval, which always goes with the base model.
        standalone = self._condense(text, turns, self._lineup.base) if turns else text
        clock.lap("condense")
        route = self._router.decide(question, standalone, self._lineup.has_finetuned())
        clock.lap("route")
        asking = _Asking(question, text, turns, standalone, clock)

        hits: list[SearchHit] | None = None
        if route.mode != "finetuned":
            hits = self._passages(asking)
            if not hits:
                route = self._router.after_empty_retrieval(route, self._lineup.has_finetuned())
        model: ChatModel | None = None
        try:
            model = self._model_for(route.mode)
            yield from self._respond(asking, route, route.mode, model, hits or [])
            return
        except (ModelError, ServiceUnavailable) as exc:  # raised before any token was shown
            if route.mode == "rag":
                raise
            failed = self._lineup.label(model)
            reason = f"fine-tuned model {failed} failed: {exc}"
            log.warning("%s; the base model answers instead", reason)
            self._lineup.record_fallback(failed, reason)
            clock.lap("failed_attempt")
        # The fallback: the base model answers from the documents, as in rag mode.
        hits = hits if hits is not None else self._passages(asking)
        yield from self._respond(asking, route, "rag", self._lineup.base, hits, fallback=reason)

    async def astream(self, question: Question) -> AsyncIterator[AnswerEvent]:
        """``stream`` for async frontends: the work runs in a thread, events arrive in order.

        Errors raised by the chain are re-raised here, in the caller's task.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AnswerEvent | BaseException | None] = asyncio.Queue()

        def produce() -> None:
            try:
                for event in self.stream(question):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, not swallowed
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, produce)
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        await worker

    async def aask(self, question: Question) -> Answer:
        async for event in self.astream(question):
            if isinstance(event, Done):
                return event.answer
        msg = "the answer stream ended without an answer"
        raise RuntimeError(msg)

    def forget(self, question: Question) -> None:
        if self._history and question.conversation:
            self._history.clear(question.conversation)

    def retrieve(self, query: str, access: AccessFilter) -> list[SearchHit]:
        """Passages above the relevance floor, best first."""
        retriever = StoreRetriever(
            store=self._store,
            embedder=self._embedder,
            access=access,
            limit=max(self._retrieval.rerank_candidates, self._retrieval.top_k)
            if self._reranker
            else self._retrieval.top_k,
            candidates=self._retrieval.candidates,
            alpha=self._retrieval.alpha,
        )
        hits: list[SearchHit] = [doc.metadata["hit"] for doc in retriever.invoke(query)]
        if self._reranker:
            hits = self._reranker.rerank(query, hits, self._retrieval.top_k)
        floor = self._retrieval.min_similarity
        if not hits or max(hit.similarity for hit in hits) < floor:
            return []
        # Keep keyword matches that fused well even if their cosine is a little lower.
        return [hit for hit in hits if hit.similarity >= floor - 0.1]

    # -- steps ---------------------------------------------------------------

    def _passages(self, asking: _Asking) -> list[SearchHit]:
        hits = self.retrieve(asking.standalone, self._access(asking.question))
        asking.clock.lap("retrieve")
        return hits

    def _respond(
        self,
        asking: _Asking,
        route: Route,
        mode: Mode,
        model: ChatModel,
        hits: list[SearchHit],
        fallback: str | None = None,
    ) -> Iterator[AnswerEvent]:
        """Stream one answer from ``model``; end with Done.

        A model failure before the first token propagates (the caller may fall back);
        after it, the answer ends cleanly with what was said and a note that it was cut off.
        """
        clock = asking.clock
        if mode != "finetuned" and not hits:
            answer = Answer(NOT_COVERED, [], mode, model.name, True, asking.standalone, clock.total())
            answer = replace(answer, route=route.mode, route_reason=route.reason, fallback=fallback)
            yield Token(answer.text)
            self._remember(asking.question, asking.text, answer, [])
            yield Done(answer)
            return
        if mode == "rag" and self.answer_style(model) == "quote":
            answer = self._quote(asking.standalone, hits, mode, model, clock)
            answer = replace(answer, route=route.mode, route_reason=route.reason, fallback=fallback)
            yield Token(answer.text)
            self._remember(asking.question, asking.text, answer, hits if answer.sources else [])
            yield Done(answer)
            return
        messages, used = self._prompt(mode, model, asking.text, asking.turns, hits)
        clock.lap("prompt")
        pieces: list[str] = []
        echo = FenceEchoFilter()
        # Words are shown a sentence at a time, each checked first: a figure the passages don't hold
        # is never shown; the answer becomes the passages' own sentences instead.
        checked = _CheckedSentences([hit.chunk.text for hit in used])
        try:
            with model_errors(model.name):
                for chunk in model.runnable.stream(messages):
                    piece = echo.feed(str(chunk.content))
                    if piece:
                        if not pieces:
                            clock.lap("first_token")
                        pieces.append(piece)
                        shown = checked.feed(piece)
                        if checked.failed:
                            break
                        if shown:
                            yield Token(shown)
                        if piece.endswith((".", "\n")) and is_looping("".join(pieces)):
                            log.info("model %s repeats itself; stopping generation", model.name)
                            break
        except (ModelError, ServiceUnavailable) as exc:
            if not pieces:
                raise
            # Words already on the user's screen can't be taken back: end cleanly instead of falling back.
            log.warning("model %s failed mid-answer: %s", model.name, exc)
            note = f"\n\n(The answer was cut off: the model {model.name} stopped responding. Ask again.)"
            yield Token(note)
            clock.lap("generate")
            said = checked.shown
            sources = self._sources(used, cited_indexes(said, len(used))) if used else []
            answer = Answer(said + note, sources, mode, model.name, False, asking.standalone, clock.total())
            answer = replace(answer, route=route.mode, route_reason=route.reason, error=str(exc))
            yield Done(answer)  # not remembered: a broken turn would mislead follow-ups
            return
        if not checked.failed:
            if tail := echo.flush():
                pieces.append(tail)
            if shown := checked.feed(tail, final=True):
                yield Token(shown)
        clock.lap("generate")
        if checked.failed:
            log.info("the model stated figures absent from its sources; answering with quotes instead")
            answer = self._quote(asking.standalone, used, mode, model, clock, always=True)
        else:
            answer = self._finish(
                without_repeats("".join(pieces)), used, mode, model, asking.standalone, clock
            )
        answer = replace(answer, route=route.mode, route_reason=route.reason, fallback=fallback)
        self._remember(asking.question, asking.text, answer, used)
        yield Done(answer)

    def _validate(self, text: str) -> str:
        text = text.strip()
        if not text:
            msg = "The question is empty; ask something about your documents."
            raise InputError(msg)
        limit = self._settings.max_question_chars
        if len(text) > limit:
            msg = f"The question is {len(text):,} characters long; the limit is {limit:,}. Please shorten it."
            raise InputError(msg)
        return text

    def _model_for(self, mode: Mode) -> ChatModel:
        if mode == "rag":
            return self._lineup.base
        model = self._lineup.finetuned()
        if model is None:
            msg = (
                f"mode {mode!r} needs a fine-tuned model: promote one with `archivist models promote NAME` "
                "or add a [models.finetuned] entry to the config"
            )
            raise ConfigError(msg)
        return model

    @staticmethod
    def _access(question: Question) -> AccessFilter:
        return AccessFilter(principals=question.principals, sources=question.sources)

    def _condense(self, text: str, turns: list[Turn], model: ChatModel) -> str:
        """A standalone query for retrieval from a follow-up and the conversation."""
        fallback = f"{turns[-1].question} {text}"
        if self._settings.condense == "history":
            return fallback
        chain = CONDENSE_PROMPT | model.runnable | StrOutputParser()
        with model_errors(model.name):
            rewritten = chain.invoke({"history": _history_messages(turns[-3:]), "question": text}).strip()
        # A rewrite that is empty or rambles is worse than the plain concatenation.
        return rewritten if 0 < len(rewritten) <= 3 * len(fallback) else fallback

    def _prompt(
        self, mode: Mode, model: ChatModel, text: str, turns: list[Turn], hits: list[SearchHit]
    ) -> tuple[list[BaseMessage], list[SearchHit]]:
        history = self._fit_history(model, turns)
        if mode == "finetuned":
            return CLOSED_BOOK_PROMPT.format_messages(history=history, question=text), []
        marker = fence_marker()
        used = sum(model.count_tokens(str(m.content)) for m in history)
        budget = (
            model.context_window
            - model.max_tokens
            - model.count_tokens(ANSWER_PROMPT.messages[0].prompt.template)  # type: ignore[union-attr]
            - model.count_tokens(text)
            - used
            - _PROMPT_OVERHEAD_TOKENS
        )
        blocks: list[str] = []
        kept: list[SearchHit] = []
        for hit in _one_per_document(hits):
            body, removed = neutralize_instructions(hit.chunk.text)
            if removed:
                log.info("neutralised %d instruction(s) in %s", removed, hit.chunk.id)
            block = context_block(len(kept) + 1, hit.chunk.title, hit.chunk.location, body, marker)
            cost = model.count_tokens(block)
            if cost > budget:
                if budget < 48 or kept:
                    break
                # The best passage alone is too long: keep its head rather than nothing.
                block = block[: budget * 3]
                cost = budget
            blocks.append(block)
            kept.append(hit)
            budget -= cost
        messages = ANSWER_PROMPT.format_messages(
            history=history,
            question=text,
            context="\n\n".join(blocks),
            marker=marker,
            not_covered=NOT_COVERED,
        )
        return messages, kept

    @staticmethod
    def _fit_history(model: ChatModel, turns: list[Turn]) -> list[BaseMessage]:
        """Replay the newest turns that fit in a quarter of the model's window."""
        budget = model.context_window // 4
        kept: list[Turn] = []
        for turn in reversed(turns):
            budget -= model.count_tokens(turn.question) + model.count_tokens(turn.answer)
            if budget < 0:
                break
            kept.insert(0, turn)
        return _history_messages(kept)

    def _finish(
        self, text: str, used: list[SearchHit], mode: Mode, model: ChatModel, standalone: str, clock: _Clock
    ) -> Answer:
        text = strip_fence_echo(text)
        text = _drop_invalid_citations(text, len(used)) if used else text
        cited = cited_indexes(text, len(used))
        abstained = not cited and (not text or any(hint in text.lower() for hint in _ABSTAIN_HINTS))
        if abstained and used:
            text = NOT_COVERED
        sources = [] if abstained else self._sources(used, cited)
        answer = Answer(text or NOT_COVERED, sources, mode, model.name, abstained, standalone, clock.total())
        return replace(answer, style="generate")

    def answer_style(self, model: ChatModel) -> str:
        """``quote`` or ``generate`` for answers from ``model``; ``auto`` quotes with a local model."""
        style = self._settings.answer_style
        if style != "auto":
            return style
        return "quote" if isinstance(model.runnable, LlamaCppChatModel) else "generate"

    def quotes(self, question: str, hits: list[SearchHit]) -> list[Quote]:
        """The sentences of ``hits`` that answer ``question``, best first; none if they don't answer it."""
        ranked = self._quotes.rank(question, hits)
        if answerability(ranked, hits, question) < self._settings.quote_threshold:
            return []
        return chosen_quotes(ranked, question)

    def _quote(
        self,
        standalone: str,
        hits: list[SearchHit],
        mode: Mode,
        model: ChatModel,
        clock: _Clock,
        always: bool = False,
    ) -> Answer:
        """The quote-style answer: the best sentences of the passages, each cited; or a decline.

        ``always`` (the model's figures failed the check) quotes the best sentences even when unsure.
        """
        ranked = self._quotes.rank(standalone, hits)
        sure = always or answerability(ranked, hits, standalone) >= self._settings.quote_threshold
        chosen = chosen_quotes(ranked, standalone) if sure else []
        clock.lap("quote")
        if not chosen:
            answer = Answer(NOT_COVERED, [], mode, model.name, True, standalone, clock.total())
            return replace(answer, style="quote")
        documents = _one_per_document(hits)
        keys = [(hit.chunk.source, hit.chunk.document_id) for hit in documents]
        parts, cited = [], []
        for quote in chosen:
            chunk = hits[quote.passage].chunk
            index = keys.index((chunk.source, chunk.document_id)) + 1
            parts.append(_cite(quote.sentence, index))
            if index not in cited:
                cited.append(index)
        sources = self._sources(documents, cited)
        answer = Answer(" ".join(parts), sources, mode, model.name, False, standalone, clock.total())
        return replace(answer, style="quote")

    @staticmethod
    def _sources(used: list[SearchHit], cited: list[int]) -> list[Source]:
        """Cited passages; if the model cited none, every passage it was given."""
        chosen = cited or list(range(1, len(used) + 1))
        sources = []
        for index in chosen:
            hit = used[index - 1]
            snippet = (
                hit.chunk.text
                if len(hit.chunk.text) <= SNIPPET_CHARS
                else hit.chunk.text[:SNIPPET_CHARS] + "…"
            )
            sources.append(
                Source(
                    index=index,
                    title=hit.chunk.title,
                    source=hit.chunk.source,
                    url=hit.chunk.url,
                    path=hit.chunk.path,
                    score=hit.similarity,
                    snippet=snippet,
                    cited=bool(cited),
                )
            )
        return sources

    def _remember(self, question: Question, text: str, answer: Answer, used: list[SearchHit]) -> None:
        """Save the turn with every passage the model was shown, not only the cited ones: the
        answer may draw on any of them, so only askers who may read them all get it replayed."""
        if self._history and question.conversation:
            passages = passages_of([(h.chunk.source, h.chunk.document_id, h.chunk.acl) for h in used])
            self._history.append(question.conversation, Turn(text, answer.text, passages))
