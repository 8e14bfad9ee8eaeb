"""The mode comparison as files: report.md, a self-contained report.html, PNG charts, answers.jsonl."""

from __future__ import annotations

import base64
import html
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from core.evaluation.compare import Comparison
from core.extras import MissingExtra, require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

# (key in ModeScores.as_dict(), column title, how to print it)
COLUMNS = (
    ("mode", "mode", "text"),
    ("model", "model", "text"),
    ("exact_match", "EM", "score"),
    ("f1", "F1", "score"),
    ("contains_gold", "contains a gold answer", "score"),
    ("abstention", "abstains when unanswerable", "score"),
    ("false_abstention", "abstains when answerable", "score"),
    ("citation_correct", "cites the right paragraph", "score"),
    ("latency_ms_p50", "p50 ms", "count"),
    ("latency_ms_p95", "p95 ms", "count"),
    ("tokens_per_question", "tokens / question", "count"),
    ("fallbacks", "fallbacks to base", "count"),
)
DEFINITIONS = [
    "**EM / F1**: SQuAD's exact match and token F1 (lower case, no punctuation or articles, best of "
    "the gold answers) on the answerable questions; citation markers like [1] are removed first and "
    "an abstention counts as the empty answer.",
    "**contains a gold answer**: share of the answerable questions whose answer, normalised the same "
    "way, contains one of the gold answers; an abstention counts as no. A quoted sentence that holds "
    "the answer scores here but little in F1, which punishes every extra word.",
    "**abstains when unanswerable**: share of the unanswerable questions (`is_impossible`) the answer "
    "declined; higher is better. **abstains when answerable**: share of answerable questions "
    "wrongly declined; lower is better.",
    "**cites the right paragraph**: of the answerable questions answered with retrieval (rag, "
    "quote, hybrid), the share whose cited sources include the paragraph the question was written from.",
    "**latency**: wall time of the whole answer (retrieval, prompt, generation, checks), per question. "
    "**tokens / question**: prompt + completion tokens, as the endpoint reported them or else counted "
    "with the model's tokenizer. **fallbacks to base**: answers where the fine-tuned model failed and "
    "the base model answered instead.",
]
CHARTS = ("quality.png", "latency.png", "tokens.png")
_EXAMPLES = 5


def format_cell(value: object, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "score":
        return f"{float(value):.3f}"  # type: ignore[arg-type]
    if kind == "count":
        return f"{float(value):,.0f}"  # type: ignore[arg-type]
    return str(value)


def _num(row: dict[str, object], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def table_rows(comparison: Comparison) -> list[dict[str, object]]:
    rows = []
    for scores in comparison.scores:
        row = scores.as_dict()
        per_question = _num(row, "prompt_tokens_mean") + _num(row, "completion_tokens_mean")
        rows.append({**row, "tokens_per_question": per_question})
    return rows


def _figure(width: float = 7.0, height: float = 3.6) -> Figure:
    # matplotlib comes with the [finetune] extra; without it the report is written without charts.
    figure = require("matplotlib.figure", "finetune").Figure(figsize=(width, height), dpi=100)
    require("matplotlib.backends.backend_agg", "finetune").FigureCanvasAgg(figure)
    return figure  # type: ignore[no-any-return]


def _quality_chart(rows: list[dict[str, object]], path: Path) -> None:
    metrics = [
        ("exact_match", "EM"),
        ("f1", "F1"),
        ("contains_gold", "contains a gold answer"),
        ("abstention", "abstains when unanswerable"),
        ("citation_correct", "cites the right paragraph"),
    ]
    figure = _figure()
    axes = figure.add_subplot()
    width = 0.8 / len(metrics)
    for offset, (key, label) in enumerate(metrics):
        values = [_num(row, key) for row in rows]
        positions = [i + (offset - (len(metrics) - 1) / 2) * width for i in range(len(rows))]
        bars = axes.bar(positions, values, width, label=label)
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(range(len(rows)), [str(row["mode"]) for row in rows])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score (higher is better)")
    axes.set_title("Answer quality per mode")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path)


def _latency_chart(rows: list[dict[str, object]], path: Path) -> None:
    figure = _figure(6.0, 3.4)
    axes = figure.add_subplot()
    names = [str(row["mode"]) for row in rows]
    for shift, key, label in ((-0.2, "latency_ms_p50", "p50"), (0.2, "latency_ms_p95", "p95")):
        axes.bar([i + shift for i in range(len(rows))], [_num(row, key) for row in rows], 0.4, label=label)
    axes.set_xticks(range(len(rows)), names)
    axes.set_ylabel("ms per answer")
    axes.set_title("Latency per mode")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def _tokens_chart(rows: list[dict[str, object]], path: Path) -> None:
    figure = _figure(6.0, 3.4)
    axes = figure.add_subplot()
    names = [str(row["mode"]) for row in rows]
    prompt = [_num(row, "prompt_tokens_mean") for row in rows]
    completion = [_num(row, "completion_tokens_mean") for row in rows]
    axes.bar(names, prompt, 0.5, label="prompt")
    axes.bar(names, completion, 0.5, bottom=prompt, label="completion")
    axes.set_ylabel("tokens per question (mean)")
    axes.set_title("Token cost per mode")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def _examples(comparison: Comparison) -> list[tuple[str, str, dict[str, str]]]:
    """A few answerable questions with each mode's answer, for reading next to the numbers."""
    by_question: dict[str, dict[str, str]] = {}
    gold: dict[str, tuple[str, str]] = {}
    for result in comparison.results:
        if result.answerable:
            by_question.setdefault(result.question_id, {})[result.mode] = result.answer
            gold[result.question_id] = (result.question, result.gold[0])
    chosen = list(by_question)[:_EXAMPLES]
    return [(gold[q][0], gold[q][1], by_question[q]) for q in chosen]


def training_lines(comparison: Comparison) -> list[str]:
    """The fine-tuned model's training data against the evaluated questions, as Markdown bullets."""
    t = comparison.training
    if not t:
        return []
    split = t.get("split") or {}
    split_text = (
        f"split by {split.get('by')}: {split.get('validation_percent')}% validation, "
        f"{split.get('eval_percent')}% eval"
        if isinstance(split, dict) and split
        else "split unknown"
    )
    lines = [
        f"- Fine-tuned model **{t.get('model')}** (base {t.get('base_model')}): trained on "
        f"{t.get('train_rows')} rows, validated on {t.get('validation_rows')} ({split_text}), "
        f"{t.get('steps')} steps; training data sha256 `{t.get('training_data_hash')}`.",
    ]
    before, after = t.get("validation_loss_before"), t.get("validation_loss_after")
    if isinstance(before, int | float) and isinstance(after, int | float):
        lines.append(f"- Held-out (validation) loss {before:.4f} before training, {after:.4f} after.")
    leaked = t.get("evaluated_in_training")
    held = t.get("evaluated_held_out_by_dataset")
    asked = t.get("evaluated_questions")
    check = (
        "could not be checked: the dataset files are gone"
        if leaked is None
        else f"{leaked} of the {asked} evaluated questions appear in its training or validation rows"
    )
    if held is not None:
        check += f"; the dataset held out {held} of them by id"
    lines.append(f"- Train/test separation: {check}.")
    return lines


def _short(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _markdown(
    comparison: Comparison, rows: list[dict[str, object]], created: str, charts: tuple[str, ...] = CHARTS
) -> str:
    counts = rows[0] if rows else {}
    lines = [
        f"# Answer modes compared on {comparison.dataset}",
        "",
        f"{comparison.questions} questions ({counts.get('answerable', 0)} answerable, "
        f"{counts.get('unanswerable', 0)} unanswerable) over {comparison.paragraphs} paragraphs, "
        f"each asked once per mode. Created {created}.",
        "",
    ]
    for mode, why in comparison.skipped.items():
        lines.append(f"- Skipped **{mode}**: {why}.")
    if comparison.skipped:
        lines.append("")
    if comparison.training:
        lines += [*training_lines(comparison), ""]
    lines += [
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += [
        "| " + " | ".join(format_cell(row[key], kind) for key, _, kind in COLUMNS) + " |" for row in rows
    ]
    lines += ["", *[f"- {text}" for text in DEFINITIONS], ""]
    lines += [f"![{name.removesuffix('.png')}]({name})" for name in charts]
    lines += ["", "## Examples", ""]
    for question, answer, answers in _examples(comparison):
        lines.append(f"**{_short(question)}** (gold: {_short(answer, 80)})")
        lines += [f"- {mode}: {_short(text)}" for mode, text in answers.items()]
        lines.append("")
    lines.append("Every answer is in `answers.jsonl`.")
    return "\n".join(lines) + "\n"


def _html(comparison: Comparison, rows: list[dict[str, object]], created: str, out: Path) -> str:
    esc = html.escape
    header = "".join(f"<th>{esc(title)}</th>" for _, title, _ in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(format_cell(row[key], kind))}</td>" for key, _, kind in COLUMNS) + "</tr>"
        for row in rows
    )
    skipped = "".join(
        f"<li>Skipped <b>{esc(m)}</b>: {esc(why)}.</li>" for m, why in comparison.skipped.items()
    )
    definitions = "".join("<li>" + esc(text).replace("**", "") + "</li>" for text in DEFINITIONS)
    images = "".join(
        f'<img alt="{esc(name)}" src="data:image/png;base64,'
        f'{base64.b64encode((out / name).read_bytes()).decode()}">'
        for name in CHARTS
        if (out / name).exists()
    )
    examples = "".join(
        f"<p><b>{esc(_short(q))}</b> (gold: {esc(_short(a, 80))})</p><ul>"
        + "".join(f"<li>{esc(mode)}: {esc(_short(text))}</li>" for mode, text in answers.items())
        + "</ul>"
        for q, a, answers in _examples(comparison)
    )
    training = "".join(
        "<li>" + esc(line[2:].replace("**", "").replace("`", "")) + "</li>"
        for line in training_lines(comparison)
    )
    counts = rows[0] if rows else {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Answer modes compared on {esc(comparison.dataset)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; }}
td {{ text-align: right; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; display: block; margin: 1rem 0; }}
</style></head><body>
<h1>Answer modes compared on {esc(comparison.dataset)}</h1>
<p>{comparison.questions} questions ({counts.get("answerable", 0)} answerable,
{counts.get("unanswerable", 0)} unanswerable) over {comparison.paragraphs} paragraphs, each asked once
per mode. Created {esc(created)}.</p>
<ul>{skipped}</ul>
<ul>{training}</ul>
<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
<ul>{definitions}</ul>
{images}
<h2>Examples</h2>
{examples}
</body></html>
"""


def write_report(comparison: Comparison, out: Path) -> list[Path]:
    """Write the report files into ``out``; returns their paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create the report directory {out}: {exc}"
        raise InputError(msg) from exc
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = table_rows(comparison)
    charts: tuple[str, ...] = CHARTS
    try:
        _quality_chart(rows, out / "quality.png")
        _latency_chart(rows, out / "latency.png")
        _tokens_chart(rows, out / "tokens.png")
    except MissingExtra as exc:
        log.warning("the report has no charts: %s", exc)
        charts = ()
    (out / "report.md").write_text(_markdown(comparison, rows, created, charts), encoding="utf-8")
    (out / "report.html").write_text(_html(comparison, rows, created, out), encoding="utf-8")
    with (out / "answers.jsonl").open("w", encoding="utf-8") as lines:
        for result in comparison.results:
            lines.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
    return [out / name for name in ("report.md", "report.html", *charts, "answers.jsonl")]
