"""Peak memory of `archivist chat`: the embedder and the local chat model loaded, one answer given.

Each figure is the peak resident set (``ru_maxrss`` of ``resource.getrusage``) of a
fresh subprocess, in MiB:

- ``bare``:     a Python process that imports nothing heavy (the baseline)
- ``embedder``: the app's embedder loaded and one query embedded (the second baseline)
- ``chat``:     what `archivist chat` loads, over a small index of the bundled sample
  handbook: ``app.assistant.ask(Question(...))`` answers one question with the
  embedder, LanceDB, Redis history and the bundled SmolLM2 through llama.cpp

The index is built beforehand in its own process (its peak is reported too, not
compared). The embedded Redis server is a separate process and is not counted.
No fixed target: the figures document what a laptop or a small VM must hold.

    python benchmarks/chat_memory.py
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
SOURCE = "handbook"
QUESTION = "How many paid vacation days do full-time employees in the Netherlands get per year?"
BARE = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# -- what each subprocess does ------------------------------------------------


def _role(role: str, workdir: Path) -> dict[str, object]:
    from _common import close_app, make_settings

    from core.answering.answers import Question
    from core.answering.history import ConversationKey
    from core.app import App

    app = App(make_settings(workdir, workdir / "docs", source=SOURCE))
    try:
        if role == "embedder":
            app.embedder.embed_query(QUESTION)
            return {}
        if role == "index":
            report = app.sync_engine.sync(app.connector(SOURCE))
            return {"documents": report.added, "chunks": report.chunks_embedded}
        answer = app.assistant.ask(Question(QUESTION, conversation=ConversationKey("cli", "local", "bench")))
        return {"answer": answer.text, "sources": len(answer.sources), "timings_ms": answer.timings_ms}
    finally:
        close_app(app)


def _measure(args: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["embedder", "index", "chat"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:  # inside a measured subprocess
        extra = _role(args.role, args.workdir)
        print(json.dumps({"maxrss_kib": _peak_kib(), **extra}, default=str))
        return

    with tempfile.TemporaryDirectory(prefix="archivist-bench-") as tmp:
        workdir = Path(tmp)
        shutil.copytree(HERE.parents[1] / "samples/handbook", workdir / "docs")
        runs: dict[str, dict[str, object]] = {"bare": {"maxrss_kib": int(_measure(["-c", BARE]))}}
        for role in ("embedder", "index", "chat"):
            runs[role] = _measure([str(HERE), "--role", role, "--workdir", str(workdir)])

    mib = {role: int(run["maxrss_kib"]) / 1024 for role, run in runs.items()}
    print("peak RSS, MiB (ru_maxrss of a fresh process)")
    print(f"  bare python         {mib['bare']:8.1f}   baseline")
    print(
        f"  embedder loaded     {mib['embedder']:8.1f}"
        f"   baseline; +{mib['embedder'] - mib['bare']:.1f} over bare"
    )
    print(
        f"  chat, one answer    {mib['chat']:8.1f}   {mib['chat'] / mib['bare']:.1f}x bare, "
        f"{mib['chat'] / mib['embedder']:.2f}x embedder; +{mib['chat'] - mib['embedder']:.1f} over embedder"
    )
    print(
        f"  (index the handbook {mib['index']:8.1f}   {runs['index']['documents']} documents, not compared)"
    )
    print(f"  answer: {str(runs['chat']['answer'])[:100]!r} with {runs['chat']['sources']} source(s)")

    from _common import write_result

    path = write_result(
        "chat_memory",
        {
            "question": QUESTION,
            "peak_rss_mib": mib,
            "chat_over_bare": mib["chat"] / mib["bare"],
            "chat_over_embedder": mib["chat"] / mib["embedder"],
            "chat_minus_embedder_mib": mib["chat"] - mib["embedder"],
            "runs": runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
