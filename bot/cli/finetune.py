"""`archivist finetune retriever|dataset|run`: fine-tuning the embedder and the chat model.

The heavy libraries load only inside the commands that need them; bot.cli.main owns the
error boundary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import context
from bot.cli.console import SyncProgressView, err, out
from core.errors import ConfigError, InputError

REJECTS_SHOWN = 15  # the rest are in rejects.jsonl

finetune = typer.Typer(help="Fine-tune models on your own data.", no_args_is_help=True)


@finetune.command("retriever")
def finetune_retriever(
    dataset: Annotated[
        Path, typer.Option(help="A BEIR-format directory: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
    ],
    split: Annotated[
        str, typer.Option(help="Which qrels file holds the (question, passage) pairs.")
    ] = "train",
    epochs: Annotated[int, typer.Option(help="Passes over the training pairs.")] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per step; the other passages are the negatives.")
    ] = 16,
    max_pairs: Annotated[
        int, typer.Option(help="Train on at most N pairs, drawn with a fixed seed (0: all).")
    ] = 0,
    holdout: Annotated[float, typer.Option(help="Share of queries held out and scored before/after.")] = 0.2,
    eval_docs: Annotated[
        int, typer.Option(help="Score against the relevant documents plus N others (0: the whole corpus).")
    ] = 0,
    name: Annotated[str, typer.Option(help="Version name in the registry (default: from the data).")] = "",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where to save the model (default: DATA_DIR/models/NAME).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fine-tune the local embedder on (question, passage) pairs and register it as an embedder version."""
    from bot.cli.console import render_retriever_tuning
    from core.finetune.retriever import TuningOptions
    from core.finetune.retriever import finetune_retriever as tune

    options = TuningOptions(split, epochs, batch_size, max_pairs, holdout, eval_docs, name=name, out=out_dir)
    result = tune(context.application(), dataset, options, SyncProgressView)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        render_retriever_tuning(result)


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False)


@finetune.command("dataset")
def finetune_dataset(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Directory to write (default: DATA_DIR/finetune/dataset).")
    ] = None,
    generate: Annotated[
        int, typer.Option(help="Also write up to N question/answer pairs from the indexed documents.")
    ] = 0,
    max_tokens: Annotated[int, typer.Option(help="Reject rows longer than this many tokens.")] = 2048,
    seed: Annotated[int, typer.Option(help="Which passages generation samples.")] = 0,
    validation_percent: Annotated[int, typer.Option(help="Share of questions held out for validation.")] = 10,
    eval_percent: Annotated[int, typer.Option(help="Share of questions held out for evaluation.")] = 10,
    principal: Annotated[
        list[str], typer.Option(help="Also use documents these principals may read (repeatable).")
    ] = [],  # noqa: B006
    squad: Annotated[
        Path | None,
        typer.Option(
            help="Build from a SQuAD v2.0 file: its answerable questions, and --generate from its paragraphs."
        ),
    ] = None,
    hold_out: Annotated[
        int,
        typer.Option(help="With --squad: keep out the N questions `eval compare --max-questions N` asks."),
    ] = 0,
) -> None:
    """Chat-format JSONL (train, validation, eval) from answers rated 👍 and from the documents."""
    from core.finetune.collect import DatasetOptions, build_dataset

    if generate < 0 or max_tokens < 16 or hold_out < 0:
        msg = "--generate and --hold-out must be ≥ 0 and --max-tokens ≥ 16"
        raise InputError(msg)
    if hold_out and squad is None:
        msg = "--hold-out needs --squad: it names questions of that file"
        raise InputError(msg)
    application = context.application()
    directory = out_dir or application.settings.data_dir / "finetune" / "dataset"
    options = DatasetOptions(
        directory,
        generate,
        max_tokens,
        seed,
        validation_percent,
        eval_percent,
        frozenset(principal),
        squad,
        hold_out,
    )

    def progress(tried: int, budget: int, accepted: int) -> None:
        if tried == 1 or tried % 5 == 0 or tried == budget:
            err.print(f"generating: {tried}/{budget} passages read, {accepted} pairs kept", markup=False)

    report = build_dataset(application, options, progress)
    counts = report.counts
    _say(f"Dataset written to {report.directory}")
    _say(f"  train {counts['train']} · validation {counts['validation']} · eval {counts['eval']} rows")
    origins = ", ".join(f"{kind} {count}" for kind, count in sorted(report.origins.items()))
    _say(f"  from: {origins}")
    _say(f"  rejected {len(report.rejected)}" + (":" if report.rejected else ""))
    for rejection in report.rejected[:REJECTS_SHOWN]:
        _say(f"    {rejection.origin}: {rejection.reason}")
    if len(report.rejected) > REJECTS_SHOWN:
        _say(f"    … and {len(report.rejected) - REJECTS_SHOWN} more in {report.directory / 'rejects.jsonl'}")
    if squad is not None and hold_out:
        _say(
            f"  held out for evaluation: the {hold_out} questions of "
            f"`eval compare --max-questions {hold_out}`"
        )
    _say(f"  training data sha256 {report.training_data_hash}")
    _say(f"  tokens counted with {report.tokenizer}")
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False)


@finetune.command("run")
def finetune_run(
    provider: Annotated[str, typer.Option(help="openai (a hosted job) or local (LoRA with PEFT).")],
    dataset_dir: Annotated[Path, typer.Option("--dataset", help="A directory `finetune dataset` wrote.")],
    name: Annotated[str, typer.Option(help="Register the model under this name.")] = "",
    base_model: Annotated[
        str, typer.Option(help="openai: the model to fine-tune.")
    ] = "gpt-4o-mini-2024-07-18",
    suffix: Annotated[str, typer.Option(help="openai: added to the fine-tuned model's name.")] = "archivist",
    poll_s: Annotated[float, typer.Option(help="openai: seconds between status checks.")] = 30.0,
    job: Annotated[str, typer.Option(help="openai: follow an existing job instead of creating one.")] = "",
    base_url: Annotated[str, typer.Option(help="openai: API base URL (default: $OPENAI_BASE_URL).")] = "",
    api_key_env: Annotated[
        str, typer.Option(help="openai: variable holding the API key.")
    ] = "OPENAI_API_KEY",
    model: Annotated[
        str, typer.Option(help="local: a Hugging Face causal LM directory (default: the bundled SmolLM2).")
    ] = "",
    epochs: Annotated[int, typer.Option(help="local: passes over the training rows.")] = 3,
    lr: Annotated[float, typer.Option(help="local: peak learning rate.")] = 2e-4,
    rank: Annotated[int, typer.Option(help="local: LoRA rank.")] = 8,
    batch_size: Annotated[int, typer.Option(help="local: rows per step.")] = 4,
    max_length: Annotated[int, typer.Option(help="local: tokens kept per row.")] = 1024,
    seed: Annotated[int, typer.Option(help="Seed for shuffling and initialisation.")] = 0,
    targets: Annotated[
        str, typer.Option(help="local: comma-separated layers to adapt (q_proj,v_proj), or all-linear.")
    ] = "q_proj,v_proj",
    max_steps: Annotated[int, typer.Option(help="local: stop after N steps (0: every epoch).")] = 0,
    promote: Annotated[
        bool, typer.Option("--promote", help="local: answer with the new version at once.")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="local: output directory (default: DATA_DIR/finetune/NAME).")
    ] = None,
) -> None:
    """Fine-tune on a dataset and register the resulting model version."""
    from core.finetune.dataset import load_dataset
    from core.finetune.tokens import token_counter

    if provider not in ("openai", "local"):
        msg = f"--provider must be openai or local, not {provider!r}"
        raise InputError(msg)
    data = load_dataset(dataset_dir, token_counter())
    application = context.application()
    if provider == "openai":
        from core.finetune.openai_job import DEFAULT_BASE_URL, OpenAIFineTuning, run_openai_finetune

        key = os.environ.get(api_key_env, "")
        if not key:
            msg = f"set {api_key_env} to the fine-tuning API's key (or name another variable: --api-key-env)"
            raise ConfigError(msg)
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        tuner = OpenAIFineTuning(url, key, api_key_env)
        version = run_openai_finetune(
            data,
            tuner,
            application.model_registry,
            _say,
            base_model=base_model,
            suffix=suffix,
            poll_s=poll_s,
            seed=seed,
            name=name,
            job_id=job,
        )
        _say(f"registered {version.name} (model {version.model} at {version.base_url})")
        _say(f"answer with it: archivist models promote {version.name}")
        return
    if max_steps < 0 or not [t for t in targets.split(",") if t.strip()]:
        msg = "--max-steps must be ≥ 0 and --targets must name at least one layer"
        raise InputError(msg)
    from core.finetune.local_lora import LoraOptions, run_local_finetune
    from core.finetune.smollm_base import BUNDLED_NAME, materialise

    if not model:
        model = str(materialise(application.settings.data_dir, _say))
        label = name or f"{BUNDLED_NAME}-lora-{data.training_data_hash[:8]}"
    else:
        label = name or f"{Path(model).name}-lora-{data.training_data_hash[:8]}"
    target = out_dir or application.settings.data_dir / "finetune" / label
    layers = tuple(t.strip() for t in targets.split(",") if t.strip())
    options = LoraOptions(epochs, lr, rank, 2 * rank, 0.05, batch_size, max_length, seed, layers, max_steps)
    registry = application.model_registry
    version, result = run_local_finetune(model, data, target, options, registry, _say, label)
    _say(f"adapter: {result.adapter_dir}")
    _say(f"merged model: {result.merged_dir}")
    _say(f"training loss by epoch: {', '.join(f'{loss:.4f}' for loss in result.epoch_losses)}")
    if result.validation_loss is not None and result.validation_loss_before is not None:
        _say(
            f"held-out loss {result.validation_loss_before:.4f} → {result.validation_loss:.4f} "
            f"on {result.validation_rows} validation row(s)"
        )
    _say(
        f"registered {version.name} (provider {version.provider}, {result.steps} steps, "
        f"{result.steps_per_s:.2f} steps/s, {result.seconds:.0f} s on {result.device})"
    )
    if version.provider == "llamacpp":
        if promote:
            registry.promote(version.name)
            _say(f"promoted {version.name}: finetuned and hybrid answers use it now")
        else:
            _say(f"answer with it: archivist models promote {version.name}")
        _say(
            f"or serve it over HTTP: archivist serve-model --model {result.merged_dir} --name {version.name}"
        )
        return
    if promote:
        _say("--promote: a merged model directory answers only once served; register the endpoint below")
    _say(f"serve it: archivist serve-model --model {result.merged_dir} --name {version.name}")
    _say(
        f"then answer with it: archivist models register {version.name}-served --model {version.name} "
        f"--base-url http://127.0.0.1:8001/v1 --base-model {model} --data-hash {version.training_data_hash} "
        "--promote"
    )
