"""The local embedder's backends: PyTorch in float32 or bfloat16, ONNX Runtime, and ONNX
Runtime with int8 weights.

Real model, real export (once per process, from the bundled weights; nothing downloaded),
real index: what a user notices is whether answers find the same passages, whether a
switch of backend rebuilds the index when it must and only then, and what a sync keeps
when something fails midway.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.app import App
from core.errors import ConfigError, ModelError
from core.models import embeddings, onnx_export
from core.models.embeddings import bundled_minilm_path, embedder_identity, local_embeddings, native_bfloat16
from core.models.onnx_export import MATCH_COSINE, OnnxEmbeddings, weights_digest
from core.retrieval.store.base import AccessFilter
from core.settings import EmbeddingSettings, load_settings
from tests.conftest import stop_embedded_redis

TEXTS = [
    "How do I request a new laptop?",
    "Deploys are frozen on Fridays after 3pm; ask #release for an exception.",
    "The on-call engineer acknowledges a page within 15 minutes, day or night, and hands over "
    "open incidents at the Monday stand-up with a written summary of what was tried.",
]


def _config(tmp_path: Path, backend: str) -> Path:
    docs = tmp_path / "docs"
    if not docs.exists():
        docs.mkdir()
        for name, text in (
            ("tides", "The moon raises ocean tides twice a day."),
            ("bread", "Sourdough rises slowly in a cool kitchen."),
            ("oncall", "The on-call engineer acknowledges a page within fifteen minutes."),
        ):
            (docs / f"{name}.md").write_text(f"# {name}\n\n{text}\n")
    config = tmp_path / "archivist.toml"
    config.write_text(
        f'data_dir = "data"\n[embeddings]\nbackend = "{backend}"\n'
        f'[connectors.docs]\ntype = "filesystem"\npath = "{docs}"\npublic = true\n'
    )
    return config


def test_onnx_gives_pytorchs_vectors_and_int8_stays_close(tmp_path: Path) -> None:
    torch_vectors = np.array(local_embeddings(bundled_minilm_path(), "torch").embed_documents(TEXTS))
    onnx = local_embeddings(bundled_minilm_path(), "onnx", tmp_path)
    int8 = local_embeddings(bundled_minilm_path(), "onnx-int8", tmp_path)
    onnx_vectors = np.array(onnx.embed_documents(TEXTS))
    int8_vectors = np.array(int8.embed_documents(TEXTS))

    assert onnx_vectors.shape == torch_vectors.shape == (3, 384)
    assert np.min(np.sum(onnx_vectors * torch_vectors, axis=1)) >= MATCH_COSINE
    assert np.allclose(np.linalg.norm(int8_vectors, axis=1), 1.0, atol=1e-5)
    # int8 moves vectors a little (not enough to share an index), never so far as to change the meaning.
    closeness = np.sum(int8_vectors * torch_vectors, axis=1)
    assert np.min(closeness) > 0.95
    assert onnx.embed_query(TEXTS[1]) == pytest.approx(onnx_vectors[1].tolist(), abs=1e-5)
    assert onnx.embed_documents([]) == []


needs_native_bfloat16 = pytest.mark.skipif(
    not native_bfloat16(), reason="this CPU has no native bfloat16 (AMX or AVX512-BF16)"
)


@needs_native_bfloat16
def test_bfloat16_gives_pytorchs_vectors_and_auto_chooses_it_on_this_cpu() -> None:
    torch_vectors = np.array(local_embeddings(bundled_minilm_path(), "torch").embed_documents(TEXTS))
    bf16 = local_embeddings(bundled_minilm_path(), "torch-bf16")
    bf16_vectors = np.array(bf16.embed_documents(TEXTS))

    assert (
        bf16.precision == "bfloat16"
        and local_embeddings(bundled_minilm_path(), "auto").precision == "bfloat16"
    )
    assert np.min(np.sum(bf16_vectors * torch_vectors, axis=1)) >= MATCH_COSINE
    assert not np.array_equal(bf16_vectors, torch_vectors)  # bfloat16 really ran
    assert np.allclose(np.linalg.norm(bf16_vectors, axis=1), 1.0, atol=1e-5)
    # Alone or in a padded batch, bfloat16 rounds a little differently; the meaning stays.
    assert float(np.array(bf16.embed_query(TEXTS[0])) @ bf16_vectors[0]) >= MATCH_COSINE
    assert bf16.embed_documents([]) == []
    for backend in ("auto", "torch-bf16"):  # the same vectors: the same index
        assert embedder_identity(EmbeddingSettings(backend=backend)) == embedder_identity(EmbeddingSettings())


def test_without_native_bfloat16_the_cpu_runs_float32_and_says_so_when_asked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embeddings, "native_bfloat16", lambda: False)  # emulated bfloat16 is slower
    with caplog.at_level(logging.WARNING, logger="core.models.embeddings"):
        assert local_embeddings(bundled_minilm_path(), "auto").precision == "float32"
        assert not caplog.records  # auto chooses quietly
        assert local_embeddings(bundled_minilm_path(), "torch-bf16").precision == "float32"
    assert "no native bfloat16" in caplog.text


@needs_native_bfloat16
def test_a_model_bfloat16_would_move_runs_in_float32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "strict"
    shutil.copytree(bundled_minilm_path(), copy)  # its own path: a load of its own
    monkeypatch.setattr(embeddings, "MATCH_COSINE", 1.01)  # no bfloat16 vector is that close
    embedder = local_embeddings(str(copy), "torch-bf16")
    with caplog.at_level(logging.WARNING, logger="core.models.embeddings"):
        vector = np.array(embedder.embed_query(TEXTS[0]))
    assert embedder.precision == "float32" and "moves the vectors" in caplog.text
    reference = np.array(local_embeddings(bundled_minilm_path(), "torch").embed_query(TEXTS[0]))
    assert np.allclose(vector, reference, atol=1e-5)  # float32's own vectors, not bfloat16's


def test_the_export_is_made_from_local_weights_into_the_data_dir_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_export, "_KNOWN", {})  # forget exports other tests' data dirs hold
    embedder = local_embeddings(bundled_minilm_path(), "onnx-int8", tmp_path / "data")
    embedder.embed_query("warm up")
    folder = tmp_path / "data" / "embedders" / weights_digest(bundled_minilm_path())
    assert (folder / "model.onnx").is_file() and (folder / "model-int8.onnx").is_file()
    made = (folder / "model-int8.onnx").stat().st_mtime_ns

    again = OnnxEmbeddings(bundled_minilm_path(), tmp_path / "data", quantized=True)
    assert again.dimensions == 384
    again.embed_query("no second export")
    assert (folder / "model-int8.onnx").stat().st_mtime_ns == made


def test_retrained_weights_are_another_export(tmp_path: Path) -> None:
    copy = tmp_path / "tuned"
    shutil.copytree(bundled_minilm_path(), copy)
    assert weights_digest(str(copy)) == weights_digest(bundled_minilm_path())  # same weights, same export
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight differs: the export must not be reused
    weights.write_bytes(bytes(data))
    assert weights_digest(str(copy)) != weights_digest(bundled_minilm_path())


def test_backends_that_reproduce_the_vectors_share_an_index_others_rebuild_it(tmp_path: Path) -> None:
    torch_app = App(load_settings(_config(tmp_path, "torch"), environ={}))
    assert torch_app.sync_engine.sync(torch_app.connector("docs")).added == 3
    stop_embedded_redis(torch_app)

    for backend in ("onnx", "torch-bf16"):
        same_app = App(load_settings(_config(tmp_path, backend), environ={}))
        assert embedder_identity(same_app.settings.embeddings) == embedder_identity(
            torch_app.settings.embeddings
        )
        report = same_app.sync_engine.sync(same_app.connector("docs"))
        assert (report.added, report.unchanged) == (0, 3)  # same vectors: nothing re-embedded
        found = same_app.assistant.retrieve("What raises the tides?", AccessFilter())
        assert found[0].chunk.document_id == "tides.md"
        stop_embedded_redis(same_app)

    int8_app = App(load_settings(_config(tmp_path, "onnx-int8"), environ={}))
    with pytest.raises(ConfigError, match="Run `archivist sync`"):  # never int8 queries on float vectors
        int8_app.assistant.retrieve("tides", AccessFilter())
    report = int8_app.sync_engine.sync(int8_app.connector("docs"))
    assert (report.added, report.unchanged) == (3, 0)
    found = int8_app.assistant.retrieve(
        "How fast does the on-call engineer acknowledge a page?", AccessFilter()
    )
    assert found[0].chunk.document_id == "oncall.md"
    stop_embedded_redis(int8_app)


def test_an_unknown_backend_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="backend"):
        load_settings(_config(tmp_path, "tensorrt"), environ={})
    assert EmbeddingSettings().backend == "auto"  # the measured default (docs/models.md)


def test_an_unwritable_data_dir_says_where_the_export_could_not_go(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    fresh = tmp_path / "fresh-model"
    shutil.copytree(bundled_minilm_path(), fresh)
    (fresh / "config.json").write_text((fresh / "config.json").read_text() + " ")  # never exported yet
    embedder = local_embeddings(str(fresh), "onnx", blocked)
    with pytest.raises(ModelError, match="cannot write the ONNX export"):
        embedder.embed_query("anything")


def test_a_finetuned_embedder_runs_through_onnx_and_bfloat16_too(make_app, tmp_path: Path) -> None:
    from core.finetune.retriever import TuningOptions, finetune_retriever
    from tests.core.test_retriever_finetune import write_beir

    app = make_app(
        'data_dir = "data"\n[embeddings]\nbackend = "onnx"\n'
        '[connectors.handbook]\ntype = "filesystem"\npath = "kb"\npublic = true\n'
    )
    options = TuningOptions(batch_size=4, max_pairs=4, holdout=0.0, learning_rate=1e-4)
    tuned = finetune_retriever(app, write_beir(tmp_path / "tiny"), options).version.model
    # Exported with the fine-tune, keyed by its own weights: not the bundled model's export.
    export = app.settings.data_dir / "embedders" / weights_digest(tuned) / "model.onnx"
    assert weights_digest(tuned) != weights_digest(bundled_minilm_path()) and export.is_file()

    made = export.stat().st_mtime_ns
    text = "How does the moon cause tides?"
    via_onnx = np.array(local_embeddings(tuned, "onnx", app.settings.data_dir).embed_query(text))
    via_torch = np.array(local_embeddings(tuned, "torch").embed_query(text))
    bundled = np.array(
        local_embeddings(bundled_minilm_path(), "onnx", app.settings.data_dir).embed_query(text)
    )
    assert float(via_onnx @ via_torch) >= MATCH_COSINE
    assert not np.allclose(via_onnx, bundled, atol=1e-5)  # the fine-tune's vectors, not the base model's
    if native_bfloat16():  # and bfloat16 runs it as it runs the bundled model
        via_bf16 = local_embeddings(tuned, "torch-bf16")
        assert via_bf16.precision == "bfloat16"
        assert float(np.array(via_bf16.embed_query(text)) @ via_torch) >= MATCH_COSINE
    assert export.stat().st_mtime_ns == made  # used, not exported again
