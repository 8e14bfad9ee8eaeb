"""`archivist eval retrieval|compare`: measuring retrieval and answer quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import context
from bot.cli.console import SyncProgressView, err, out

evaluate = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)


@evaluate.command("retrieval")
def eval_retrieval(
    dataset: Annotated[
        Path, typer.Option(help="A BEIR-format directory: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
    ],
    split: Annotated[str, typer.Option(help="Which qrels file to judge with.")] = "test",
    variants: Annotated[
        str, typer.Option(help="Comma-separated: dense, bm25, hybrid, hybrid@ALPHA.")
    ] = "hybrid",
    max_queries: Annotated[int, typer.Option(help="Evaluate only the first N judged queries (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """nDCG@10, Recall@10/100, MRR@10 and query latency of the configured pipeline on a BEIR dataset."""
    from bot.cli.console import render_retrieval_table
    from core.evaluation.retrieval import evaluate_pipeline

    scores = evaluate_pipeline(context.application(), dataset, split, variants, max_queries, SyncProgressView)
    if as_json:
        out.print_json(json.dumps({**scores[0].as_dict(), "variants": [s.as_dict() for s in scores]}))
    else:
        render_retrieval_table(scores)


@evaluate.command("compare")
def eval_compare(
    dataset: Annotated[Path, typer.Option(help="A SQuAD v2.0 JSON file: data → paragraphs → context, qas.")],
    modes: Annotated[
        str, typer.Option(help="Comma-separated: base, rag, quote, finetuned, hybrid.")
    ] = "base,rag,finetuned,hybrid",
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for report.md, report.html, charts, answers.jsonl.")
    ] = Path("compare-report"),
    max_questions: Annotated[
        int, typer.Option(help="Ask only N questions, drawn with a fixed seed (0: all).")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the per-mode metrics as one object.")
    ] = False,
) -> None:
    """The same questions through each answer mode: EM/F1, abstention, citations, latency, tokens."""
    from bot.cli.console import render_compare_table
    from core.evaluation.compare import compare_modes
    from core.evaluation.report import write_report

    comparison = compare_modes(context.application(), dataset, modes, max_questions, SyncProgressView)
    for mode, why in comparison.skipped.items():
        err.print(f"skipped {mode}: {why}", markup=False)
    files = write_report(comparison, out_dir)
    if as_json:
        out.print_json(json.dumps(comparison.as_dict()))
    else:
        render_compare_table(comparison)
        out.print(f"Report: {files[0]} ({files[1].name}, charts and answers.jsonl beside it)", markup=False)
