"""Gathering a dataset's rows from the App: answers rated 👍, and pairs generated from the index.

A fine-tuned model answers anyone who may use it, with no access filter: what it
learns, it may repeat to anyone. So by default only public documents feed it:
generated pairs come from public chunks, and a rated answer is used only when
every source it cited is public. ``principals`` widens that to what those
principals may read, for a model that will serve only them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.answering.feedback import Feedback
from core.app import App
from core.errors import InputError
from core.finetune.dataset import (
    DEFAULT_EVAL_PERCENT,
    DEFAULT_MAX_TOKENS,
    DEFAULT_VALIDATION_PERCENT,
    Candidate,
    DatasetReport,
    Rejection,
    chat_row,
    without_citations,
    write_dataset,
)
from core.finetune.generate import MIN_PASSAGE_WORDS, eligible, generate_pairs
from core.finetune.tokens import token_counter
from core.retrieval.store.base import AccessFilter

_PRIVATE_HINT = "a fine-tuned model answers anyone; add --principal to train for a group that may read it"


@dataclass(frozen=True)
class DatasetOptions:
    out: Path
    generate: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int = 0
    validation_percent: int = DEFAULT_VALIDATION_PERCENT
    eval_percent: int = DEFAULT_EVAL_PERCENT
    principals: frozenset[str] = frozenset()
    squad: Path | None = None  # a SQuAD v2.0 file: its questions and paragraphs instead of the index
    hold_out: int = 0  # with squad: the `eval compare --max-questions` sample, kept out of every split


def feedback_rows(
    votes: list[Feedback], readable_sources: set[str]
) -> tuple[list[Candidate], list[Rejection]]:
    """One row per answer rated 👍 and never 👎, oldest first."""
    by_answer: dict[str, list[Feedback]] = {}
    for vote in votes:
        by_answer.setdefault(vote.answer_id, []).append(vote)
    accepted: list[Candidate] = []
    rejected: list[Rejection] = []
    for answer_id, answer_votes in by_answer.items():
        record = answer_votes[0].record
        origin = f"feedback:{answer_id}"
        row = chat_row(record.question.strip(), without_citations(record.answer))
        downs = sum(v.vote < 0 for v in answer_votes)
        private = sorted({str(s.get("source", "")) for s in record.sources} - readable_sources)
        if downs:
            rejected.append(Rejection(origin, f"rated 👎 by {downs} of {len(answer_votes)} voter(s)", row))
        elif private:
            reason = f"cites source(s) {', '.join(private)} that not everyone may read ({_PRIVATE_HINT})"
            rejected.append(Rejection(origin, reason, row))
        else:
            accepted.append(Candidate(row, origin))
    return accepted, rejected


def build_dataset(
    app: App,
    options: DatasetOptions,
    generation_progress: Callable[[int, int, int], None] | None = None,
) -> DatasetReport:
    readable = {
        name
        for name, source in app.settings.connectors.items()
        if source.public or set(source.principals) & options.principals
    }
    provenance: dict[str, object] = {"seed": options.seed, "principals": sorted(options.principals)}
    article = None
    if options.squad is not None:
        from core.finetune.squad_rows import squad_rows

        article = squad_rows(options.squad, options.hold_out)
        candidates, rejected = list(article.candidates), list[Rejection]()
        provenance.update(article.provenance)
    else:
        candidates, rejected = feedback_rows(list(app.feedback.all()), readable)
    if options.generate > 0:
        model = app.models["base"]
        passages = (
            article.chunks() if article else app.store.chunks(AccessFilter(principals=options.principals))
        )
        chunks = eligible(passages)
        if not chunks:
            msg = (
                f"--generate needs indexed passages of at least {MIN_PASSAGE_WORDS} words that "
                f"{'these principals' if options.principals else 'everyone'} may read; none are indexed "
                "(run `archivist sync` first)"
            )
            raise InputError(msg)
        generated, failed = generate_pairs(chunks, model, options.generate, options.seed, generation_progress)
        if article:
            generated, leaked = article.drop_held_out(generated)
            failed += leaked
        candidates += generated
        rejected += failed
        provenance["generated_with"] = model.name
    return write_dataset(
        candidates,
        options.out,
        token_counter(),
        max_tokens=options.max_tokens,
        validation_percent=options.validation_percent,
        eval_percent=options.eval_percent,
        rejected_before=rejected,
        provenance=provenance,
    )
