"""Named model versions (base and fine-tuned chat models, embedders) and which one is live.

Versions live in Redis so the CLI, the bots and the workers agree on the promoted
one. Promotion keeps a history per kind: ``rollback`` steps back to the version
promoted before. Nothing is ever deleted by promote or rollback.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import redis

from core.errors import InputError

ModelKind = Literal["chat", "embedder"]
KINDS: tuple[ModelKind, ...] = ("chat", "embedder")
_VERSIONS = "archivist:models:versions"
_PROMOTED = "archivist:models:promoted:{kind}"  # a list, newest promotion last


@dataclass(frozen=True)
class ModelVersion:
    name: str
    kind: ModelKind
    provider: str  # "openai" (any OpenAI-compatible endpoint), "llamacpp" or "local" (a model dir)
    model: str  # the model id at the endpoint, or a local path
    base_url: str = ""
    base_model: str = ""
    training_data_hash: str = ""
    created_at: float = field(default_factory=time.time)
    eval_scores: dict[str, float] = field(default_factory=dict)
    # How a fine-tune was made: steps, rows, the loss curve, held-out loss before/after, the
    # options, where its merged weights are. Empty for versions registered by hand.
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ModelVersion:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # a newer writer's fields are skipped


class ModelRegistry:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def register(self, version: ModelVersion) -> ModelVersion:
        if not version.name.strip():
            msg = "a model version needs a name"
            raise InputError(msg)
        if version.kind not in KINDS:
            msg = f"unknown model kind {version.kind!r} (known: {', '.join(KINDS)})"
            raise InputError(msg)
        self._redis.hset(_VERSIONS, version.name, version.to_json())
        return version

    def get(self, name: str) -> ModelVersion:
        raw = self._redis.hget(_VERSIONS, name)
        if raw is None:
            known = ", ".join(sorted(v.name for v in self.list())) or "none registered"
            msg = f"no model version named {name!r} (registered: {known})"
            raise InputError(msg)
        return ModelVersion.from_json(raw)

    def list(self, kind: ModelKind | None = None) -> list[ModelVersion]:
        versions = [ModelVersion.from_json(raw) for raw in self._redis.hvals(_VERSIONS)]
        return sorted((v for v in versions if kind is None or v.kind == kind), key=lambda v: v.created_at)

    def set_scores(self, name: str, scores: dict[str, float]) -> ModelVersion:
        version = self.get(name)
        updated = ModelVersion(**{**asdict(version), "eval_scores": {**version.eval_scores, **scores}})
        return self.register(updated)

    def promote(self, name: str) -> ModelVersion:
        version = self.get(name)
        key = _PROMOTED.format(kind=version.kind)
        if self._current(key) != name:
            self._redis.rpush(key, name)
        return version

    def promoted(self, kind: ModelKind = "chat") -> ModelVersion | None:
        name = self._current(_PROMOTED.format(kind=kind))
        return self.get(name) if name else None

    def promoted_name(self, kind: ModelKind = "chat") -> str | None:
        """Just the live version's name: one Redis call, cheap enough to ask per question."""
        return self._current(_PROMOTED.format(kind=kind))

    def rollback(self, kind: ModelKind = "chat") -> ModelVersion | None:
        """Go back to the version promoted before this one; None means back to the configured model."""
        key = _PROMOTED.format(kind=kind)
        if self._redis.llen(key) == 0:
            msg = f"nothing to roll back: no {kind} model has been promoted"
            raise InputError(msg)
        self._redis.rpop(key)
        return self.promoted(kind)

    def _current(self, key: str) -> str | None:
        raw = self._redis.lindex(key, -1)
        return raw.decode() if isinstance(raw, bytes) else raw
