"""Rendering answers, sync progress and source tables in a terminal."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core.answering.answers import Answer, AnswerEvent, Done, Token
from core.answering.safety import strip_fence_echo
from core.sync.engine import Progress as SyncProgress
from core.sync.status import SyncReport

log = logging.getLogger("archivist")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Without a terminal, one progress line per this many seconds keeps logs readable.
PLAIN_PROGRESS_EVERY_S = 5.0


def render_stream(events: Iterator[AnswerEvent]) -> Answer:
    """Print tokens as they arrive, then the numbered sources."""
    answer: Answer | None = None
    streamed: list[str] = []
    for event in events:
        if isinstance(event, Token):
            streamed.append(event.text)
            out.print(event.text, end="", markup=False)
        elif isinstance(event, Done):
            answer = event.answer
    out.print()
    assert answer is not None  # the assistant always ends with Done
    if " ".join(answer.text.split()) != " ".join(strip_fence_echo("".join(streamed)).split()):
        # The final answer differs from the draft (repeats cut, or figures not in the sources).
        out.print("\n[bold]Checked against the sources:[/bold]")
        out.print(answer.text, markup=False)
    render_sources(answer)
    return answer


def render_sources(answer: Answer) -> None:
    if not answer.sources:
        return
    out.print("\n[bold]Sources[/bold]")
    for source in answer.sources:
        location = source.url or source.path
        out.print(f"  [{source.index}] {source.title} — {location} ({source.source})", markup=False)


class SyncProgressView:
    """A progress bar on a terminal, periodic log lines otherwise."""

    def __init__(self) -> None:
        self._tty = err.is_terminal
        self._bar: Progress | None = None
        self._task = None
        self._last_line = 0.0

    def __enter__(self) -> SyncProgressView:
        if self._tty:
            self._bar = Progress(
                TextColumn("{task.description}", markup=False),  # a source name may hold "[...]"
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.__exit__(None, None, None)

    def __call__(self, progress: SyncProgress) -> None:
        description = f"{progress.source}: {progress.stage}"
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(description, total=progress.total)
            self._bar.update(
                self._task, description=description, completed=progress.done, total=progress.total
            )
            return
        now = time.monotonic()
        if progress.stage == "finished" or now - self._last_line >= PLAIN_PROGRESS_EVERY_S:
            self._last_line = now
            total = f"/{progress.total}" if progress.total else ""
            log.info("%s %d%s", description, progress.done, total)


def render_report(report: SyncReport) -> None:
    out.print(report.summary(), markup=False)
    for failure in report.failures:
        out.print(f"  failed: {failure}", markup=False)
    if report.failed > len(report.failures):
        out.print(f"  … and {report.failed - len(report.failures)} more", markup=False)


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "never"


WIDE_TABLE_COLUMNS = 120  # narrower terminals get one block per source instead of a table


def render_sources_table(
    rows: list[tuple[str, str, str, int, SyncReport | None, float | str | None]],
    status_note: str = "",
) -> None:
    """One row per source; the last column is the next scheduled run (a time, "running" or None).

    ``status_note`` says why the sync status could not be read; it replaces the last sync's result.
    """
    cells = [_source_cells(*row, status_note=status_note) for row in rows]
    if out.width < WIDE_TABLE_COLUMNS:
        for name, kind, where, chunks, last, _took, result, next_run in cells:
            out.print(f"{name} ({kind}): {where}", markup=False)
            out.print(
                f"  {chunks} chunks; last sync {last}: {result}; next run: {next_run}", markup=False
            )
        return
    table = Table("source", "type", "reads", "chunks", "last sync", "took", "result", "next run")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # Text: names, paths and errors print as written
    out.print(table)


def _source_cells(
    name: str,
    kind: str,
    where: str,
    chunks: int,
    report: SyncReport | None,
    next_run: float | str | None,
    status_note: str = "",
) -> tuple[str, ...]:
    if status_note:
        return name, kind, where, str(chunks), "unknown", "-", status_note, _next_run(next_run)
    result = report.summary().split(": ", 1)[1] if report else "not synced yet"
    if report and not report.finished and next_run != "running":
        result = "interrupted; the next sync resumes it"
    took = f"{report.duration_s:.1f}s" if report and report.finished else "-"
    last = _when(report.finished_at or report.started_at) if report else _when(None)
    return name, kind, where, str(chunks), last, took, result, _next_run(next_run)


def _next_run(value: float | str | None) -> str:
    if value is None:
        return "on demand"
    if isinstance(value, str):
        return value
    if value <= time.time():
        return "due now"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")


def render_retrieval_table(scores: list) -> None:  # list[RetrievalScores]
    table = Table("variant", "nDCG@10", "R@10", "R@100", "MRR@10", "p50 ms", "p99 ms", "queries")
    for score in scores:
        row = score.as_dict()
        table.add_row(
            Text(str(row["variant"])),
            f"{row['ndcg@10']:.4f}",
            f"{row['recall@10']:.4f}",
            f"{row['recall@100']:.4f}",
            f"{row['mrr@10']:.4f}",
            f"{row['latency_ms_p50']:.1f}",
            f"{row['latency_ms_p99']:.1f}",
            str(row["queries"]),
        )
    out.print(table)


def render_compare_table(comparison) -> None:  # Comparison
    from core.evaluation.report import COLUMNS, format_cell, table_rows

    short = {
        "abstention": "abstains (unans.)",
        "false_abstention": "abstains (ans.)",
        "citation_correct": "cites ¶",
    }
    table = Table(*(short.get(key, title) for key, title, _ in COLUMNS))
    for row in table_rows(comparison):
        table.add_row(*(format_cell(row[key], kind) for key, _, kind in COLUMNS))
    out.print(table)


def render_retriever_tuning(result) -> None:  # RetrieverTuning
    summary = result.as_dict()
    out.print(
        f"Trained on {summary['pairs']} pairs in {summary['steps']} steps "
        f"(loss {summary['loss_first']:.3f} → {summary['loss_last']:.3f}).",
        markup=False,
    )
    if result.before:
        table = Table(
            f"held-out queries: {summary['heldout_queries']}, documents: {summary['eval_docs']}",
            "base",
            "fine-tuned",
            "change",
        )
        for key, before in result.before.items():
            after = result.after[key]
            table.add_row(key, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}")
        out.print(table)
    out.print(f"Registered embedder [bold]{escape(summary['name'])}[/bold] at {escape(str(summary['path']))}")
    out.print(
        "To use it, set it in the config and re-index (the whole index is rebuilt with it):\n"
        f'  [embeddings]\n  path = "{summary["path"]}"\n'
        "  then run: archivist sync",
        markup=False,
    )
