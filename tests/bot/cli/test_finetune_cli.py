"""`archivist finetune ...` and `serve-model` as a user runs them: a real process, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.finetune.dataset import write_dataset
from tests.bot.cli.test_cli import _run
from tests.conftest import BASE_CONFIG
from tests.core.finetune.conftest import APPROXIMATE, handbook_candidates, handbook_pairs
from tests.core.finetune.tiny_model import build_tiny_chat_model
from tests.fakes.openai_finetune import fake_finetuning


@pytest.fixture
def config(kb: Path, write_config) -> Path:
    return write_config(BASE_CONFIG)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    write_dataset(handbook_candidates(), tmp_path / "dataset", APPROXIMATE)
    return tmp_path / "dataset"


def _one_line_error(result, *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    for needle in needles:
        assert needle in result.stderr


def test_dataset_with_nothing_to_learn_from(config: Path, tmp_path: Path) -> None:
    result = _run(["finetune", "dataset", "--out", str(tmp_path / "out")], config)
    _one_line_error(result, "nothing to build a dataset from", "--generate N")


def test_openai_run_follows_the_job_and_registers(config: Path, dataset: Path) -> None:
    with fake_finetuning("sk-test") as server:
        args = ["finetune", "run", "--provider", "openai", "--dataset", str(dataset), "--poll-s", "0"]
        result = _run([*args, "--base-url", server.base_url], config, {"OPENAI_API_KEY": "sk-test"})
        assert result.returncode == 0, result.stderr
        assert (
            "job ftjob-0001: validating_files" in result.stdout
            and "job ftjob-0001: succeeded" in result.stdout
        )
        assert "registered ft:gpt-4o-mini-2024-07-18:org-fake:archivist:0001" in result.stdout

        refused = _run([*args, "--base-url", server.base_url], config, {"OPENAI_API_KEY": "sk-nope"})
        _one_line_error(refused, "401", "set OPENAI_API_KEY to a valid key")
    missing_key = _run(args, config, {"OPENAI_API_KEY": ""})
    _one_line_error(missing_key, "set OPENAI_API_KEY")


def test_run_arguments_are_checked_before_any_work(config: Path, dataset: Path, tmp_path: Path) -> None:
    local = ["finetune", "run", "--provider", "local", "--dataset", str(dataset)]
    _one_line_error(_run([*local, "--max-steps", "-1"], config), "--max-steps must be ≥ 0")
    _one_line_error(_run([*local, "--targets", ","], config), "--targets must name at least one layer")
    unknown = _run(["finetune", "run", "--provider", "azure", "--dataset", str(dataset)], config)
    _one_line_error(unknown, "--provider must be openai or local")
    no_data = _run(["finetune", "run", "--provider", "local", "--dataset", str(tmp_path)], config)
    _one_line_error(no_data, "no manifest.json", "finetune dataset --out")
    serve = _run(["serve-model", "--model", str(tmp_path / "nope")], config)
    _one_line_error(serve, "no model directory")


def test_local_run_prints_losses_and_where_the_model_is(config: Path, dataset: Path, tmp_path: Path) -> None:
    model = build_tiny_chat_model(tmp_path / "tiny", [f"{q} {a}" for q, a in handbook_pairs()])
    args = ["finetune", "run", "--provider", "local", "--dataset", str(dataset), "--model", str(model)]
    out = tmp_path / "run"
    result = _run([*args, "--epochs", "1", "--lr", "0.01", "--batch-size", "16", "--out", str(out)], config)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1  step 1/" in result.stdout and "epoch 1/1: mean training loss" in result.stdout
    assert f"merged model: {out / 'merged'}" in result.stdout
    assert f"serve it: archivist serve-model --model {out / 'merged'}" in result.stdout
    assert json.loads((out / "training_log.json").read_text())["options"]["epochs"] == 1
