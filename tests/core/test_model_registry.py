"""The model registry: versions by name, promotion history, rollback."""

from __future__ import annotations

import pytest

from core.app import App
from core.errors import InputError
from core.models.registry import ModelVersion


def _version(name: str, kind: str = "chat", created_at: float = 1.0) -> ModelVersion:
    return ModelVersion(name=name, kind=kind, provider="openai", model=f"ft:{name}", created_at=created_at)  # type: ignore[arg-type]


def test_promote_and_rollback_walk_the_history(app: App) -> None:
    registry = app.model_registry
    registry.register(_version("v1", created_at=1))
    registry.register(_version("v2", created_at=2))
    assert registry.promoted("chat") is None
    registry.promote("v1")
    registry.promote("v2")
    registry.promote("v2")  # promoting the live version twice does not stack it
    assert registry.promoted("chat").name == "v2"
    assert registry.rollback("chat").name == "v1"
    assert registry.rollback("chat") is None  # back to the configured model
    with pytest.raises(InputError, match="nothing to roll back"):
        registry.rollback("chat")


def test_kinds_are_promoted_independently_and_listed_oldest_first(app: App) -> None:
    registry = app.model_registry
    registry.register(_version("emb", kind="embedder", created_at=5))
    registry.register(_version("chat", created_at=3))
    registry.promote("emb")
    assert registry.promoted("chat") is None
    assert [v.name for v in registry.list()] == ["chat", "emb"]
    assert [v.name for v in registry.list("embedder")] == ["emb"]


def test_unknown_names_and_bad_versions_are_refused_clearly(app: App) -> None:
    registry = app.model_registry
    registry.register(_version("v1"))
    with pytest.raises(InputError, match=r"no model version named 'nope' \(registered: v1\)"):
        registry.promote("nope")
    with pytest.raises(InputError, match="needs a name"):
        registry.register(_version("  "))
    with pytest.raises(InputError, match="unknown model kind"):
        registry.register(_version("x", kind="vision"))


def test_scores_are_merged_into_the_version(app: App) -> None:
    registry = app.model_registry
    registry.register(_version("v1"))
    registry.set_scores("v1", {"f1": 0.4})
    registry.set_scores("v1", {"em": 0.2})
    assert registry.get("v1").eval_scores == {"f1": 0.4, "em": 0.2}


def test_a_fine_tunes_training_record_survives_and_newer_fields_are_skipped(app: App) -> None:
    registry = app.model_registry
    training = {"steps": 33, "loss_curve": [5.6, 4.1], "validation_loss_before": 4.7}
    registry.register(ModelVersion("lora", "chat", "llamacpp", "/m.gguf", training=training))
    assert registry.get("lora").training == training
    # A record written by a newer Archivist, with a field this one does not know, still reads.
    newer = '{"name": "n", "kind": "chat", "provider": "openai", "model": "m", "quantization": "q4"}'
    app.redis.hset("archivist:models:versions", "n", newer)
    assert registry.get("n").model == "m" and registry.get("n").training == {}
