"""LoRA fine-tuning of a local Hugging Face causal LM with PEFT, on CPU or a CUDA GPU.

Nothing is downloaded: the model must be a local directory (or already in the
Hugging Face cache), and the Hub is switched off before transformers loads.
Each row is rendered with the model's chat template and the loss is taken on
the assistant's answer only, so the model learns to answer, not to echo
questions. The run writes the LoRA adapter, a merged model (adapter folded
into the weights, loadable without PEFT), and a training log with the loss of
every step.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, InputError
from core.extras import MissingExtra, is_missing
from core.finetune.dataset import Dataset
from core.models.registry import ModelRegistry, ModelVersion

IGNORE_INDEX = -100  # label positions the loss skips (the prompt, the padding)
# For tokenizers without a chat template: role headers, each turn closed by the
# end-of-sequence token, so the trained model learns where an answer ends.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
LOG_LINES_PER_EPOCH = 20  # step lines printed per epoch, however many steps it has

Say = Callable[[str], None]


@dataclass(frozen=True)
class LoraOptions:
    epochs: int = 3
    learning_rate: float = 2e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    batch_size: int = 4
    max_length: int = 1024
    seed: int = 0
    # Which linear layers get an adapter; query and value projections are LoRA's classic choice and
    # half the cost of every projection. "all-linear" adapts them all.
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    max_steps: int = 0  # stop after this many optimiser steps (0: run every epoch)


@dataclass
class LoraResult:
    adapter_dir: Path
    merged_dir: Path
    device: str
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    validation_loss: float | None = None
    validation_loss_before: float | None = None  # the untouched base model on the same held-out rows
    skipped_rows: int = 0
    seconds: float = 0.0
    train_seconds: float = 0.0  # the optimiser steps alone: what steps/s is measured on
    steps: int = 0
    train_rows: int = 0
    validation_rows: int = 0
    peak_memory_mb: float | None = None

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_seconds if self.train_seconds else 0.0


def _offline() -> None:
    # Read by huggingface_hub when it is first imported; local_files_only below covers the rest.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def pick_device() -> tuple[str, Any]:
    import torch

    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return "cuda", dtype
    return "cpu", torch.float32


def load_causal_lm(reference: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer from a local directory or the local cache; never from the network."""
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(reference).expanduser()
    source = str(path) if path.exists() else reference
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        msg = (
            f"cannot load a causal language model from {reference!r} without downloading ({exc}); give a "
            "local directory holding config.json, the weights and the tokenizer"
        )
        raise ConfigError(msg) from exc
    if not tokenizer.chat_template:
        if tokenizer.eos_token is None:
            msg = f"the tokenizer of {reference!r} has neither a chat template nor an end-of-sequence token"
            raise ConfigError(msg)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


def encode_row(
    tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids of the whole conversation and labels that keep only the final answer."""
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):  # a template that rewrites earlier turns: learn from all of it
        prompt = ""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
    return ids, labels


def _batches(
    rows: list[tuple[list[int], list[int]]], size: int, pad_id: int, device: str
) -> list[dict[str, Any]]:
    import torch

    batches = []
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        width = max(len(ids) for ids, _ in part)
        ids = [r[0] + [pad_id] * (width - len(r[0])) for r in part]
        labels = [r[1] + [IGNORE_INDEX] * (width - len(r[1])) for r in part]
        mask = [[1] * len(r[0]) + [0] * (width - len(r[0])) for r in part]
        batches.append(
            {
                "input_ids": torch.tensor(ids, device=device),
                "labels": torch.tensor(labels, device=device),
                "attention_mask": torch.tensor(mask, device=device),
            }
        )
    return batches


def _peak_memory_mb(device: str) -> float | None:
    """Peak memory of the run: the GPU's allocator on CUDA, else the process's peak resident set."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def mean_loss(model: Any, batches: list[dict[str, Any]]) -> float:
    """Token-weighted loss over the answers, without training."""
    import torch

    model.eval()
    total = tokens = 0.0
    with torch.no_grad():
        for batch in batches:
            counted = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += float(model(**batch).loss) * counted
            tokens += counted
    return total / tokens if tokens else float("nan")


def train_lora(
    model_reference: str, dataset: Dataset, out_dir: Path, options: LoraOptions, say: Say
) -> LoraResult:
    import torch

    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as exc:
        if is_missing(exc, "peft", "accelerate"):
            raise MissingExtra("finetune") from exc
        raise
    from transformers import get_linear_schedule_with_warmup

    if options.epochs < 1 or options.batch_size < 1 or options.learning_rate <= 0:
        msg = "--epochs and the batch size must be at least 1, and --lr above 0"
        raise InputError(msg)
    started = time.perf_counter()
    random.seed(options.seed)
    torch.manual_seed(options.seed)
    device, dtype = pick_device()
    model: Any
    model, tokenizer = load_causal_lm(model_reference, device, dtype)
    say(f"loaded {model_reference} on {device} ({sum(p.numel() for p in model.parameters()):,} parameters)")

    def encoded(rows: list[dict[str, Any]]) -> tuple[list[tuple[list[int], list[int]]], int]:
        kept = [encode_row(tokenizer, row["messages"], options.max_length) for row in rows]
        usable = [pair for pair in kept if any(label != IGNORE_INDEX for label in pair[1][1:])]
        return usable, len(kept) - len(usable)

    train_rows, skipped = encoded(dataset.train)
    validation_rows, skipped_validation = encoded(dataset.validation)
    if not train_rows:
        msg = f"no training row keeps any answer tokens within --max-length {options.max_length}"
        raise InputError(msg)

    validation_batches = _batches(validation_rows, options.batch_size, tokenizer.pad_token_id, device)
    before = mean_loss(model, validation_batches) if validation_rows else None
    if before is not None:
        say(f"validation loss before training {before:.4f} on {len(validation_rows)} held-out row(s)")
    try:
        model = get_peft_model(
            model,
            LoraConfig(
                task_type=TaskType.CAUSAL_LM,
                r=options.rank,
                lora_alpha=options.alpha,
                lora_dropout=options.dropout,
                target_modules="all-linear" if options.targets == ("all-linear",) else list(options.targets),
            ),
        )
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        msg = f"--targets {','.join(options.targets)}: {exc}; use module names of this model or all-linear"
        raise InputError(msg) from exc
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f"LoRA rank {options.rank}: {trainable:,} trainable parameters")
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=options.learning_rate
    )
    steps_per_epoch = math.ceil(len(train_rows) / options.batch_size)
    total_steps = steps_per_epoch * options.epochs
    if options.max_steps > 0:
        total_steps = min(total_steps, options.max_steps)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, total_steps // 20), total_steps)
    log_every = max(1, steps_per_epoch // LOG_LINES_PER_EPOCH)
    pad_id = tokenizer.pad_token_id
    result = LoraResult(
        out_dir / "adapter",
        out_dir / "merged",
        device,
        skipped_rows=skipped + skipped_validation,
        validation_loss_before=before,
        train_rows=len(train_rows),
        validation_rows=len(validation_rows),
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if result.skipped_rows:
        say(
            f"skipped {result.skipped_rows} row(s): no answer token fits in --max-length {options.max_length}"
        )

    order = random.Random(options.seed)
    training_started = time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        if result.steps >= total_steps:
            break
        model.train()
        shuffled = train_rows[:]
        order.shuffle(shuffled)
        epoch_losses = []
        for step, batch in enumerate(_batches(shuffled, options.batch_size, pad_id, device), start=1):
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            epoch_losses.append(loss.item())
            result.steps += 1
            if step % log_every == 0 or step == steps_per_epoch or result.steps == total_steps:
                where = f"epoch {epoch}/{options.epochs}  step {step}/{steps_per_epoch}"
                say(f"{where}  loss {epoch_losses[-1]:.4f}")
            if result.steps >= total_steps:
                break
        result.step_losses += epoch_losses
        result.epoch_losses.append(sum(epoch_losses) / len(epoch_losses))
        say(f"epoch {epoch}/{options.epochs}: mean training loss {result.epoch_losses[-1]:.4f}")
    result.train_seconds = time.perf_counter() - training_started
    result.peak_memory_mb = _peak_memory_mb(device)
    if validation_rows:
        result.validation_loss = mean_loss(model, validation_batches)
        say(f"validation loss {result.validation_loss:.4f} on {len(validation_rows)} held-out row(s)")

    model.save_pretrained(str(result.adapter_dir))
    tokenizer.save_pretrained(result.adapter_dir)
    merged = model.merge_and_unload()
    merged.save_pretrained(result.merged_dir)
    tokenizer.save_pretrained(result.merged_dir)
    result.seconds = time.perf_counter() - started
    log = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()},
        "steps_per_s": round(result.steps_per_s, 4),
        "base_model": model_reference,
        "training_data_hash": dataset.training_data_hash,
        "options": asdict(options),
        "train_rows": len(train_rows),
    }
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
    return result


def training_record(
    result: LoraResult, options: LoraOptions, dataset: Dataset | None = None
) -> dict[str, Any]:
    """What the registry keeps about a run: enough to tell whether it learned and from what."""
    data: dict[str, Any] = {}
    if dataset is not None:
        squad = dataset.manifest.get("squad") or {}
        data = {
            "dataset": str(dataset.directory.resolve()),
            "dataset_counts": dataset.manifest.get("counts", {}),
            "split": dataset.manifest.get("split", {}),
            "held_out_for_eval": squad.get("held_out_for_eval", {}),
            "squad_file": squad.get("file", ""),
        }
    return {
        **data,
        "steps": result.steps,
        "train_rows": result.train_rows,
        "validation_rows": result.validation_rows,
        "loss_curve": [round(loss, 4) for loss in result.step_losses],
        "validation_loss_before": _round(result.validation_loss_before),
        "validation_loss_after": _round(result.validation_loss),
        "steps_per_s": round(result.steps_per_s, 4),
        "peak_memory_mb": _round(result.peak_memory_mb, 1),
        "device": result.device,
        "seconds": round(result.seconds, 1),
        "merged_dir": str(result.merged_dir.resolve()),
        "options": {**asdict(options), "targets": list(options.targets)},
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def run_local_finetune(
    model_reference: str,
    dataset: Dataset,
    out_dir: Path,
    options: LoraOptions,
    registry: ModelRegistry,
    say: Say,
    name: str = "",
) -> tuple[ModelVersion, LoraResult]:
    """Train, then register: a GGUF the llama.cpp provider loads when the base came from one (the
    bundled model), else the merged directory, which answers once served with `serve-model`."""
    from core.finetune.smollm_base import read_source

    out_dir.mkdir(parents=True, exist_ok=True)
    result = train_lora(model_reference, dataset, out_dir, options, say)
    scores = (
        {"validation_loss": round(result.validation_loss, 4)} if result.validation_loss is not None else {}
    )
    label = name or f"{Path(model_reference).name}-lora-{dataset.training_data_hash[:8]}"
    origin = read_source(Path(model_reference))
    provider, served, base = "local", str(result.merged_dir.resolve()), model_reference
    if origin.get("gguf") and Path(str(origin["gguf"])).is_file():
        from core.finetune.gguf_export import export_gguf

        target = out_dir / f"{label}.gguf"
        changed = export_gguf(
            Path(str(origin["gguf"])), Path(model_reference), result.merged_dir, target, label
        )
        say(f"wrote {target} ({changed} tensors changed by the fine-tune, the rest copied as they were)")
        provider, served = "llamacpp", str(target.resolve())
        base = f"{origin.get('name', 'gguf')}@sha256:{str(origin.get('gguf_sha256', ''))[:12]}"
    version = ModelVersion(
        name=label,
        kind="chat",
        provider=provider,
        model=served,
        base_model=base,
        training_data_hash=dataset.training_data_hash,
        eval_scores=scores,
        training=training_record(result, options, dataset),
    )
    return registry.register(version), result
