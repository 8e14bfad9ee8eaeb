"""Chat fine-tuning datasets in OpenAI's JSONL format: validated, deduplicated, split.

Each row is ``{"messages": [{"role": "system", ...}, {"role": "user", ...},
{"role": "assistant", ...}]}``. A row that breaks a rule (unknown role, wrong
order, empty content, too many tokens, a question already present) is kept out
and written to ``rejects.jsonl`` with its reason.

The split is a function of the question alone (a hash of its normalised text),
never of the run: a question that was held out for evaluation stays held out
when the dataset is rebuilt with more rows, so no evaluation question ever leaks
into training.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.answering.prompts import CLOSED_BOOK_PROMPT
from core.errors import InputError
from core.finetune.tokens import TokenCounter

# The fine-tuned model answers in "finetuned" mode under this very system prompt,
# so it is trained under it too.
SYSTEM_PROMPT: str = CLOSED_BOOK_PROMPT.messages[0].prompt.template  # type: ignore[union-attr]
ROLES = ("system", "user", "assistant")
# What OpenAI's chat fine-tuning format allows in a message besides role and content.
_OPTIONAL_MESSAGE_KEYS = frozenset({"name", "weight"})
SPLITS = ("train", "validation", "eval")
DEFAULT_MAX_TOKENS = 2048  # the bundled model's window; OpenAI allows far more per example
DEFAULT_VALIDATION_PERCENT = 10
DEFAULT_EVAL_PERCENT = 10
OPENAI_MIN_TRAINING_EXAMPLES = 10  # OpenAI refuses smaller training files
MANIFEST = "manifest.json"
REJECTS = "rejects.jsonl"
_CITATION = re.compile(r"\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")
_NOT_WORD = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class Candidate:
    """A row proposed for the dataset, and where it came from (``feedback:ID``, ``generated:CHUNK``)."""

    row: dict[str, Any]
    origin: str


@dataclass(frozen=True)
class Rejection:
    origin: str
    reason: str
    row: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "reason": self.reason, "row": self.row}


@dataclass
class DatasetReport:
    directory: Path
    counts: dict[str, int]
    rejected: list[Rejection]
    training_data_hash: str
    tokenizer: str
    origins: dict[str, int] = field(default_factory=dict)  # accepted rows by kind: feedback, generated
    warnings: list[str] = field(default_factory=list)


def chat_row(question: str, answer: str, system: str = SYSTEM_PROMPT) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def without_citations(text: str) -> str:
    """Answers cite numbered documents ("[1]"); a closed-book model has none to cite."""
    return " ".join(_CITATION.sub("", text).split())


def normalise_question(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def question_of(row: dict[str, Any]) -> str:
    """The last user message: what the row teaches the model to answer."""
    users = [
        m.get("content", "")
        for m in row.get("messages", [])
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    return str(users[-1]) if users else ""


def split_of(question: str, validation_percent: int, eval_percent: int) -> str:
    """train, validation or eval, from the question's text alone: stable across runs."""
    bucket = int(hashlib.sha256(normalise_question(question).encode()).hexdigest()[:8], 16) % 100
    if bucket < eval_percent:
        return "eval"
    if bucket < eval_percent + validation_percent:
        return "validation"
    return "train"


def validate_row(row: Any, counter: TokenCounter, max_tokens: int) -> str | None:
    """Why this row cannot be trained on, or None when it can."""
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
        return "not an object with a non-empty 'messages' list"
    extra = set(row) - {"messages"}
    if extra:
        return f"unknown key(s) {sorted(extra)} beside 'messages'"
    messages: list[Any] = row["messages"]
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            return f"message {number} is not an object"
        role = message.get("role")
        if role not in ROLES:
            return f"message {number} has role {role!r}; roles are system, user and assistant"
        unknown = set(message) - {"role", "content"} - _OPTIONAL_MESSAGE_KEYS
        if unknown:
            return f"message {number} has unknown key(s) {sorted(unknown)}"
        content = message.get("content")
        if not isinstance(content, str):
            return f"message {number} ({role}) has no text content"
        if not content.strip():
            return f"message {number} ({role}) is empty"
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        return "a system message may only come first"
    turns = roles[1:] if roles[0] == "system" else roles
    if not turns or any(role != ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(turns)):
        return "after the system message, messages must alternate user, assistant, ..., starting with user"
    if turns[-1] != "assistant":
        return "the last message must be the assistant's answer"
    tokens = counter.count_messages(messages)
    if tokens > max_tokens:
        return f"{tokens} tokens, over the limit of {max_tokens}"
    return None


def select_rows(
    candidates: Iterable[Candidate], counter: TokenCounter, max_tokens: int
) -> tuple[list[Candidate], list[Rejection]]:
    """Valid rows, first of each question kept; everything else with its reason."""
    kept: list[Candidate] = []
    rejected: list[Rejection] = []
    first_origin: dict[str, str] = {}
    for candidate in candidates:
        reason = validate_row(candidate.row, counter, max_tokens)
        if reason is None:
            key = normalise_question(question_of(candidate.row))
            if key in first_origin:
                reason = f"duplicate question (already in the dataset from {first_origin[key]})"
            else:
                first_origin[key] = candidate.origin
        if reason is None:
            kept.append(candidate)
        else:
            rejected.append(Rejection(candidate.origin, reason, candidate.row))
    return kept, rejected


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode("utf-8")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _summary(rejected: Sequence[Rejection]) -> str:
    reasons = Counter(re.sub(r"\(.*\)|\d+", "N", r.reason).strip() for r in rejected)
    return "; ".join(f"{count}× {reason}" for reason, count in reasons.most_common(4))


def write_dataset(
    candidates: Iterable[Candidate],
    directory: Path,
    counter: TokenCounter,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    validation_percent: int = DEFAULT_VALIDATION_PERCENT,
    eval_percent: int = DEFAULT_EVAL_PERCENT,
    rejected_before: Sequence[Rejection] = (),
    provenance: dict[str, Any] | None = None,
) -> DatasetReport:
    """Validate, deduplicate and split the candidates; write the splits, rejects and manifest."""
    if not 0 <= validation_percent + eval_percent < 100 or min(validation_percent, eval_percent) < 0:
        msg = "validation and eval percentages must be ≥ 0 and leave some rows for training"
        raise InputError(msg)
    kept, rejected = select_rows(candidates, counter, max_tokens)
    rejected = [*rejected_before, *rejected]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REJECTS).write_bytes(_jsonl([r.as_dict() for r in rejected]))
    if not kept:
        if not rejected:
            msg = (
                "nothing to build a dataset from: no answer has been rated 👍 yet, and no generated "
                "questions were asked for (use --generate N to write question/answer pairs from the "
                "indexed documents; run `archivist sync` first)"
            )
        else:
            msg = f"all {len(rejected)} rows were rejected ({_summary(rejected)}); see {directory / REJECTS}"
        raise InputError(msg)
    splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for candidate in kept:
        splits[split_of(question_of(candidate.row), validation_percent, eval_percent)].append(candidate.row)
    files = {}
    for name, rows in splits.items():
        path = directory / f"{name}.jsonl"
        path.write_bytes(_jsonl(rows))
        files[path.name] = {"rows": len(rows), "sha256": sha256_file(path)}
    counts = {name: len(rows) for name, rows in splits.items()}
    origins = Counter(c.origin.partition(":")[0] for c in kept)
    warnings = []
    if counts["train"] < OPENAI_MIN_TRAINING_EXAMPLES:
        warnings.append(
            f"train.jsonl has {counts['train']} rows; OpenAI needs at least "
            f"{OPENAI_MIN_TRAINING_EXAMPLES} (rate more answers 👍 or generate more)"
        )
    if not counter.exact:
        warnings.append(f"token counts are {counter.name}: tiktoken's encoding is not available offline")
    report = DatasetReport(
        directory,
        counts,
        rejected,
        str(files["train.jsonl"]["sha256"]),
        counter.name,
        dict(origins),
        warnings,
    )
    manifest = {
        "format": "openai-chat-jsonl",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training_data_hash": report.training_data_hash,
        "counts": {**counts, "rejected": len(rejected)},
        "origins": report.origins,
        "files": files,
        "tokenizer": counter.name,
        "max_tokens": max_tokens,
        "split": {
            "by": "sha256 of the normalised question",
            "validation_percent": validation_percent,
            "eval_percent": eval_percent,
        },
        "system_prompt": SYSTEM_PROMPT,
        **(provenance or {}),
    }
    (directory / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


@dataclass(frozen=True)
class Dataset:
    """A built dataset directory, checked before anything trains on it."""

    directory: Path
    manifest: dict[str, Any]
    training_data_hash: str  # of the train.jsonl on disk now
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]

    @property
    def hash_matches_manifest(self) -> bool:
        return self.training_data_hash == self.manifest.get("training_data_hash")


def read_rows(path: Path) -> list[Any]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            msg = f"{path.name} line {number}: not valid JSON ({exc.msg})"
            raise InputError(msg) from exc
    return rows


def load_dataset(directory: Path, counter: TokenCounter) -> Dataset:
    """Read a dataset directory and re-validate every row (files may have been edited by hand)."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        msg = f"no {MANIFEST} in {directory}: build one with `archivist finetune dataset --out {directory}`"
        raise InputError(msg)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        msg = f"{manifest_path}: not valid JSON ({exc.msg}); rebuild the dataset"
        raise InputError(msg) from exc
    max_tokens = int(manifest.get("max_tokens", DEFAULT_MAX_TOKENS))
    loaded: dict[str, list[Any]] = {}
    for name in ("train", "validation"):
        path = directory / f"{name}.jsonl"
        rows = read_rows(path) if path.is_file() else []
        problems = [(i, validate_row(row, counter, max_tokens)) for i, row in enumerate(rows, start=1)]
        problems = [(i, reason) for i, reason in problems if reason]
        if problems:
            shown = "; ".join(f"line {i}: {reason}" for i, reason in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            msg = f"{path} has rows that cannot be trained on: {shown}{more}"
            raise InputError(msg)
        loaded[name] = rows
    if not loaded["train"]:
        msg = f"{directory / 'train.jsonl'} has no rows: rate more answers 👍 or build with --generate N"
        raise InputError(msg)
    return Dataset(
        directory, manifest, sha256_file(directory / "train.jsonl"), loaded["train"], loaded["validation"]
    )
