"""What a LoRA fine-tune of the bundled SmolLM2-135M costs, and whether it learns, in one run.

The training rows are the ones `archivist finetune dataset --squad FILE --hold-out N`
writes from the shared SQuAD v2 article (the questions `eval compare --max-questions N`
asks are kept out of every split). The bundled GGUF is materialised as a Hugging Face
model (timed once), then the same LoRA run is repeated with each seed:

- steps/s of the optimiser steps (median over seeds) and peak memory (the GPU
  allocator's peak on CUDA, else the process's peak resident set);
- held-out (validation split) loss of the base model, the baseline measured in
  this run, and after each seed's run: the drop, its ratio to the baseline, and
  the spread between seeds. The drop is only worth reporting when it is larger
  than that spread.

Runs on a CUDA GPU when torch sees one, else on the CPU.

    python benchmarks/finetune.py [--steps 20] [--batch-size 4] [--lr 1e-3] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import PROJECT_ROOT, machine, median, write_result

from core.finetune.dataset import load_dataset, write_dataset
from core.finetune.local_lora import LoraOptions, train_lora
from core.finetune.smollm_base import materialise
from core.finetune.squad_rows import squad_rows
from core.finetune.tokens import token_counter

SQUAD = PROJECT_ROOT.parent / "shared/data/squad-v2/computational-complexity.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--hold-out", type=int, default=40, help="questions kept out for eval compare")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seeds", default="0,1", help="comma-separated; one LoRA run per seed")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="keep the materialised base here (default: a temp dir)"
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        work = Path(tmp)
        data_dir = args.data_dir or work / "data"
        rows = squad_rows(args.squad, args.hold_out)
        write_dataset(rows.candidates, work / "dataset", token_counter(), provenance=rows.provenance)
        dataset = load_dataset(work / "dataset", token_counter())

        started = time.perf_counter()
        base = materialise(data_dir, print)
        materialise_s = time.perf_counter() - started

        runs = []
        for seed in seeds:
            options = LoraOptions(
                epochs=100,
                learning_rate=args.lr,
                rank=args.rank,
                alpha=2 * args.rank,
                batch_size=args.batch_size,
                max_length=256,
                seed=seed,
                max_steps=args.steps,
            )
            result = train_lora(str(base), dataset, work / f"run-{seed}", options, lambda _line: None)
            runs.append(result)
            print(
                f"seed {seed}: {result.steps} steps at {result.steps_per_s:.3f} steps/s on {result.device}, "
                f"held-out loss {result.validation_loss_before:.4f} -> {result.validation_loss:.4f}, "
                f"peak memory {result.peak_memory_mb or 0:.0f} MiB"
            )

    before = runs[0].validation_loss_before or float("nan")
    after = [r.validation_loss or float("nan") for r in runs]
    spread = max(after) - min(after) if len(after) > 1 else float("nan")
    drop = before - statistics.fmean(after)
    result = {
        "machine": machine(),
        "device": runs[0].device,
        "train_rows": runs[0].train_rows,
        "validation_rows": runs[0].validation_rows,
        "training_data_hash": dataset.training_data_hash,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "rank": args.rank,
        "targets": list(LoraOptions().targets),
        "seeds": seeds,
        "materialise_s": round(materialise_s, 1),
        "steps_per_s_median": round(median([r.steps_per_s for r in runs]), 4),
        "peak_memory_mb": round(max(r.peak_memory_mb or 0 for r in runs), 1),
        "heldout_loss_before": round(before, 4),
        "heldout_loss_after": [round(a, 4) for a in after],
        "heldout_loss_drop": round(drop, 4),
        "heldout_loss_after_vs_before": round(statistics.fmean(after) / before, 4),
        "seed_spread": round(spread, 4),
        "drop_over_spread": round(drop / spread, 1) if spread and spread == spread else None,
    }
    print(
        f"\nheld-out loss: base {before:.4f}, after {', '.join(f'{a:.4f}' for a in after)} "
        f"(x{result['heldout_loss_after_vs_before']} of the base); drop {drop:.4f}, "
        f"spread between seeds {spread:.4f}"
    )
    print(
        f"{result['steps_per_s_median']} steps/s (median), peak memory {result['peak_memory_mb']:.0f} MiB, "
        f"materialising the base took {materialise_s:.0f} s"
    )
    print(f"written to {write_result('finetune', result)}")


if __name__ == "__main__":
    main()
