"""Which chat model answers, right now, and what happened when the fine-tuned one failed.

The base model comes from ``[models.base]``. The fine-tuned model is the chat version
promoted in the model registry when there is one, else ``[models.finetuned]`` from the
config, else none. Running bots pick up a promotion or rollback without a restart: the
promoted name is looked up at most once per ``promotion_check_s`` (one Redis call), and
a version's client is built once and reused.

Fallbacks (the fine-tuned model failed, the base model answered) are counted per
version in Redis (``core.models.fallbacks``), so ``archivist models list`` can show them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import redis

from core.errors import ArchivistError, ModelError
from core.models.chat import ChatModel, build_chat_model
from core.models.fallbacks import CONFIG_FINETUNED, FallbackCounts
from core.models.registry import ModelRegistry, ModelVersion
from core.settings import ModelSettings

log = logging.getLogger(__name__)


def version_settings(version: ModelVersion, template: ModelSettings) -> ModelSettings:
    """Settings for a registered chat version: its endpoint, the template's generation limits."""
    if version.provider == "openai":
        endpoint = {"provider": "openai", "model": version.model, "base_url": version.base_url, "path": ""}
    elif version.provider == "llamacpp":
        if not Path(version.model).is_file():
            msg = f"model version {version.name!r}: no GGUF file at {version.model}"
            raise ModelError(msg)
        endpoint = {"provider": "llamacpp", "model": version.name, "path": version.model, "base_url": ""}
    elif version.provider == "local":
        msg = (
            f"model version {version.name!r} is a local model directory, which cannot answer directly: "
            "serve it with `archivist serve-model` and register that endpoint"
        )
        raise ModelError(msg)
    else:
        msg = f"model version {version.name!r} has an unknown provider {version.provider!r}"
        raise ModelError(msg)
    return ModelSettings(**{**template.model_dump(), **endpoint})


class ModelLineup:
    """The base model and the fine-tuned model the answer chain should use now."""

    def __init__(
        self,
        models: dict[str, ChatModel],
        settings: dict[str, ModelSettings] | None = None,
        redis_client: Callable[[], redis.Redis] | None = None,
        check_s: float = 5.0,
    ) -> None:
        self._models = models
        self._settings = settings or {}
        self._redis_client = redis_client
        self._check_s = check_s
        self._lock = threading.Lock()
        self._promoted: str | None = None
        self._checked_at: float | None = None
        self._built: dict[str, ChatModel] = {}
        self._warned = False

    @property
    def base(self) -> ChatModel:
        return self._models["base"]

    def has_finetuned(self) -> bool:
        return self._promoted_name() is not None or "finetuned" in self._models

    def finetuned(self) -> ChatModel | None:
        """The promoted version, else the config's; ModelError when the promoted one cannot be built."""
        name = self._promoted_name()
        if name is None:
            return self._models.get("finetuned")
        with self._lock:
            built = self._built.get(name)
        if built is None:
            built = self._build(name)
            with self._lock:
                self._built[name] = built
        return built

    def forget_promotion(self) -> None:
        """Look the promoted version up again on the next question (after a promote in this process)."""
        with self._lock:
            self._checked_at = None
            self._built.clear()

    def label(self, model: ChatModel | None) -> str:
        """How a fine-tuned model is named in logs and fallback counts; None: the promoted one."""
        if model is not None:
            return model.version or CONFIG_FINETUNED
        with self._lock:
            return self._promoted or CONFIG_FINETUNED

    def record_fallback(self, label: str, reason: str) -> None:
        client = self._client()
        if client is None:
            return
        try:
            FallbackCounts(client).record(label, reason)
        except redis.RedisError as exc:
            log.warning("could not count a fallback of %s: %s", label, exc)

    # -- internals -----------------------------------------------------------

    def _client(self) -> redis.Redis | None:
        if self._redis_client is None:
            return None
        try:
            return self._redis_client()
        except ArchivistError as exc:
            self._warn_once(exc)
            return None

    def _promoted_name(self) -> str | None:
        now = time.monotonic()
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < self._check_s:
                return self._promoted
        name: str | None = None
        client = self._client()
        if client is not None:
            try:
                name = ModelRegistry(client).promoted_name("chat")
            except redis.RedisError as exc:
                self._warn_once(exc)
        with self._lock:
            if name != self._promoted:
                log.info("promoted chat model is now %s", name or "none (the config's models answer)")
            self._promoted, self._checked_at = name, now
        return name

    def _build(self, name: str) -> ChatModel:
        client = self._client()
        if client is None:
            msg = f"cannot read model version {name!r}: the registry (Redis) is unavailable"
            raise ModelError(msg)
        try:
            version = ModelRegistry(client).get(name)
        except (ArchivistError, redis.RedisError) as exc:
            msg = f"cannot read model version {name!r}: {exc}"
            raise ModelError(msg) from exc
        if version.kind != "chat":
            msg = f"model version {name!r} is an {version.kind}, not a chat model"
            raise ModelError(msg)
        template = self._settings.get("finetuned") or self._settings.get("base") or ModelSettings()
        try:
            model = build_chat_model(f"finetuned (version {name!r})", version_settings(version, template))
        except ArchivistError as exc:
            msg = f"cannot use model version {name!r}: {exc}"
            raise ModelError(msg) from exc
        return replace(model, version=name)

    def _warn_once(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("model registry unavailable (%s); using the models in the config file", exc)
