"""Training rows from a SQuAD v2.0 article, with the questions `eval compare` will ask held out.

`eval compare --max-questions N` asks a fixed-seed sample of N questions; the same
N here keeps exactly those questions (and their paraphrases by exact normalised
text) out of every split, so a fine-tune compared on that file never saw the
questions it is scored on. The other answerable questions become rows whose
answer is the first gold span: the article's facts in SQuAD's short-answer
style. Generated pairs (``--generate``) are written from the article's
paragraphs, as from indexed documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.documents import Acl, Chunk, content_hash
from core.evaluation.compare import SAMPLE_SEED, sample_questions
from core.evaluation.squad import SOURCE, SquadDataset, load_squad
from core.finetune.dataset import Candidate, Rejection, chat_row, normalise_question, question_of
from core.finetune.smollm_base import file_sha256


@dataclass(frozen=True)
class SquadRows:
    dataset: SquadDataset
    candidates: list[Candidate]
    held_out_ids: list[str]
    provenance: dict[str, object]

    def chunks(self) -> list[Chunk]:
        """The article's paragraphs as passages for generation."""
        now = datetime.now(UTC)
        return [
            Chunk(
                id=f"{paragraph.id}#0",
                document_id=paragraph.id,
                source=SOURCE,
                title=paragraph.title,
                text=paragraph.context,
                heading_path=(),
                position=0,
                url="",
                path=paragraph.path,
                content_hash=content_hash(paragraph.context),
                version="",
                updated_at=now,
                acl=Acl.everyone(),
            )
            for paragraph in self.dataset.paragraphs.values()
        ]

    def drop_held_out(self, generated: list[Candidate]) -> tuple[list[Candidate], list[Rejection]]:
        """Generated rows that ask a held-out question word for word are rejected, not trained on."""
        held = {normalise_question(q.text) for q in self.dataset.questions if q.id in set(self.held_out_ids)}
        kept, rejected = [], []
        for candidate in generated:
            if normalise_question(question_of(candidate.row)) in held:
                rejected.append(
                    Rejection(candidate.origin, "asks a question held out for evaluation", candidate.row)
                )
            else:
                kept.append(candidate)
        return kept, rejected


def squad_rows(path: Path, hold_out: int) -> SquadRows:
    """Rows from the file's answerable questions, minus the ``hold_out`` that `eval compare` samples."""
    dataset = load_squad(path)
    held_out = [q.id for q in sample_questions(dataset.questions, hold_out)] if hold_out else []
    held = set(held_out)
    candidates = [
        Candidate(chat_row(q.text, q.answers[0]), f"squad:{q.id}")
        for q in dataset.questions
        if q.answerable and q.id not in held
    ]
    provenance: dict[str, object] = {
        "squad": {
            "file": path.name,
            "sha256": file_sha256(path),
            "paragraphs": len(dataset.paragraphs),
            "questions": len(dataset.questions),
            # The questions `eval compare --max-questions N` asks, kept out of every split.
            "held_out_for_eval": {"max_questions": hold_out, "sample_seed": SAMPLE_SEED, "ids": held_out},
        }
    }
    return SquadRows(dataset, candidates, held_out, provenance)
