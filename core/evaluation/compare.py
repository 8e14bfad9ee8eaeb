"""RAG vs fine-tuning, measured: the same SQuAD v2.0 questions through each answer mode.

The file's paragraphs go through the real sync pipeline into a throwaway index;
each sampled question is then asked once per mode through the same Assistant
code the bots use (no memory). ``base`` is the baseline the others are measured
against: the base model alone, with no retrieval. ``rag`` is retrieval with the model
writing the answer (the ``generate`` style); ``quote`` is retrieval with the answer
quoted from the passages (the ``quote`` style), on the same questions. ``base`` runs the fine-tuned mode's
closed-book path with the base model standing in, so the Assistant needs no
mode that only evaluation uses. Per mode: SQuAD exact match and token F1 on the
answerable questions, whether the answer contains a gold answer, abstention on the
answerable and on the unanswerable questions, whether a cited
source is the question's own paragraph, latency and token cost.
"""

from __future__ import annotations

import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import redis

from core.answering.answers import Answer, Mode, Question
from core.answering.assistant import Assistant
from core.errors import InputError, ModelError
from core.evaluation.embedding_cache import CachedEmbeddings
from core.evaluation.metrics import percentile
from core.evaluation.squad import (
    SOURCE,
    SquadConnector,
    SquadDataset,
    SquadQuestion,
    contains_answer,
    exact_match,
    load_squad,
    token_f1,
)
from core.evaluation.usage import TokenMeter, Usage, metered
from core.models.chat import ChatModel
from core.models.embeddings import embedder_identity
from core.sync.engine import Progress, ProgressCallback, SyncEngine

if TYPE_CHECKING:
    from core.app import App

# Fixed, so `--max-questions N` picks the same questions on every run and machine.
SAMPLE_SEED = 20180611  # SQuAD 2.0's arXiv date
EvalMode = Literal["base", "rag", "quote", "finetuned", "hybrid"]
EVAL_MODES: tuple[EvalMode, ...] = ("base", "rag", "quote", "finetuned", "hybrid")
_NEEDS_FINETUNED = ("finetuned", "hybrid")
_RETRIEVING: frozenset[str] = frozenset({"rag", "quote", "hybrid"})
_CITATION = re.compile(r"\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")


def parse_modes(spec: str) -> list[EvalMode]:
    modes: list[EvalMode] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part not in EVAL_MODES:
            msg = f"unknown mode {part!r} (use {', '.join(EVAL_MODES)})"
            raise InputError(msg)
        if part not in modes:
            modes.append(part)
    if not modes:
        msg = "no modes given; use for example --modes base,rag"
        raise InputError(msg)
    return modes


def sample_questions(questions: list[SquadQuestion], limit: int) -> list[SquadQuestion]:
    """``limit`` questions drawn with a fixed seed, kept in file order (all when 0)."""
    if not limit or limit >= len(questions):
        return list(questions)
    chosen = set(random.Random(SAMPLE_SEED).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in chosen]


@dataclass(frozen=True)
class QuestionResult:
    mode: EvalMode
    question_id: str
    question: str
    answerable: bool
    answer: str
    gold: tuple[str, ...]
    exact: float  # SQuAD v2 convention: an abstention predicts "", right only when unanswerable
    f1: float
    contains: float  # the answer contains a gold answer (normalised); 0 for an abstention
    abstained: bool
    cited: tuple[str, ...]  # paths of the sources the answer cited
    citation_correct: bool | None  # None where not judged (closed-book modes, unanswerable, abstained)
    latency_ms: float
    usage: Usage
    fallback: bool = False  # the fine-tuned model failed and the base model answered

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "id": self.question_id,
            "question": self.question,
            "answerable": self.answerable,
            "answer": self.answer,
            "gold": list(self.gold),
            "exact": self.exact,
            "f1": round(self.f1, 4),
            "contains": self.contains,
            "abstained": self.abstained,
            "cited": list(self.cited),
            "citation_correct": self.citation_correct,
            "latency_ms": round(self.latency_ms, 1),
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "fallback": self.fallback,
        }


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class ModeScores:
    mode: EvalMode
    model: str
    results: list[QuestionResult] = field(repr=False)

    @property
    def answerable(self) -> list[QuestionResult]:
        return [r for r in self.results if r.answerable]

    @property
    def unanswerable(self) -> list[QuestionResult]:
        return [r for r in self.results if not r.answerable]

    def as_dict(self) -> dict[str, object]:
        answerable, unanswerable = self.answerable, self.unanswerable
        judged = [r.citation_correct for r in answerable if r.citation_correct is not None]
        latencies = [r.latency_ms for r in self.results]
        return {
            "mode": self.mode,
            "model": self.model,
            "questions": len(self.results),
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            # SQuAD's HasAns scores: answerable questions only.
            "exact_match": _round(_mean([r.exact for r in answerable])),
            "f1": _round(_mean([r.f1 for r in answerable])),
            # What a reader needs: the answer holds a gold answer (normalised), answerable questions only.
            "contains_gold": _round(_mean([r.contains for r in answerable])),
            # Share of unanswerable questions the answer declined; share of answerable ones it wrongly did.
            "abstention": _round(_mean([float(r.abstained) for r in unanswerable])),
            "false_abstention": _round(_mean([float(r.abstained) for r in answerable])),
            # SQuAD v2's overall scores: every question, an abstention predicting "no answer".
            "overall_exact": _round(_mean([r.exact for r in self.results])),
            "overall_f1": _round(_mean([r.f1 for r in self.results])),
            # Of the answerable questions answered with retrieval: a cited source is the question's paragraph.
            "citation_correct": _round(_mean([float(c) for c in judged]))
            if self.mode in _RETRIEVING
            else None,
            "latency_ms_p50": round(percentile(latencies, 0.5), 1),
            "latency_ms_p95": round(percentile(latencies, 0.95), 1),
            "prompt_tokens_mean": _round(_mean([float(r.usage.prompt_tokens) for r in self.results]), 1),
            "completion_tokens_mean": _round(
                _mean([float(r.usage.completion_tokens) for r in self.results]), 1
            ),
            "tokens_total": sum(r.usage.total for r in self.results),
            "tokens_from": "endpoint" if any(r.usage.reported for r in self.results) else "tokenizer",
            "fallbacks": sum(r.fallback for r in self.results),
        }


@dataclass(frozen=True)
class Comparison:
    dataset: str
    scores: list[ModeScores]
    skipped: dict[str, str]  # mode -> why it was not run
    questions: int
    paragraphs: int
    # What the fine-tuned model was trained on, against these questions (core.finetune.provenance).
    training: dict[str, object] = field(default_factory=dict)

    @property
    def results(self) -> list[QuestionResult]:
        return [result for scores in self.scores for result in scores.results]

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "questions": self.questions,
            "paragraphs": self.paragraphs,
            "modes": {s.mode: s.as_dict() for s in self.scores},
            "skipped": self.skipped,
            "training": self.training,
        }


def score_answer(
    question: SquadQuestion, answer: Answer, paragraph_path: str, mode: EvalMode
) -> dict[str, Any]:
    """EM, F1 and citation correctness of one answer; citation markers are not part of the answer."""
    prediction = "" if answer.abstained else _CITATION.sub("", answer.text).strip()
    gold = question.answers or ("",)
    cited = tuple(s.path for s in answer.sources if s.cited)
    judged = question.answerable and not answer.abstained and mode in _RETRIEVING
    return {
        "exact": exact_match(prediction, gold),
        "f1": token_f1(prediction, gold),
        "contains": contains_answer(prediction, gold) if question.answerable and prediction else 0.0,
        "cited": cited,
        "citation_correct": (paragraph_path in cited) if judged else None,
    }


def _ask(
    assistant: Assistant, meter: TokenMeter, question: SquadQuestion, mode: Mode
) -> tuple[Answer, float]:
    meter.take()
    started = time.perf_counter()
    asked = Question(question.text, sources=frozenset({SOURCE}), mode=mode, mode_reason="evaluation")
    answer = assistant.ask(asked)
    return answer, (time.perf_counter() - started) * 1000


def run_mode(
    assistant: Assistant,
    model: str,
    meter: TokenMeter,
    dataset: SquadDataset,
    questions: list[SquadQuestion],
    mode: EvalMode,
    progress: ProgressCallback | None = None,
) -> ModeScores:
    # base: the closed-book path, base model; quote: rag with the answer quoted from the passages.
    asked_as: Mode = "finetuned" if mode == "base" else "rag" if mode == "quote" else mode
    results = []
    for done, question in enumerate(questions, start=1):
        answer, latency = _ask(assistant, meter, question, asked_as)
        scored = score_answer(question, answer, dataset.paragraphs[question.paragraph].path, mode)
        results.append(
            QuestionResult(
                mode=mode,
                question_id=question.id,
                question=question.text,
                answerable=question.answerable,
                answer=answer.text,
                gold=question.answers,
                abstained=answer.abstained,
                latency_ms=latency,
                usage=meter.take(),
                fallback=bool(answer.fallback),
                **scored,
            )
        )
        if progress:
            progress(Progress(f"{mode} answers", done, len(questions), "answering"))
    return ModeScores(mode, model, results)


def available_modes(
    app: App, modes: list[EvalMode]
) -> tuple[list[EvalMode], dict[str, str], ChatModel | None]:
    """The modes this setup can run, why the others are skipped, and the fine-tuned model the bots
    would use now (the promoted chat version, else [models.finetuned])."""
    finetuned: ChatModel | None = None
    why = "no fine-tuned model: promote one or add a [models.finetuned] entry to the config to compare it"
    if any(mode in _NEEDS_FINETUNED for mode in modes):
        try:
            finetuned = app.model_lineup.finetuned()
        except ModelError as exc:
            why = f"the fine-tuned model can't be used: {exc}"
    if finetuned is not None:
        return modes, {}, finetuned
    skipped: dict[str, str] = {mode: why for mode in modes if mode in _NEEDS_FINETUNED}
    runnable = [mode for mode in modes if mode not in skipped]
    if not runnable:
        msg = f"nothing to compare: {', '.join(modes)}: {why}"
        raise InputError(msg)
    return runnable, skipped, None


def compare_modes(
    app: App,
    path: Path,
    mode_spec: str,
    max_questions: int = 0,
    progress_view: Callable[[], Any] | None = None,
) -> Comparison:
    """Index the file's paragraphs into a throwaway store, then answer its questions in each mode."""
    modes, skipped, finetuned = available_modes(app, parse_modes(mode_spec))
    dataset = load_squad(path)
    questions = sample_questions(dataset.questions, max_questions)
    embedder = CachedEmbeddings(
        app.embedder,
        app.settings.data_dir / "cache" / "embeddings.sqlite",
        embedder_identity(app.settings.embeddings),
    )
    meter = TokenMeter()
    base = metered(app.model_lineup.base, meter)
    models = {"base": base, **({"finetuned": metered(finetuned, meter)} if finetuned else {})}
    workdir = Path(tempfile.mkdtemp(prefix="eval-", dir=app.settings.data_dir))
    try:
        store = app.build_store(workdir, SOURCE)

        def assistant(lineup: dict[str, ChatModel], style: str = "generate") -> Assistant:
            # Fixed models and no Redis: no promotion changes mid-run, no fallback counted in production.
            settings = app.settings.assistant.model_copy(update={"answer_style": style})
            return Assistant(
                store, embedder, lineup, None, app.settings.retrieval, settings, reranker=app.reranker
            )

        asked, baseline = assistant(models), assistant({"base": base, "finetuned": base})
        quoting = assistant(models, "quote")
        view = progress_view() if progress_view else nullcontext(None)
        with view as progress:
            engine = SyncEngine(
                store, embedder, app.chunking_options(), None, app.settings.embeddings.batch_size
            )
            engine.sync(SquadConnector(dataset), progress=progress)
            scores = [
                run_mode(
                    baseline if mode == "base" else quoting if mode == "quote" else asked,
                    models["finetuned" if mode in _NEEDS_FINETUNED else "base"].name,
                    meter,
                    dataset,
                    questions,
                    mode,
                    progress,
                )
                for mode in modes
            ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    training = _training_split(app, finetuned, questions)
    return Comparison(dataset.name, scores, skipped, len(questions), len(dataset.paragraphs), training)


def _training_split(
    app: App, finetuned: ChatModel | None, questions: list[SquadQuestion]
) -> dict[str, object]:
    """The registered fine-tune's training data against the evaluated questions; {} for a config model."""
    from core.finetune.provenance import training_split

    if finetuned is None or not finetuned.version:
        return {}
    try:
        version = app.model_registry.get(finetuned.version)
    except (InputError, redis.RedisError):
        return {}
    return training_split(version, [(q.id, q.text) for q in questions])
