"""The bundled SmolLM2, fine-tuned end to end as a user does it: dataset from the shared SQuAD
article, a short LoRA run with no --model, the fine-tune written back as a GGUF, promoted, answering
through the CLI in finetuned and hybrid modes, and rolled back to the base.

Slow: converting the GGUF, a few LoRA steps of a 135M model on the CPU, and llama.cpp answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bot.cli.test_cli import _run
from tests.conftest import BASE_CONFIG

SQUAD = Path(__file__).resolve().parents[3].parent / "shared/data/squad-v2/computational-complexity.json"
QUESTION = "What does computational complexity theory classify?"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SQUAD.is_file(), reason="the shared SQuAD v2 article is not checked out"),
]


def _json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bundled_model_fine_tunes_answers_when_promoted_and_rolls_back(
    kb: Path, write_config, tmp_path: Path
) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np
    from safetensors.numpy import load_file

    from core.finetune.gguf_export import permute_rows
    from core.finetune.smollm_base import bundled_gguf, materialise

    config = write_config(BASE_CONFIG)
    data_dir = tmp_path / "data"
    dataset = tmp_path / "dataset"

    built = _run(
        ["finetune", "dataset", "--squad", str(SQUAD), "--hold-out", "40", "--out", str(dataset)], config
    )
    assert built.returncode == 0, built.stderr
    assert "held out for evaluation: the 40 questions" in built.stdout

    run = _run(
        [
            "finetune", "run", "--provider", "local", "--dataset", str(dataset),
            "--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--max-length", "128",
            "--name", "squad-lora", "--promote",
        ],
        config,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "converting SmolLM2-135M-Instruct" in run.stdout  # no --model: the bundled model, converted
    assert "held-out loss " in run.stdout and "LoRA rank 8: 460,800 trainable parameters" in run.stdout
    assert "promoted squad-lora" in run.stdout

    listed = _json(_run(["models", "list", "--json"], config))
    version = next(v for v in listed["versions"] if v["name"] == "squad-lora")
    assert version["provider"] == "llamacpp" and version["promoted"]
    assert version["base_model"].startswith("smollm2-135m-instruct@sha256:")
    training = version["training"]
    assert training["steps"] == 2 and len(training["loss_curve"]) == 2
    assert training["train_rows"] > 100 and training["validation_loss_before"] is not None
    assert len(training["held_out_for_eval"]["ids"]) == 40

    # The exported GGUF: untouched tensors are the original bytes, q/v carry the fine-tune in
    # llama.cpp's row order (the query projection permuted for its rotary embedding).
    original = {t.name: t for t in gguf.GGUFReader(str(bundled_gguf())).tensors}
    exported = {t.name: t for t in gguf.GGUFReader(version["model"]).tensors}
    assert exported.keys() == original.keys()
    assert np.array_equal(exported["blk.0.attn_k.weight"].data, original["blk.0.attn_k.weight"].data)
    assert exported["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    merged = load_file(str(Path(training["merged_dir"]) / "model.safetensors"))
    q = np.asarray(exported["blk.0.attn_q.weight"].data, dtype=np.float32)
    assert np.allclose(q, permute_rows(merged["model.layers.0.self_attn.q_proj.weight"], 9), atol=2e-2)

    finetuned = _json(_run(["ask", "--mode", "finetuned", "--json", QUESTION], config))
    assert finetuned["model"] == "squad-lora" and finetuned["answer"].strip()
    hybrid = _json(_run(["ask", "--mode", "hybrid", "--json", "What is the yearly learning budget?"], config))
    assert hybrid["model"] == "squad-lora" and hybrid["mode"] == "hybrid" and hybrid["answer"].strip()

    rolled = _run(["models", "rollback"], config)
    assert rolled.returncode == 0, rolled.stderr
    after = _run(["ask", "--mode", "finetuned", "--json", QUESTION], config)
    assert after.returncode == 1 and "needs a fine-tuned model" in after.stderr
    base = _json(_run(["ask", "--mode", "rag", "--json", "What is the yearly learning budget?"], config))
    assert base["model"] != "squad-lora"

    # Converted once: the same GGUF is found by its hash, not converted again.
    said: list[str] = []
    base_dir = materialise(data_dir, said.append)
    assert said == [] and base_dir.parent == data_dir / "models" / "base"
    assert (base_dir / "model.safetensors").is_file() and (base_dir / "source.json").is_file()
