"""Answer quality on the bundled handbook's sample questions (samples/questions.json).

For each question and answer style: was the page holding the answer among the
sources (retrieval hit), does the answer contain every expected phrase (answer
correct), and does it state a figure that no source document holds (made-up
figure)? ``generate`` (the chat model writes the answer) is the baseline measured
in the same run; ``quote`` (the handbook's own sentences, cited) is compared to it.
With the bundled 135M chat model this measures the floor of what Archivist does
offline; the same script scores any configured model (set ARCHIVIST_CONFIG).

Usage: python benchmarks/sample_answers.py [--json] [--styles quote,generate]
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.answering.answers import Question  # noqa: E402
from core.answering.assistant import Assistant  # noqa: E402
from core.app import App  # noqa: E402
from core.documents import Document  # noqa: E402
from core.settings import load_settings  # noqa: E402

CONFIG = """
data_dir = "data"
[connectors.handbook]
type = "filesystem"
path = "{kb}"
public = true
"""
_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


def holds(answer: str, phrase: str) -> bool:
    """The answer contains the phrase as whole words: "45 minutes" does not hold "5 minutes"."""
    return re.search(rf"(?<![\w.,]){re.escape(phrase.lower())}(?!\w)", answer.lower()) is not None


def made_up_figures(answer: str, documents: list[str]) -> list[str]:
    """Figures in the answer (citation markers aside) that none of the cited documents holds."""
    said = re.sub(r"\[\d+(?:\s*,\s*\d+)*\]", "", answer)
    pages = " ".join(documents)
    return [f for f in _FIGURE.findall(said) if f not in pages and f.replace(",", "") not in pages]


def run_style(
    app: App, style: str, pages: dict[str, str], questions: list[dict]
) -> tuple[list[dict], list[float]]:
    settings = app.settings.assistant.model_copy(update={"answer_style": style})
    assistant = Assistant(
        app.store, app.embedder, app.models, None, app.settings.retrieval, settings, reranker=app.reranker
    )
    rows, latencies = [], []
    for item in questions:
        started = time.perf_counter()
        answer = assistant.ask(Question(item["question"]))
        latencies.append((time.perf_counter() - started) * 1000)
        documents = [pages.get(s.path, "") for s in answer.sources]
        rows.append(
            {
                "style": style,
                "question": item["question"],
                "retrieval_hit": any(s.path.endswith(item["file"]) for s in answer.sources),
                "correct": all(holds(answer.text, p) for p in item["expect"]),
                "abstained": answer.abstained,
                "made_up_figures": made_up_figures(answer.text, documents) if answer.sources else [],
                "answer": answer.text,
                "answered_as": answer.style,
            }
        )
    return rows, latencies


def main() -> None:
    styles = ["quote", "generate"]
    if "--styles" in sys.argv:
        styles = sys.argv[sys.argv.index("--styles") + 1].split(",")
    questions = json.loads((ROOT / "samples" / "questions.json").read_text())
    summaries, all_rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        kb = Path(tmp) / "kb"
        shutil.copytree(ROOT / "samples" / "handbook", kb)
        config = Path(tmp) / "archivist.toml"
        config.write_text(CONFIG.format(kb=kb))
        app = App(load_settings(config, environ={}))
        app.sync_engine.sync(app.connector("handbook"))
        # Each page's text as the connector extracted it (pdf, docx too): what figures are checked against.
        source = app.connector("handbook")
        loaded = [d for batch in source.load(list(source.list_refs())) for d in batch]  # type: ignore[attr-defined]
        pages = {d.path: d.text for d in loaded if isinstance(d, Document)}
        for style in styles:
            rows, latencies = run_style(app, style, pages, questions)
            all_rows += rows
            summaries[style] = {
                "model": app.model_lineup.base.name,
                "questions": len(rows),
                "retrieval_hit_rate": sum(r["retrieval_hit"] for r in rows) / len(rows),
                "answer_accuracy": sum(r["correct"] for r in rows) / len(rows),
                "answers_with_made_up_figures": sum(bool(r["made_up_figures"]) for r in rows),
                "answer_latency_ms_p50": statistics.median(latencies),
            }
    if "--json" in sys.argv:
        print(json.dumps({"summary": summaries, "rows": all_rows}, indent=2))
        return
    for row in all_rows:
        print(
            f"{row['style']:8}",
            "hit " if row["retrieval_hit"] else "MISS",
            "ok   " if row["correct"] else "wrong",
            f"made-up {','.join(row['made_up_figures'])}" if row["made_up_figures"] else "",
            row["question"],
        )
    baseline = summaries.get("generate")
    for style, summary in summaries.items():
        ratio = ""
        if baseline and style != "generate" and baseline["answer_latency_ms_p50"]:
            ratio = (
                f" ({summary['answer_latency_ms_p50'] / baseline['answer_latency_ms_p50']:.2f}× generate's)"
            )
        print(
            f"\n{style} ({summary['model']}): retrieval hit rate {summary['retrieval_hit_rate']:.0%}, "
            f"answer accuracy {summary['answer_accuracy']:.0%}, "
            f"made-up figures in {summary['answers_with_made_up_figures']}/{summary['questions']} answers, "
            f"median answer time {summary['answer_latency_ms_p50']:.0f} ms{ratio}"
        )


if __name__ == "__main__":
    main()
