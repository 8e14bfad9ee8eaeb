"""A tiny local LoRA run: the loss goes down, the merged model loads and generates, the version is registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.app import App
from core.errors import ConfigError
from core.finetune.dataset import load_dataset
from core.finetune.local_lora import LoraOptions, _batches, encode_row, mean_loss, run_local_finetune
from tests.core.finetune.conftest import APPROXIMATE

OPTIONS = LoraOptions(epochs=3, learning_rate=1e-2, rank=8, alpha=16, batch_size=8, max_length=256, seed=0)


def _loss_on(model_dir: Path, rows: list[dict]) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    encoded = [encode_row(tokenizer, row["messages"], 256) for row in rows]
    return mean_loss(model, _batches(encoded, 8, tokenizer.pad_token_id, "cpu"))


def test_tiny_lora_run_learns_merges_and_registers(
    app: App, handbook_dataset: Path, tiny_model: Path, tmp_path: Path
) -> None:
    dataset = load_dataset(handbook_dataset, APPROXIMATE)
    lines: list[str] = []
    version, result = run_local_finetune(
        str(tiny_model), dataset, tmp_path / "run", OPTIONS, app.model_registry, lines.append, "tiny-v1"
    )

    # The loss goes down: the last epoch's mean well below the first's, over dozens of steps.
    assert len(result.step_losses) == 3 * -(-len(dataset.train) // 8) >= 24
    first, last = result.epoch_losses[0], result.epoch_losses[-1]
    assert last < first - 0.3, result.epoch_losses
    assert sum(result.step_losses[-5:]) / 5 < sum(result.step_losses[:5]) / 5
    assert result.validation_loss is not None and result.validation_loss < first
    assert any(line.startswith("epoch 1/3  step 1/") and "loss " in line for line in lines)
    assert any(line.startswith("epoch 3/3: mean training loss") for line in lines)

    # The adapter is a PEFT adapter; the merged model needs no PEFT and carries what was learned.
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 8
    assert not (result.merged_dir / "adapter_config.json").exists()
    before, after = _loss_on(tiny_model, dataset.train), _loss_on(result.merged_dir, dataset.train)
    assert after < before - 0.3

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(result.merged_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(result.merged_dir, local_files_only=True)
    prompt = tokenizer.apply_chat_template(
        dataset.train[0]["messages"][:-1], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    output = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > ids.shape[1]

    log = json.loads((tmp_path / "run" / "training_log.json").read_text())
    assert (
        log["epoch_losses"] == result.epoch_losses and log["training_data_hash"] == dataset.training_data_hash
    )
    assert app.model_registry.get("tiny-v1") == version
    assert version.provider == "local" and version.model == str(result.merged_dir.resolve())
    assert version.base_model == str(tiny_model) and version.training_data_hash == dataset.training_data_hash
    assert version.eval_scores["validation_loss"] == pytest.approx(result.validation_loss, abs=1e-4)


def test_same_seed_same_losses(handbook_dataset: Path, tiny_model: Path, tmp_path: Path, app: App) -> None:
    dataset = load_dataset(handbook_dataset, APPROXIMATE)
    short = LoraOptions(epochs=1, learning_rate=1e-2, batch_size=16, max_length=128, seed=5)
    runs = [
        run_local_finetune(
            str(tiny_model), dataset, tmp_path / name, short, app.model_registry, lambda _: None
        )[1]
        for name in ("a", "b")
    ]
    assert runs[0].step_losses == runs[1].step_losses


def test_a_model_that_is_not_on_disk_is_not_downloaded(
    app: App, handbook_dataset: Path, tmp_path: Path
) -> None:
    dataset = load_dataset(handbook_dataset, APPROXIMATE)
    with pytest.raises(ConfigError, match="without downloading"):
        run_local_finetune(
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            dataset,
            tmp_path,
            OPTIONS,
            app.model_registry,
            lambda _: None,
        )
    assert app.model_registry.list() == []


def test_answers_only_carry_the_loss(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How many vacation days?"},
        {"role": "assistant", "content": "27 days."},
    ]
    ids, labels = encode_row(tokenizer, messages, 256)
    learned = tokenizer.decode([token for token, label in zip(ids, labels, strict=True) if label != -100])
    assert learned == "27 days.<|im_end|>\n"
    assert len(ids) == len(labels) and encode_row(tokenizer, messages, 5)[0] == ids[:5]
