"""Training rows from the shared SQuAD article keep the questions `eval compare` asks out of every
split, and the comparison report can prove it from the dataset's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.evaluation.compare import Comparison, sample_questions
from core.evaluation.report import training_lines
from core.finetune.dataset import normalise_question, question_of, read_rows, write_dataset
from core.finetune.provenance import training_split
from core.finetune.squad_rows import squad_rows
from core.models.registry import ModelVersion
from tests.core.finetune.conftest import APPROXIMATE

SQUAD = Path(__file__).resolve().parents[3].parent / "shared/data/squad-v2/computational-complexity.json"
pytestmark = pytest.mark.skipif(not SQUAD.is_file(), reason="the shared SQuAD v2 article is not checked out")


def _version(directory: Path, hold_out: list[str]) -> ModelVersion:
    training = {
        "dataset": str(directory),
        "train_rows": 129,
        "validation_rows": 18,
        "steps": 33,
        "validation_loss_before": 4.69,
        "validation_loss_after": 2.1,
        "split": {"by": "sha256 of the normalised question", "validation_percent": 10, "eval_percent": 10},
        "held_out_for_eval": {"ids": hold_out},
    }
    return ModelVersion(
        "lora", "chat", "llamacpp", "/x.gguf", training_data_hash="ab" * 32, training=training
    )


def test_evaluated_questions_are_in_no_split(tmp_path: Path) -> None:
    rows = squad_rows(SQUAD, 40)
    evaluated = sample_questions(rows.dataset.questions, 40)
    assert rows.held_out_ids == [q.id for q in evaluated]
    write_dataset(rows.candidates, tmp_path, APPROXIMATE, provenance=rows.provenance)
    written = {
        normalise_question(question_of(row))
        for split in ("train", "validation", "eval")
        for row in read_rows(tmp_path / f"{split}.jsonl")
    }
    assert len(written) > 150
    assert not written & {normalise_question(q.text) for q in evaluated}

    split = training_split(_version(tmp_path, rows.held_out_ids), [(q.id, q.text) for q in evaluated])
    assert split["evaluated_in_training"] == 0 and split["evaluated_held_out_by_dataset"] == 40
    comparison = Comparison("computational-complexity", [], {}, 40, 48, split)
    text = "\n".join(training_lines(comparison))
    assert "trained on 129 rows, validated on 18" in text and "ab" * 32 in text
    assert "0 of the 40 evaluated questions appear in its training or validation rows" in text
    assert "4.6900 before training, 2.1000 after" in text


def test_a_dataset_that_did_not_hold_out_is_caught(tmp_path: Path) -> None:
    rows = squad_rows(SQUAD, 0)  # nothing held out: the evaluated questions are trained on
    evaluated = sample_questions(rows.dataset.questions, 40)
    write_dataset(rows.candidates, tmp_path, APPROXIMATE, provenance=rows.provenance)
    split = training_split(_version(tmp_path, []), [(q.id, q.text) for q in evaluated])
    assert split["evaluated_in_training"] > 5
    gone = training_split(_version(tmp_path / "deleted", []), [(q.id, q.text) for q in evaluated])
    assert gone["evaluated_in_training"] is None
    text = "\n".join(training_lines(Comparison("c", [], {}, 40, 48, gone)))
    assert "could not be checked" in text
