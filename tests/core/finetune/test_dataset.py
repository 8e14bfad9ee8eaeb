"""Dataset rules: what is rejected and why, deduplication, a split that never moves, the manifest."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from core.errors import InputError
from core.finetune.dataset import (
    SYSTEM_PROMPT,
    Candidate,
    chat_row,
    load_dataset,
    split_of,
    validate_row,
    without_citations,
    write_dataset,
)
from core.finetune.tokens import approximate_tokens, token_counter
from tests.core.finetune.conftest import APPROXIMATE, handbook_candidates


def _row(*messages: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in messages]}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (_row(("user", "Hi?"), ("bot", "Hello")), "message 2 has role 'bot'"),
        (_row(("system", "s"), ("user", "  "), ("assistant", "Yes")), "message 2 (user) is empty"),
        (_row(("user", "Q?"), ("assistant", "")), "message 2 (assistant) is empty"),
        (_row(("assistant", "A"), ("user", "Q?")), "must alternate user, assistant"),
        (_row(("user", "Q?"), ("user", "Q2?"), ("assistant", "A")), "must alternate user, assistant"),
        (_row(("user", "Q?"), ("assistant", "A"), ("user", "Q2?")), "last message must be the assistant's"),
        (_row(("user", "Q?"), ("system", "s"), ("assistant", "A")), "system message may only come first"),
        (_row(("system", "only a system prompt")), "must alternate"),
        ({"messages": []}, "non-empty 'messages' list"),
        ({"prompt": "Q", "completion": "A"}, "non-empty 'messages' list"),
        ("not a row", "non-empty 'messages' list"),
        (
            {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": ["A"]}]},
            "no text",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Q?", "mood": "x"},
                    {"role": "assistant", "content": "A"},
                ]
            },
            "unknown key",
        ),
        ({**_row(("user", "Q?"), ("assistant", "A")), "extra": 1}, "unknown key(s) ['extra']"),
        (_row(("user", "Q?"), ("assistant", "word " * 3000)), "tokens, over the limit of 2048"),
    ],
)
def test_bad_rows_are_rejected_with_the_reason(row, reason: str) -> None:
    found = validate_row(row, APPROXIMATE, 2048)
    assert found is not None and reason in found


def test_a_good_row_passes_and_counts_chat_overhead() -> None:
    row = chat_row("How many vacation days do I get?", "27 days a year.")
    assert validate_row(row, APPROXIMATE, 2048) is None
    content = sum(approximate_tokens(m["content"]) for m in row["messages"])
    assert APPROXIMATE.count_messages(row["messages"]) == content + 3 * 4 + 3
    assert validate_row(row, APPROXIMATE, content) is not None  # the overhead alone pushes it over


def test_rows_use_the_closed_book_system_prompt_and_drop_citations() -> None:
    row = chat_row("Q?", without_citations("Employees get 27 days [1]. Carry-over is 5 days [1, 2]."))
    assert row["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert row["messages"][2]["content"] == "Employees get 27 days. Carry-over is 5 days."


def test_duplicates_bad_rows_and_reasons_land_in_rejects(tmp_path: Path) -> None:
    good = handbook_candidates()[:30]
    duplicate = Candidate(
        chat_row("  " + good[0].row["messages"][1]["content"].upper() + " ", "Other."), "feedback:dup"
    )
    empty = Candidate(chat_row("What is the VPN address?", " "), "feedback:empty")
    long = Candidate(chat_row("Tell me everything?", "word " * 3000), "generated:long")
    report = write_dataset([*good, duplicate, empty, long], tmp_path, APPROXIMATE)

    assert sum(report.counts.values()) == 30
    reasons = {r.origin: r.reason for r in report.rejected}
    assert reasons["feedback:dup"].startswith("duplicate question (already in the dataset from generated:0)")
    assert reasons["feedback:empty"] == "message 3 (assistant) is empty"
    assert "over the limit of 2048" in reasons["generated:long"]
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert {r["origin"] for r in rejects} == set(reasons) and all(r["reason"] and r["row"] for r in rejects)


def test_manifest_counts_and_hash_of_the_training_file(tmp_path: Path) -> None:
    report = write_dataset(handbook_candidates(), tmp_path, APPROXIMATE)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    train = (tmp_path / "train.jsonl").read_bytes()
    assert manifest["training_data_hash"] == hashlib.sha256(train).hexdigest() == report.training_data_hash
    for split in ("train", "validation", "eval"):
        lines = (tmp_path / f"{split}.jsonl").read_text().splitlines()
        assert manifest["counts"][split] == manifest["files"][f"{split}.jsonl"]["rows"] == len(lines)
        assert all(set(json.loads(line)) == {"messages"} for line in lines)
    assert manifest["counts"]["eval"] > 0 and manifest["counts"]["validation"] > 0
    assert (
        manifest["counts"]["train"] > 3 * (manifest["counts"]["eval"] + manifest["counts"]["validation"]) / 2
    )
    assert manifest["tokenizer"] == "approximate" and manifest["max_tokens"] == 2048


def test_the_split_is_stable_across_runs_and_growing_data(tmp_path: Path) -> None:
    candidates = handbook_candidates()
    first = write_dataset(candidates[:60], tmp_path / "a", APPROXIMATE)
    again = write_dataset(candidates[:60], tmp_path / "b", APPROXIMATE)
    assert first.training_data_hash == again.training_data_hash
    shuffled = candidates[:]
    random.Random(3).shuffle(shuffled)
    write_dataset(shuffled, tmp_path / "c", APPROXIMATE)

    def splits(directory: Path) -> dict[str, str]:
        found = {}
        for split in ("train", "validation", "eval"):
            for line in (directory / f"{split}.jsonl").read_text().splitlines():
                found[json.loads(line)["messages"][1]["content"]] = split
        return found

    before, after = splits(tmp_path / "a"), splits(tmp_path / "c")
    assert len(after) > len(before)
    assert all(after[question] == split for question, split in before.items())
    # Case and punctuation do not move a question either.
    assert split_of("How many VACATION days?!", 10, 10) == split_of("how many vacation days", 10, 10)


def test_nothing_to_build_is_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing to build a dataset from.*--generate N"):
        write_dataset([], tmp_path, APPROXIMATE)


def test_all_rows_rejected_is_an_error_that_points_at_the_reasons(tmp_path: Path) -> None:
    bad = [Candidate(chat_row("Q?", ""), f"feedback:{i}") for i in range(3)]
    with pytest.raises(
        InputError, match=r"all 3 rows were rejected \(3× message N .* is empty\).*rejects.jsonl"
    ):
        write_dataset(bad, tmp_path, APPROXIMATE)
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 3


def test_small_train_split_warns_about_openai_minimum(tmp_path: Path) -> None:
    report = write_dataset(handbook_candidates()[:5], tmp_path, APPROXIMATE)
    assert any("OpenAI needs at least 10" in w for w in report.warnings)


def test_loading_rechecks_hand_edited_files(tmp_path: Path) -> None:
    write_dataset(handbook_candidates(), tmp_path, APPROXIMATE)
    dataset = load_dataset(tmp_path, APPROXIMATE)
    assert dataset.hash_matches_manifest and dataset.train and dataset.validation

    with (tmp_path / "train.jsonl").open("a") as handle:
        handle.write(json.dumps(_row(("user", "Q?"), ("tool", "x"))) + "\n")
    with pytest.raises(
        InputError,
        match=r"train.jsonl has rows that cannot be trained on: line \d+: message 2 has role 'tool'",
    ):
        load_dataset(tmp_path, APPROXIMATE)
    (tmp_path / "train.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match="line 1: not valid JSON"):
        load_dataset(tmp_path, APPROXIMATE)
    with pytest.raises(InputError, match="no manifest.json.*finetune dataset --out"):
        load_dataset(tmp_path / "missing", APPROXIMATE)


def test_token_counter_never_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: tiktoken would download
    counter = token_counter()
    assert not counter.exact and "approximate" in counter.name
    assert counter.count("Employees in the Netherlands get 27 vacation days.") >= 10
