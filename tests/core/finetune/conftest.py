"""Fixtures for fine-tuning tests: rows drawn from the sample handbook, a tiny local model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.finetune.dataset import Candidate, chat_row, write_dataset
from core.finetune.tokens import TokenCounter, approximate_tokens
from tests.conftest import SAMPLES
from tests.core.finetune.tiny_model import build_tiny_chat_model

APPROXIMATE = TokenCounter("approximate", approximate_tokens, False)


def handbook_pairs() -> list[tuple[str, str]]:
    """(question, answer) per section of the handbook's Markdown pages: the section's first sentence."""
    pairs = []
    for page in sorted(SAMPLES.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ").strip()
        for heading, body in re.findall(r"^## (.+)\n+((?:(?!#).+\n?)+)", text, re.M):
            first = re.split(r"(?<=\.)\s", " ".join(body.replace("*", "").split()))[0]
            if len(first.split()) >= 5 and not first.startswith(("|", "-")):
                pairs.append((f"What does the {title} say about {heading.strip().lower()}?", first))
    return pairs


def handbook_candidates() -> list[Candidate]:
    return [Candidate(chat_row(q, a), f"generated:{i}") for i, (q, a) in enumerate(handbook_pairs())]


@pytest.fixture(scope="session")
def handbook_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dataset")
    write_dataset(handbook_candidates(), directory, APPROXIMATE)
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{q} {a}" for q, a in handbook_pairs()]
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"), texts)
