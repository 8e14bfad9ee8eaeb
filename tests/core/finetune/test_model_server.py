"""`serve-model`: a local model behind OpenAI's chat API, called with the client the app itself uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from core.errors import InputError
from core.finetune.model_server import LocalChatModel, ModelServer, open_model

QUESTION = [SystemMessage("You are Archivist."), HumanMessage("How many vacation days do I get?")]


@pytest.fixture(scope="module")
def local_model(tiny_model: Path) -> LocalChatModel:
    return open_model(tiny_model, "archivist-tiny")


@pytest.fixture
def server(local_model: LocalChatModel) -> Iterator[ModelServer]:
    running = ModelServer(local_model, port=0).start()
    yield running
    running.stop()


def _chat(server: ModelServer, **options) -> ChatOpenAI:
    defaults = {"temperature": 0, "max_tokens": 12, "max_retries": 0, "timeout": 60}
    return ChatOpenAI(
        model="archivist-tiny", base_url=server.base_url, api_key="unused", **{**defaults, **options}
    )


def test_streaming_and_plain_answers_agree(server: ModelServer) -> None:
    plain = _chat(server).invoke(QUESTION)
    streamed = list(_chat(server, streaming=True).stream(QUESTION))
    assert isinstance(plain.content, str) and plain.content
    assert len(streamed) > 2  # token by token, not one block
    assert "".join(str(chunk.content) for chunk in streamed) == plain.content
    usage = plain.response_metadata["token_usage"]
    assert usage["completion_tokens"] <= 12 and usage["prompt_tokens"] > 10
    assert plain.response_metadata["finish_reason"] in ("stop", "length")


def test_token_limit_and_stop_sequences(server: ModelServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "Tell me about the handbook."}]
    long = client.chat.completions.create(
        model="archivist-tiny", messages=messages, max_tokens=40, temperature=0
    )
    short = client.chat.completions.create(
        model="archivist-tiny", messages=messages, max_tokens=3, temperature=0
    )
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    text = long.choices[0].message.content
    assert len(text) > 8 and text.startswith(short.choices[0].message.content)

    stop = text[4:6]  # greedy decoding repeats itself exactly, so this stop is met
    stopped = client.chat.completions.create(
        model="archivist-tiny", messages=messages, max_tokens=40, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].message.content == text[: text.find(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(
        model="archivist-tiny", messages=messages, max_tokens=40, temperature=0, stop=stop, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text[: text.find(stop)]


def test_models_list_and_bad_requests(server: ModelServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["archivist-tiny"]
    with pytest.raises(openai.NotFoundError, match="this server serves 'archivist-tiny'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="role must be system, user or assistant"):
        client.chat.completions.create(model="archivist-tiny", messages=[{"role": "tool", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="maximum context length is 512"):
        client.chat.completions.create(
            model="archivist-tiny", messages=[{"role": "user", "content": "word " * 2000}]
        )
    raw = httpx.post(f"{server.base_url}/chat/completions", content=b"{oops", timeout=10)
    assert raw.status_code == 400 and "not valid JSON" in raw.json()["error"]["message"]


def test_an_api_key_can_be_required(local_model: LocalChatModel) -> None:
    guarded = ModelServer(local_model, port=0, api_key="s3cret").start()
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=guarded.base_url, api_key="wrong", max_retries=0).models.list()
        allowed = openai.OpenAI(base_url=guarded.base_url, api_key="s3cret", max_retries=0)
        assert [m.id for m in allowed.models.list()] == ["archivist-tiny"]
    finally:
        guarded.stop()


def test_a_missing_model_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no model directory"):
        open_model(tmp_path / "nope")
