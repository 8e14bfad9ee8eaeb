"""Serving fine-tuned models: the promoted registry version answers, failures fall back to the base model.

The base model and the fine-tuned endpoint are two local servers speaking OpenAI's wire format.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from core.answering.answers import Question, Token
from core.errors import ConfigError
from core.models.fallbacks import CONFIG_FINETUNED, FallbackCounts
from core.models.registry import ModelVersion
from tests.fakes.openai_server import FakeOpenAI, fake_openai

VACATION = "How many vacation days do employees in the Netherlands get?"


@pytest.fixture
def tuned() -> Iterator[FakeOpenAI]:
    """The fine-tuned model's endpoint, apart from the base model's."""
    with fake_openai() as server:
        server.reply = "Fine-tuned: employees get 27 days [1]."
        yield server


def _finetuned_config(base_url: str, timeout_s: float = 5.0) -> str:
    return (
        f'\n[models.finetuned]\nprovider = "openai"\nmodel = "ft-config"\nbase_url = "{base_url}"\n'
        f"max_retries = 0\ntimeout_s = {timeout_s}\n"
        "\n[assistant]\npromotion_check_s = 0\n"
    )


def _models_sent(server: FakeOpenAI) -> list[str]:
    return [r["body"]["model"] for r in server.requests if r["path"].endswith("/chat/completions")]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_hybrid_answers_with_the_configured_finetuned_model(make_remote_app, openai_server, tuned) -> None:
    app = make_remote_app(_finetuned_config(tuned.base_url))
    answer = app.assistant.ask(Question(VACATION, mode="hybrid"))
    assert answer.model == "ft-config" and answer.text.startswith("Fine-tuned")
    assert answer.fallback is None and answer.mode == answer.route == "hybrid"
    assert _models_sent(tuned) == ["ft-config"] and _models_sent(openai_server) == []


@pytest.mark.parametrize("failure", ["http 500", "connection refused", "timeout"])
def test_a_failing_finetuned_endpoint_falls_back_to_the_base_model(
    make_remote_app, openai_server, tuned, failure: str
) -> None:
    url = tuned.base_url
    if failure == "http 500":
        tuned.fail_with = 500
    elif failure == "connection refused":
        url = f"http://127.0.0.1:{_closed_port()}/v1"
    else:
        tuned.delay_s = 2.0
    app = make_remote_app(_finetuned_config(url, timeout_s=0.3))
    openai_server.reply = "Base: employees in the Netherlands get 27 vacation days [1]."

    answer = app.assistant.ask(Question(VACATION, mode="hybrid"))

    assert answer.text.startswith("Base:") and answer.model == "gpt-test"  # the base model answered
    assert answer.route == "hybrid" and answer.mode == "rag"
    assert answer.fallback and answer.fallback.startswith(f"fine-tuned model {CONFIG_FINETUNED} failed")
    assert answer.sources and answer.sources[0].path.endswith("pto-policy.md")
    counted = FallbackCounts(app.redis).all()[CONFIG_FINETUNED]
    assert counted.count == 1 and counted.last_reason == answer.fallback
    assert answer.as_dict()["fallback"] == answer.fallback


def test_finetuned_mode_falls_back_to_answering_from_the_documents(
    make_remote_app, openai_server, tuned
) -> None:
    tuned.fail_with = 503
    app = make_remote_app(_finetuned_config(tuned.base_url))
    answer = app.assistant.ask(Question(VACATION, mode="finetuned"))
    assert answer.model == "gpt-test" and answer.mode == "rag" and answer.route == "finetuned"
    assert "503" in (answer.fallback or "") and answer.sources  # retrieval ran for the fallback

    off_topic = app.assistant.ask(Question("Who won the 1998 football World Cup?", mode="finetuned"))
    assert off_topic.abstained and off_topic.sources == [] and off_topic.fallback
    assert FallbackCounts(app.redis).all()[CONFIG_FINETUNED].count == 2


def test_a_failure_mid_stream_ends_the_answer_cleanly_without_falling_back(
    make_remote_app, openai_server, tuned
) -> None:
    tuned.reply = "Vacation is paid [1]. Employees in the Netherlands get twenty-seven days each year [1]."
    tuned.chunk_chars = 8
    tuned.error_after_chunks = 4  # 32 characters: the first sentence whole, the second begun
    app = make_remote_app(_finetuned_config(tuned.base_url))
    question = Question(VACATION, mode="hybrid")

    events = list(app.assistant.stream(question))

    streamed = "".join(e.text for e in events if isinstance(e, Token))
    answer = events[-1].answer
    # Text is shown a checked sentence at a time: the whole first sentence reached the screen and
    # stays; the half sentence after it never showed.
    assert streamed.startswith("Vacation is paid [1].") and "Employees in" not in streamed
    assert "The answer was cut off" in answer.text and answer.text == streamed
    assert answer.error and "mid-stream" in answer.error and answer.fallback is None
    assert (
        answer.model == "ft-config" and _models_sent(openai_server) == []
    )  # no second answer after the first
    assert CONFIG_FINETUNED not in FallbackCounts(app.redis).all()


def test_the_promoted_version_answers_and_rollback_returns_to_the_previous(
    make_remote_app, openai_server, tuned
) -> None:
    app = make_remote_app(_finetuned_config(tuned.base_url))
    registry = app.model_registry
    for name in ("v1", "v2"):
        registry.register(
            ModelVersion(
                name=name,
                kind="chat",
                provider="openai",
                model=f"ft:gpt-test:{name}",
                base_url=tuned.base_url,
            )
        )

    def ask() -> str:
        return app.assistant.ask(Question(VACATION, mode="hybrid")).model

    assert ask() == "ft-config"  # nothing promoted: [models.finetuned] from the config
    registry.promote("v1")
    assert ask() == "ft:gpt-test:v1"
    registry.promote("v2")
    assert ask() == "ft:gpt-test:v2"
    registry.rollback("chat")
    assert ask() == "ft:gpt-test:v1"
    registry.rollback("chat")
    assert ask() == "ft-config"
    assert _models_sent(tuned) == [
        "ft-config",
        "ft:gpt-test:v1",
        "ft:gpt-test:v2",
        "ft:gpt-test:v1",
        "ft-config",
    ]


def test_a_promoted_version_that_fails_is_counted_under_its_name(
    make_remote_app, openai_server, tuned
) -> None:
    app = make_remote_app("\n[assistant]\npromotion_check_s = 0\n")  # no [models.finetuned]
    tuned.fail_with = 502
    app.model_registry.register(
        ModelVersion(name="v1", kind="chat", provider="openai", model="ft:v1", base_url=tuned.base_url)
    )
    app.model_registry.register(
        ModelVersion(name="dir", kind="chat", provider="local", model="/models/merged")
    )

    app.model_registry.promote("v1")
    answer = app.assistant.ask(Question(VACATION, mode="hybrid"))
    assert answer.model == "gpt-test" and "fine-tuned model v1 failed" in (answer.fallback or "")

    app.model_registry.promote("dir")  # a model directory cannot answer: fall back, and say why
    answer = app.assistant.ask(Question(VACATION, mode="hybrid"))
    assert answer.model == "gpt-test" and "archivist serve-model" in (answer.fallback or "")
    counts = FallbackCounts(app.redis).all()
    assert counts["v1"].count == 1 and counts["dir"].count == 1


def test_finetuned_mode_without_any_finetuned_model_says_what_to_do(remote_model_app) -> None:
    with pytest.raises(ConfigError, match=r"archivist models promote NAME.*\[models\.finetuned\]"):
        remote_model_app.assistant.ask(Question(VACATION, mode="hybrid"))


def test_a_promotion_reaches_a_running_assistant_after_the_check_interval(
    make_remote_app, openai_server, tuned
) -> None:
    app = make_remote_app(
        _finetuned_config(tuned.base_url).replace("promotion_check_s = 0", "promotion_check_s = 3600")
    )
    app.model_registry.register(
        ModelVersion(name="v1", kind="chat", provider="openai", model="ft:v1", base_url=tuned.base_url)
    )
    assert app.assistant.ask(Question(VACATION, mode="hybrid")).model == "ft-config"
    app.model_registry.promote("v1")  # as another process would: this one still holds its cached lookup
    assert app.assistant.ask(Question(VACATION, mode="hybrid")).model == "ft-config"
    app.model_lineup.forget_promotion()  # what the check interval running out amounts to
    assert app.assistant.ask(Question(VACATION, mode="hybrid")).model == "ft:v1"


def test_auto_routes_by_examples_and_reports_why(make_remote_app, openai_server, tuned) -> None:
    app = make_remote_app(
        _finetuned_config(tuned.base_url).replace("[assistant]\n", '[assistant]\ndefault_mode = "auto"\n')
        + '\n[router.routes.rag]\nexamples = ["How many vacation days do we get?", "How do I set up the VPN?"]\n'
        '[router.routes.finetuned]\nexamples = ["Write a friendly welcome message for a new colleague."]\n'
    )
    policy = app.assistant.ask(Question("How many vacation days do employees in the Netherlands get?"))
    assert policy.route == "rag" and policy.model == "gpt-test"
    assert policy.route_reason.startswith("nearest examples: rag")

    writing = app.assistant.ask(Question("Write a short welcome message for Maria, our new designer."))
    assert writing.route == "finetuned" and writing.model == "ft-config" and writing.sources == []

    # Nothing relevant in the documents: the fine-tuned model answers rather than an abstention.
    elsewhere = app.assistant.ask(Question("Who won the 1998 football World Cup?"))
    assert (
        elsewhere.route == "finetuned" and "no passage passed the relevance floor" in elsewhere.route_reason
    )
