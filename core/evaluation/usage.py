"""Token cost of answers: what each model call consumed, read off LangChain's callbacks.

An endpoint that reports usage (OpenAI does, with ``stream_usage``) is believed;
otherwise the prompt and the generated text are counted with the model's own
tokenizer (llama.cpp) or its estimate. The assistant's code is untouched: the
meter rides on a copy of each model as a callback.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from core.models.chat import ChatModel


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False  # True when an endpoint said so, False when counted here

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TokenMeter:
    """Adds up the calls of one answer; ``take`` returns the sum and starts over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = Usage()

    def add(self, prompt: int, completion: int, reported: bool) -> None:
        with self._lock:
            self._usage.prompt_tokens += prompt
            self._usage.completion_tokens += completion
            self._usage.reported = self._usage.reported or reported

    def take(self) -> Usage:
        with self._lock:
            usage, self._usage = self._usage, Usage()
        return usage


class _UsageHandler(BaseCallbackHandler):
    def __init__(self, meter: TokenMeter, model: ChatModel) -> None:
        self._meter = meter
        self._model = model
        self._prompts: dict[UUID, int] = {}

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._prompts[run_id] = sum(self._model.count_tokens(str(m.content)) for m in messages[0])

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._settle(run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # Also how a stream ends that the assistant stopped early (a looping model).
        self._settle(run_id, kwargs.get("response"))

    def _settle(self, run_id: UUID, response: LLMResult | None) -> None:
        prompt = self._prompts.pop(run_id, 0)
        generations = [g for batch in (response.generations if response else []) for g in batch]
        generated = next((g for g in generations if g.text), None)
        message = getattr(generated, "message", None)
        reported = getattr(message, "usage_metadata", None)
        if reported and reported.get("input_tokens"):
            self._meter.add(int(reported["input_tokens"]), int(reported.get("output_tokens", 0)), True)
            return
        text = generated.text if generated else ""
        self._meter.add(prompt, self._model.count_tokens(text) if text else 0, False)


def metered(model: ChatModel, meter: TokenMeter) -> ChatModel:
    """The same model, reporting each call's token use to ``meter``."""
    handler = _UsageHandler(meter, model)
    runnable = model.runnable.model_copy(update={"callbacks": [handler]})
    return replace(model, runnable=runnable)
