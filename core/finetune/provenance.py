"""What a fine-tuned model was trained on, set beside the questions it is evaluated on.

`eval compare` states this in its report so nobody mistakes training for testing:
the version's training data hash and rows, the dataset's split, and a direct check:
how many of the evaluated questions appear (by normalised text) in the rows the
model was trained or validated on. That count is read from the dataset's files,
not taken on trust from its manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.finetune.dataset import normalise_question, question_of, read_rows
from core.models.registry import ModelVersion


def _seen_questions(directory: Path) -> set[str] | None:
    """Normalised questions of train.jsonl and validation.jsonl; None when the files are gone."""
    seen: set[str] = set()
    for name in ("train.jsonl", "validation.jsonl"):
        path = directory / name
        if not path.is_file():
            return None
        try:
            seen |= {normalise_question(question_of(row)) for row in read_rows(path) if isinstance(row, dict)}
        except (OSError, InputError):
            return None
    return seen


def training_split(version: ModelVersion | None, evaluated: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The fine-tune's provenance against the evaluated ``(question id, text)`` pairs; {} without one."""
    if version is None:
        return {}
    training = version.training
    asked = list(evaluated)
    split: dict[str, Any] = {
        "model": version.name,
        "base_model": version.base_model,
        "training_data_hash": version.training_data_hash,
        "train_rows": training.get("train_rows"),
        "validation_rows": training.get("validation_rows"),
        "steps": training.get("steps"),
        "validation_loss_before": training.get("validation_loss_before"),
        "validation_loss_after": training.get("validation_loss_after"),
        "dataset": training.get("dataset", ""),
        "split": training.get("split", {}),
        "evaluated_questions": len(asked),
    }
    held = set((training.get("held_out_for_eval") or {}).get("ids") or [])
    if held:
        split["evaluated_held_out_by_dataset"] = sum(qid in held for qid, _ in asked)
    seen = _seen_questions(Path(split["dataset"])) if split["dataset"] else None
    split["evaluated_in_training"] = (
        None if seen is None else sum(normalise_question(text) in seen for _, text in asked)
    )
    return split
