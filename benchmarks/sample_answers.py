"""Answer quality on the bundled handbook's sample questions (samples/questions.json).

For each question: was the page holding the answer among the sources (retrieval
hit), and does the answer contain every expected phrase (answer correct)? With the
bundled 135M chat model this measures the floor of what Archivist does offline;
the same script scores any configured model (set ARCHIVIST_CONFIG).

Usage: python benchmarks/sample_answers.py [--json]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.answering.answers import Question  # noqa: E402
from core.app import App  # noqa: E402
from core.settings import load_settings  # noqa: E402

CONFIG = """
data_dir = "data"
[connectors.handbook]
type = "filesystem"
path = "{kb}"
public = true
"""


def main() -> None:
    questions = json.loads((ROOT / "samples" / "questions.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        kb = Path(tmp) / "kb"
        shutil.copytree(ROOT / "samples" / "handbook", kb)
        config = Path(tmp) / "archivist.toml"
        config.write_text(CONFIG.format(kb=kb))
        app = App(load_settings(config, environ={}))
        app.sync_engine.sync(app.connector("handbook"))
        rows, latencies = [], []
        for item in questions:
            started = time.perf_counter()
            answer = app.assistant.ask(Question(item["question"]))
            latencies.append((time.perf_counter() - started) * 1000)
            hit = any(s.path.endswith(item["file"]) for s in answer.sources)
            correct = all(p.lower() in answer.text.lower() for p in item["expect"])
            rows.append(
                {
                    "question": item["question"],
                    "retrieval_hit": hit,
                    "correct": correct,
                    "answer": answer.text,
                }
            )
    summary = {
        "model": answer.model,
        "questions": len(rows),
        "retrieval_hit_rate": sum(r["retrieval_hit"] for r in rows) / len(rows),
        "answer_accuracy": sum(r["correct"] for r in rows) / len(rows),
        "answer_latency_ms_p50": statistics.median(latencies),
    }
    if "--json" in sys.argv:
        print(json.dumps({"summary": summary, "rows": rows}, indent=2))
        return
    for row in rows:
        print(
            "hit " if row["retrieval_hit"] else "MISS",
            "ok   " if row["correct"] else "wrong",
            row["question"],
        )
    print(
        f"\n{summary['model']}: retrieval hit rate {summary['retrieval_hit_rate']:.0%}, "
        f"answer accuracy {summary['answer_accuracy']:.0%}, "
        f"median answer time {summary['answer_latency_ms_p50']:.0f} ms"
    )


if __name__ == "__main__":
    main()
