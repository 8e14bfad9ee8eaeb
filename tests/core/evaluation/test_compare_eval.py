"""`archivist eval compare`: SQuAD scoring, a scripted end-to-end comparison, the report files, bad input.

The chat model is the local OpenAI stand-in; its reply is a function of the
messages it is sent, so every EM, F1, abstention and citation figure below is
known in advance. Retrieval, the store and the embedder are the real ones.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from core.answering.history import estimate_tokens
from core.answering.prompts import NOT_COVERED
from core.errors import InputError
from core.evaluation.compare import compare_modes, parse_modes, sample_questions
from core.evaluation.report import write_report
from core.evaluation.squad import exact_match, load_squad, normalize_answer, token_f1
from core.evaluation.usage import TokenMeter, metered

EIFFEL = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It was completed in 1889 as the entrance arch to the World's Fair and is named after the "
    "engineer Gustave Eiffel, whose company designed and built it."
)
EVEREST = (
    "Mount Everest is Earth's highest mountain above sea level, located in the Mahalangur Himal "
    "sub-range of the Himalayas. Its elevation of 8,849 metres was most recently established in 2020 "
    "by Chinese and Nepali authorities."
)
PLANTS = (
    "Photosynthesis is the process by which green plants use sunlight to turn water and carbon "
    "dioxide into glucose. Oxygen is released as a by-product of photosynthesis."
)


def _qa(qid: str, question: str, answers: list[str]) -> dict:
    return {
        "id": qid,
        "question": question,
        "answers": [{"text": a, "answer_start": 0} for a in answers],
        "is_impossible": not answers,
    }


SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Landmarks_and_nature",
            "paragraphs": [
                {
                    "context": EIFFEL,
                    "qas": [
                        _qa("q1", "In which city is the Eiffel Tower?", ["Paris", "Paris", "Paris, France"]),
                        _qa("q2", "When was the Eiffel Tower completed?", ["1889", "in 1889"]),
                        _qa("q5", "Who designed the elevators of the Eiffel Tower?", []),
                    ],
                },
                {
                    "context": EVEREST,
                    "qas": [
                        _qa("q3", "What is the highest mountain on Earth?", ["Mount Everest"]),
                        _qa("q4", "What is the lowest mountain in the Himalayas?", []),
                    ],
                },
                {
                    "context": PLANTS,
                    "qas": [
                        _qa(
                            "q6",
                            "What do plants produce in photosynthesis?",
                            ["oxygen", "glucose and oxygen"],
                        ),
                    ],
                },
            ],
        }
    ],
}

# What the model says with documents (rag, hybrid): {n} is the number of the block holding the keyword.
WITH_DOCUMENTS = {
    "In which city is the Eiffel Tower?": ("Paris [{n}]", "Champ de Mars"),
    "When was the Eiffel Tower completed?": ("It was completed in 1889 [{n}].", "1889"),
    "What is the highest mountain on Earth?": ("The highest mountain is Mount Everest.", None),
    "What do plants produce in photosynthesis?": (NOT_COVERED, None),
    "What is the lowest mountain in the Himalayas?": (NOT_COVERED, None),
    "Who designed the elevators of the Eiffel Tower?": ("Gustave Eiffel designed them [{n}].", "Gustave"),
}
# What the model says on its own (base, finetuned).
CLOSED_BOOK = {
    "In which city is the Eiffel Tower?": "Paris",
    "When was the Eiffel Tower completed?": "1889",
    "What is the highest mountain on Earth?": "K2",
    "What do plants produce in photosynthesis?": "Plants produce glucose and oxygen.",
    "What is the lowest mountain in the Himalayas?": "The smallest peak near the Dead Sea.",
    "Who designed the elevators of the Eiffel Tower?": NOT_COVERED,
}
_BLOCK = re.compile(r"<data-\w+>\n\[(\d+)\][^\n]*\n(.*?)</data-", re.DOTALL)


def scripted_reply(messages: list[dict]) -> str:
    system = messages[0]["content"]
    question = messages[-1]["content"]
    blocks = _BLOCK.findall(system)
    if not blocks:
        return CLOSED_BOOK[question]
    reply, keyword = WITH_DOCUMENTS[question]
    number = next((n for n, text in blocks if keyword and keyword in text), "1")
    return reply.format(n=number)


FINETUNED = '\n[models.finetuned]\nprovider = "openai"\nmodel = "ft-test"\nbase_url = "{url}"\n'


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    return path


@pytest.fixture
def scripted(openai_server):
    openai_server.reply = scripted_reply
    return openai_server


# -- SQuAD scoring ---------------------------------------------------------------------------


def test_squad_normalisation_and_scores_follow_the_official_rules() -> None:
    assert normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert exact_match("the Paris.", ["Paris"]) == 1.0 and exact_match("Paris, France", ["Paris"]) == 0.0
    assert token_f1("It was completed in 1889", ["1889", "in 1889"]) == pytest.approx(4 / 7)  # best gold
    assert token_f1("K2", ["Mount Everest"]) == 0.0
    assert token_f1("", [""]) == 1.0 and token_f1("Paris", [""]) == 0.0  # "no answer" against "no answer"


def test_dataset_is_read_with_paragraphs_and_unanswerable_questions(squad_file: Path) -> None:
    dataset = load_squad(squad_file)
    assert len(dataset.paragraphs) == 3 and len(dataset.questions) == 6
    by_id = {q.id: q for q in dataset.questions}
    assert by_id["q1"].answers == ("Paris", "Paris, France")  # duplicate gold spans collapse
    assert not by_id["q5"].answerable and by_id["q3"].answerable
    assert dataset.paragraphs[by_id["q3"].paragraph].path == "Landmarks and nature/paragraph-2"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": "v2.0"}', "no 'data' list"),
        ('{"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}', r"data\[0\].paragraphs\[0\].context"),
        (
            '{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "x", '
            '"question": "q?", "answers": [], "is_impossible": false}]}]}]}',
            "answerable but has no answers",
        ),
        ('{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": "nope"}]}]}', "expected a list"),
        ('{"data": []}', "holds no questions"),
    ],
)
def test_malformed_files_get_clear_messages(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_squad(path)
    with pytest.raises(InputError, match="not a file"):
        load_squad(tmp_path / "missing.json")


def test_modes_and_sampling(squad_file: Path) -> None:
    assert parse_modes("base, rag,rag,hybrid") == ["base", "rag", "hybrid"]
    for bad in ("", "rag,closed", "RAG"):
        with pytest.raises(InputError):
            parse_modes(bad)
    questions = load_squad(squad_file).questions
    first, again = sample_questions(questions, 3), sample_questions(questions, 3)
    assert first == again and len(first) == 3  # the same questions on every run
    assert [q.id for q in first] == [q.id for q in questions if q in first]  # file order kept
    assert sample_questions(questions, 0) == questions == sample_questions(questions, 99)


# -- end to end ------------------------------------------------------------------------------


def test_compare_all_modes_scores_are_exact(
    make_remote_app, scripted, squad_file: Path, tmp_path: Path
) -> None:
    app = make_remote_app(FINETUNED.format(url=scripted.base_url), sync=())
    comparison = compare_modes(app, squad_file, "base,rag,finetuned,hybrid")
    scores = comparison.as_dict()["modes"]
    assert list(scores) == ["base", "rag", "finetuned", "hybrid"] and comparison.skipped == {}

    base, rag = scores["base"], scores["rag"]
    assert (base["questions"], base["answerable"], base["unanswerable"]) == (6, 4, 2)
    assert base["exact_match"] == 0.5 and base["f1"] == pytest.approx((1 + 1 + 0 + 0.75) / 4, abs=1e-4)
    assert base["abstention"] == 0.5 and base["false_abstention"] == 0.0
    assert base["overall_exact"] == 0.5 and base["overall_f1"] == pytest.approx(3.75 / 6, abs=1e-4)
    assert base["citation_correct"] is None  # closed book: nothing to cite

    assert rag["exact_match"] == 0.25 and rag["f1"] == pytest.approx(15 / 28, abs=1e-4)
    assert rag["abstention"] == 0.5 and rag["false_abstention"] == 0.25
    assert rag["citation_correct"] == pytest.approx(2 / 3, abs=1e-4)  # q3 answered without citing
    assert rag["contains_gold"] == 0.75 and base["contains_gold"] == 0.75  # "Paris", "1889", ...
    assert rag["overall_exact"] == pytest.approx(2 / 6, abs=1e-4)

    # The fine-tuned entry is its own model at the same endpoint: same script, same figures.
    assert scores["finetuned"]["model"] == "ft-test" and scores["hybrid"]["model"] == "ft-test"
    assert base["model"] == "gpt-test"
    for key in ("exact_match", "f1", "abstention", "false_abstention", "citation_correct"):
        assert scores["finetuned"][key] == base[key] and scores["hybrid"][key] == rag[key]

    # Token cost: counted (the endpoint reports none when streaming), retrieval makes prompts longer.
    replies = [CLOSED_BOOK[q["question"]] for p in SQUAD["data"][0]["paragraphs"] for q in p["qas"]]
    assert base["completion_tokens_mean"] == pytest.approx(
        sum(estimate_tokens(r) for r in replies) / 6, abs=0.1
    )
    assert base["tokens_from"] == "tokenizer" and base["fallbacks"] == 0
    assert rag["prompt_tokens_mean"] > base["prompt_tokens_mean"] > 0
    assert base["latency_ms_p95"] >= base["latency_ms_p50"] > 0
    requests = [r["body"]["model"] for r in scripted.requests if r["path"].endswith("/chat/completions")]
    assert requests.count("gpt-test") == 12 and requests.count("ft-test") == 12

    files = write_report(comparison, tmp_path / "report")
    names = {path.name for path in files}
    assert {"report.md", "report.html", "quality.png", "latency.png", "tokens.png", "answers.jsonl"} == names
    for chart in ("quality.png", "latency.png", "tokens.png"):
        with Image.open(tmp_path / "report" / chart) as image:
            assert image.format == "PNG" and image.size[0] >= 400
            image.verify()
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| rag | gpt-test | 0.250 | 0.536 | 0.750 | 0.500 | 0.250 | 0.667 |" in markdown
    assert "![quality](quality.png)" in markdown and "Skipped" not in markdown
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and 'src="quality.png"' not in page
    answers = [json.loads(line) for line in (tmp_path / "report" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 24
    q1 = next(a for a in answers if a["id"] == "q1" and a["mode"] == "rag")
    assert q1["exact"] == 1.0 and q1["citation_correct"] is True
    assert q1["cited"] == ["Landmarks and nature/paragraph-1"]
    q4 = next(a for a in answers if a["id"] == "q4" and a["mode"] == "rag")
    assert q4["abstained"] and not q4["answerable"] and q4["exact"] == 1.0


def test_missing_finetuned_model_is_reported_and_skipped(
    make_remote_app, scripted, squad_file: Path, tmp_path: Path
) -> None:
    app = make_remote_app(sync=())
    comparison = compare_modes(app, squad_file, "base,rag,finetuned,hybrid", max_questions=2)
    assert [s.mode for s in comparison.scores] == ["base", "rag"]
    assert set(comparison.skipped) == {"finetuned", "hybrid"}
    assert "[models.finetuned]" in comparison.skipped["finetuned"]
    assert comparison.questions == 2 and len(comparison.results) == 4
    write_report(comparison, tmp_path / "out")
    assert "Skipped **finetuned**: no fine-tuned model" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(InputError, match=r"nothing to compare.*\[models.finetuned\]"):
        compare_modes(app, squad_file, "finetuned,hybrid")
    assert not list(app.settings.data_dir.glob("eval-*"))  # the throwaway index is gone


def test_token_usage_reported_by_the_endpoint_is_believed(make_remote_app) -> None:
    from langchain_core.messages import AIMessageChunk, HumanMessage
    from langchain_core.outputs import ChatGenerationChunk, LLMResult

    meter = TokenMeter()
    model = metered(make_remote_app(sync=()).models["base"], meter)
    handler = model.runnable.callbacks[0]
    run = uuid.uuid4()
    handler.on_chat_model_start({}, [[HumanMessage("x" * 40)]], run_id=run)
    message = AIMessageChunk(
        content="Paris", usage_metadata={"input_tokens": 321, "output_tokens": 7, "total_tokens": 328}
    )
    handler.on_llm_end(LLMResult(generations=[[ChatGenerationChunk(message=message)]]), run_id=run)
    usage = meter.take()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reported) == (321, 7, True)
    # Without usage metadata the text is counted with the model's tokenizer (here, its estimate).
    handler.on_chat_model_start({}, [[HumanMessage("x" * 40)]], run_id=run)
    handler.on_llm_error(RuntimeError("stopped"), run_id=run, response=LLMResult(generations=[]))
    usage = meter.take()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reported) == (
        estimate_tokens("x" * 40),
        0,
        False,
    )


def test_cli_writes_the_report_and_prints_json(
    kb, write_config, scripted, squad_file: Path, tmp_path: Path
) -> None:
    from tests.conftest import BASE_CONFIG

    config = write_config(
        BASE_CONFIG.replace(
            'provider = "llamacpp"',
            f'provider = "openai"\nmodel = "gpt-test"\nbase_url = "{scripted.base_url}"',
        )
    )
    env = {**os.environ, "ARCHIVIST_CONFIG": str(config), "OPENAI_API_KEY": "test-key"}
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-c", "from bot.cli import main; main()", "eval", "compare"]
    out = tmp_path / "cli-report"
    result = subprocess.run(
        [*command, "--dataset", str(squad_file), "--out", str(out), "--max-questions", "3", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed["modes"]) == ["base", "rag"] and printed["questions"] == 3
    assert "skipped finetuned" in result.stderr and "skipped hybrid" in result.stderr
    assert (out / "report.html").is_file() and (out / "quality.png").is_file()

    (tmp_path / "broken.json").write_text('{"data": [{"paragraphs": 3}]}')
    broken = subprocess.run(
        [*command, "--dataset", str(tmp_path / "broken.json"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert "data[0].paragraphs: expected a list" in broken.stderr


def test_a_failing_finetuned_endpoint_is_counted_as_fallbacks(
    make_remote_app, scripted, squad_file: Path
) -> None:
    app = make_remote_app(FINETUNED.format(url="http://127.0.0.1:9/v1"), sync=())  # nothing listens there
    comparison = compare_modes(app, squad_file, "finetuned", max_questions=1)
    scores = comparison.as_dict()["modes"]["finetuned"]
    assert scores["model"] == "ft-test" and scores["fallbacks"] == 1  # the base model stood in
    assert comparison.results[0].fallback and comparison.results[0].answer


def test_quote_row_answers_from_the_paragraphs_without_the_model(
    make_remote_app, scripted, squad_file: Path
) -> None:
    app = make_remote_app(sync=())
    comparison = compare_modes(app, squad_file, "rag,quote")
    scores = comparison.as_dict()["modes"]
    assert list(scores) == ["rag", "quote"]
    quote = scores["quote"]
    assert quote["model"] == "gpt-test" and quote["prompt_tokens_mean"] == 0
    # Each quoted answer is a sentence of the paragraph it cites, and that paragraph is the right one.
    assert quote["citation_correct"] == 1.0 and quote["contains_gold"] >= 0.75
    contexts = {p["context"] for p in SQUAD["data"][0]["paragraphs"]}
    for result in comparison.results:
        if result.mode == "quote" and not result.abstained:
            sentence = result.answer.split(" [")[0]  # the first quote, up to its citation
            assert any(sentence in context for context in contexts), result.answer
    # Only the rag row asked the model: one request per question.
    requests = [r for r in scripted.requests if r["path"].endswith("/chat/completions")]
    assert len(requests) == 6
