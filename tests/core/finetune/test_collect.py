"""Rows from 👍 answers (never 👎, never private documents) and pairs generated from the index."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.answering.answers import Answer, Source
from core.app import App
from core.errors import InputError
from core.finetune.collect import DatasetOptions, build_dataset
from core.finetune.generate import EXAMPLE_REPLY, QAPair, parse_reply
from core.settings import load_settings
from tests.conftest import BASE_CONFIG, stop_embedded_redis

PRIVATE_SOURCE = """
[connectors.wiki]
type = "filesystem"
path = "kb/engineering"
principals = ["group:engineering"]
"""


@pytest.fixture
def quick_app(kb: Path, write_config, openai_server, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Apps whose chat model and embedder are the local OpenAI stand-in.

    Generation does not depend on the vectors, and the stand-in's keep syncs quick. These
    Apps skip the session's shared vector cache, which holds the bundled embedder's vectors.
    """
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    built: list[App] = []

    def make(extra: str = "", sync: tuple[str, ...] = ("handbook",)) -> App:
        remote = f'provider = "openai"\nmodel = "gpt-test"\nbase_url = "{openai_server.base_url}"'
        embeddings = f'\n[embeddings]\nprovider = "openai"\nmodel = "text-embedding-test"\nbase_url = "{openai_server.base_url}"\n'
        config = BASE_CONFIG.replace('provider = "llamacpp"', remote) + extra + embeddings
        application = App(load_settings(write_config(config), environ={}))
        built.append(application)
        for name in sync:
            application.sync_engine.sync(application.connector(name))
        return application

    yield make
    for application in built:
        stop_embedded_redis(application)


def _answer(text: str, source: str = "handbook") -> Answer:
    cited = Source(1, "PTO Policy", source, "", "/kb/pto.md", 0.7, "…", True)
    return Answer(text, [cited], "rag", "gpt-test", False, "q")


def _rate(app: App, question: str, answer: Answer, *votes: int) -> None:
    app.feedback.record_answer(answer, question, platform="slack", user="U1", channel="C1")
    for number, vote in enumerate(votes):
        app.feedback.vote(answer.id, f"U{number + 2}", vote)


def _rows(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for split in ("train", "validation", "eval")
        for line in (directory / f"{split}.jsonl").read_text().splitlines()
    ]


def test_thumbs_up_answers_become_rows_and_thumbs_down_never(
    quick_app, openai_server, tmp_path: Path
) -> None:
    app = quick_app(PRIVATE_SOURCE, sync=())
    _rate(app, "How many vacation days do I get?", _answer("Employees get 27 days [1]."), 1, 1)
    _rate(app, "Can I carry days over?", _answer("Yes, all of them [1]."), -1)
    _rate(app, "Is there a learning budget?", _answer("Yes, 1,500 Euros [1]."), 1, -1)
    _rate(app, "What is the on-call rota?", _answer("Weekly [1].", source="wiki"), 1)

    report = build_dataset(app, DatasetOptions(tmp_path / "public"))
    rows = _rows(tmp_path / "public")
    assert [r["messages"][1:] for r in rows] == [
        [
            {"role": "user", "content": "How many vacation days do I get?"},
            {"role": "assistant", "content": "Employees get 27 days."},
        ]
    ]
    reasons = sorted(r.reason for r in report.rejected)
    assert reasons[0].startswith("cites source(s) wiki that not everyone may read")
    assert reasons[1:] == ["rated 👎 by 1 of 1 voter(s)", "rated 👎 by 1 of 2 voter(s)"]
    assert report.origins == {"feedback": 1}

    # A dataset for the engineering group may use what that group may read.
    build_dataset(app, DatasetOptions(tmp_path / "eng", principals=frozenset({"group:engineering"})))
    assert {r["messages"][1]["content"] for r in _rows(tmp_path / "eng")} == {
        "How many vacation days do I get?",
        "What is the on-call rota?",
    }


def test_no_feedback_and_no_generation_says_what_to_do(app: App, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no answer has been rated 👍 yet.*--generate N"):
        build_dataset(app, DatasetOptions(tmp_path / "out"))


def test_generation_needs_an_index(quick_app, openai_server, tmp_path: Path) -> None:
    app = quick_app(sync=())
    with pytest.raises(InputError, match="--generate needs indexed passages.*archivist sync"):
        build_dataset(app, DatasetOptions(tmp_path / "out", generate=5))


def _scripted_generator():
    """Replies like a model would: mostly good pairs from the passage, some of each bad kind."""
    calls = {"n": 0}

    def reply(messages: list[dict]) -> str:
        calls["n"] += 1
        prompt = messages[-1]["content"]
        title = prompt.splitlines()[1].split(" › ")[0]
        body = re.sub(r"</?data-[0-9a-f]+>", "", prompt).split("\n", 3)[-1]
        sentence = next(
            s for s in re.split(r"(?<=\.)\s+", " ".join(body.replace("*", "").split())) if len(s.split()) > 5
        )
        kind = calls["n"] % 7
        if kind == 1:
            return "Sure! Here is a question about the passage."
        if kind == 2:
            return f"Question: What does the passage say about {title}?\nAnswer: {sentence}"
        if kind == 3:
            return f"Question: How many people work on {title}?\nAnswer: Exactly 4,321 people, every day."
        return f"Question: What should I know about {title} (item {calls['n']})?\nAnswer: {sentence}"

    return reply


def test_generated_pairs_are_checked_and_rejections_explained(
    quick_app, openai_server, tmp_path: Path
) -> None:
    app = quick_app()
    openai_server.reply = _scripted_generator()
    seen: list[tuple[int, int, int]] = []
    report = build_dataset(
        app, DatasetOptions(tmp_path / "out", generate=8, seed=3), lambda *p: seen.append(p)
    )
    assert report.origins == {"generated": 8}
    rows = _rows(tmp_path / "out")
    assert len(rows) == 8 and all(r["messages"][1]["content"].startswith("What should I know") for r in rows)
    reasons = [r.reason for r in report.rejected]
    assert "generation rejected: not in the 'Question: ... / Answer: ...' format" in reasons
    assert "generation rejected: the question refers to the passage, which a user never sees" in reasons
    assert any(re.search(r"the answer states 4321, which the passage does not", r) for r in reasons)
    prompts = _chat_prompts(openai_server)
    assert seen[-1][2] == 8 and seen[-1][0] == len(prompts)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["generated_with"] == "gpt-test" and manifest["seed"] == 3


def _chat_prompts(server) -> list[str]:
    return [
        r["body"]["messages"][-1]["content"]
        for r in server.requests
        if r["path"].endswith("/chat/completions")
    ]


SECRET = (
    "# Project Nightingale\n\nProject Nightingale is the confidential acquisition of a competitor, planned for "
    "the third quarter. Only the executive team and the engineering leads know the target's name.\n"
)
PUBLIC = (
    "# Parking\n\nThe office car park has forty spaces. Spaces are free for employees and are assigned "
    "first come, first served each morning; visitors park on the street outside.\n"
)


def test_generation_reads_only_what_everyone_may_read(quick_app, openai_server, tmp_path: Path) -> None:
    for folder, text in (("open", PUBLIC), ("secret", SECRET)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "page.md").write_text(text)
    sources = (
        '\n[connectors.open]\ntype = "filesystem"\npath = "open"\npublic = true\n'
        '\n[connectors.secret]\ntype = "filesystem"\npath = "secret"\nprincipals = ["group:execs"]\n'
    )
    app = quick_app(sources, sync=("open", "secret"))
    openai_server.reply = lambda messages: (
        "Question: How many parking spaces are there?\nAnswer: Forty spaces."
    )

    build_dataset(app, DatasetOptions(tmp_path / "public", generate=5))
    prompts = _chat_prompts(openai_server)
    assert len(prompts) == 1 and "Parking" in prompts[0]  # the one public passage, and nothing else

    openai_server.requests.clear()
    build_dataset(app, DatasetOptions(tmp_path / "execs", generate=5, principals=frozenset({"group:execs"})))
    assert any("Nightingale" in p for p in _chat_prompts(openai_server))


def test_same_seed_same_passages(quick_app, openai_server, tmp_path: Path) -> None:
    app = quick_app()
    openai_server.reply = _scripted_generator()
    build_dataset(app, DatasetOptions(tmp_path / "a", generate=3, seed=11))
    first = [p.split("\n", 2)[1] for p in _chat_prompts(openai_server)]
    openai_server.requests.clear()
    openai_server.reply = _scripted_generator()
    build_dataset(app, DatasetOptions(tmp_path / "b", generate=3, seed=11))
    second = [p.split("\n", 2)[1] for p in _chat_prompts(openai_server)]
    assert len(first) >= 3
    assert first == second
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("Question: What is the learning budget?\nAnswer: It is 1,500 Euros per employee per year.", None),
        ("**Question:** What is the learning budget?\n**Answer:** 1,500 Euros per employee.", None),
        ("What is the learning budget? 1,500 Euros.", "format"),
        (
            "Question: Tell me the learning budget.\nAnswer: 1,500 Euros per employee.",
            "does not end with '?'",
        ),
        ("Question: Budget?\nAnswer: 1,500 Euros per employee.", "the question has 1 words"),
        (
            "Question: What is the budget?\nAnswer: 1,500 Euros.\nQuestion: And more?\nAnswer: No.",
            "more than one",
        ),
        ("Question: What is the learning budget?\nAnswer: The passage does not say.", "does not tell"),
        (EXAMPLE_REPLY, "copies the worked example"),
        (
            "Question: What is the purpose of this page?\nAnswer: It sets out the learning budget.",
            "refers to the passage",
        ),
        (
            "Question: What is the yearly learning budget?\nAnswer: The yearly learning budget.",
            "only repeats words",
        ),
        ("Question: What is the learning budget?\nAnswer: 2,000 Euros per employee.", "states 2000"),
        (
            "Question: What is the learning budget?\nAnswer: Quantum flux capacitors galore everywhere.",
            "not drawn",
        ),
        (
            "Question: What does this document say about budgets?\nAnswer: 1,500 Euros per employee.",
            "refers to the passage",
        ),
    ],
)
def test_replies_are_parsed_strictly(reply: str, reason: str | None) -> None:
    passage = "Every employee has a yearly learning budget of 1,500 Euros for courses, books and conferences."
    parsed = parse_reply(reply, passage)
    if reason is None:
        assert isinstance(parsed, QAPair) and parsed.question.endswith("?") and "1,500" in parsed.answer
    else:
        assert isinstance(parsed, str) and reason in parsed
