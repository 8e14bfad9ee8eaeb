"""`archivist finetune retriever` and what selecting a new embedder does to the index.

The real bundled MiniLM is trained for one step on a handful of pairs; the
registry is the real one in an embedded Redis.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.app import App
from core.errors import ConfigError, InputError
from core.evaluation.beir import load_beir
from core.finetune.retriever import TuningOptions, batches, finetune_retriever, held_out, training_pairs
from core.models.embeddings import LocalEmbeddings, bundled_minilm_path, embedder_identity
from core.retrieval.store.base import AccessFilter, SearchQuery
from core.retrieval.store.lancedb_store import LanceDBStore
from core.settings import load_settings
from tests.beir_files import write_beir as write_beir_files
from tests.conftest import stop_embedded_redis

CORPUS = {
    "d1": (
        "Sourdough",
        "Sourdough bread rises with wild yeast and lactic acid bacteria over a long ferment.",
    ),
    "d2": ("Photosynthesis", "Plants convert light, water and carbon dioxide into glucose and oxygen."),
    "d3": ("Volcanoes", "Magma rising through the crust erupts as lava, ash and volcanic gases."),
    "d4": ("Tides", "The gravitational pull of the moon raises ocean tides twice a day."),
    "d5": ("Vaccines", "Vaccines train the immune system with harmless antigens to prevent disease."),
    "d6": (
        "Glaciers",
        "Glaciers form where snow accumulates faster than it melts and slowly flows downhill.",
    ),
}
QUERIES = {
    "q1": "What makes sourdough rise?",
    "q2": "What do plants make from sunlight?",
    "q3": "Why do volcanoes erupt?",
    "q4": "How does the moon cause tides?",
    "q5": "How do vaccines prevent illness?",
    "q6": "How are glaciers formed?",
}


def write_beir(directory: Path, qrels: dict[str, str] | None = None) -> Path:
    judged = qrels or {f"q{i}": f"d{i}" for i in range(1, 7)}
    return write_beir_files(directory, CORPUS, QUERIES, judged, "train")


def test_one_step_changes_the_embeddings_and_registers_the_version(app: App, tmp_path: Path) -> None:
    dataset = write_beir(tmp_path / "tiny")
    options = TuningOptions(batch_size=4, max_pairs=4, holdout=0.0, learning_rate=1e-4)
    result = finetune_retriever(app, dataset, options)
    assert (result.pairs, result.steps) == (4, 1) and result.before == {} == result.after

    version = app.model_registry.get(result.version.name)
    assert version.kind == "embedder" and version.provider == "local"
    assert version.base_model == "all-MiniLM-L6-v2" and len(version.training_data_hash) == 64
    assert Path(version.model).is_relative_to(app.settings.data_dir / "models")
    assert version in app.model_registry.list("embedder")

    text = "How does the moon cause tides?"
    tuned = np.array(LocalEmbeddings(version.model).embed_query(text))
    base = np.array(LocalEmbeddings(bundled_minilm_path()).embed_query(text))
    assert tuned.shape == base.shape == (384,)
    assert not np.allclose(tuned, base, atol=1e-5)  # the step moved the weights
    assert float(tuned @ base) > 0.9  # ... without forgetting what the model knew


def test_held_out_queries_are_scored_before_and_after(app: App, tmp_path: Path) -> None:
    dataset = write_beir(tmp_path / "tiny")
    result = finetune_retriever(app, dataset, TuningOptions(batch_size=4, holdout=0.5, name="tiny-v1"))
    heldout = [q for q in QUERIES if held_out(q, 0.5)]
    assert result.heldout_queries == len(heldout) > 0 and result.pairs == 6 - len(heldout)
    assert set(result.before) == set(result.after) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    assert 0 < result.before["ndcg@10"] <= 1 and 0 < result.after["ndcg@10"] <= 1
    scores = app.model_registry.get("tiny-v1").eval_scores
    assert (
        scores["ndcg@10"] == result.after["ndcg@10"] and scores["ndcg@10 (base)"] == result.before["ndcg@10"]
    )
    assert not list(app.settings.data_dir.glob("eval-*"))  # throwaway indexes are gone


def test_folds_pairs_and_batches_are_deterministic(tmp_path: Path) -> None:
    assert [held_out(q, 0.5) for q in QUERIES] == [held_out(q, 0.5) for q in QUERIES]
    assert not any(held_out(q, 0.0) for q in QUERIES)
    dataset = load_beir(write_beir(tmp_path / "tiny", {"q1": "d1", "q2": "d1", "q3": "d3"}), "train")
    pairs = training_pairs(dataset, ["q1", "q2", "q3"])
    assert len(pairs) == 3 and pairs[0] == (QUERIES["q1"], "Sourdough\n\n" + CORPUS["d1"][1])
    import random

    made = batches(pairs, 16, random.Random(1))
    for batch in made:  # d1 twice in one batch would be its own negative
        assert len({p for _, p in batch}) == len(batch) > 1


def test_bad_datasets_and_options_get_clear_messages(app: App, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a directory"):
        finetune_retriever(app, tmp_path / "nowhere", TuningOptions())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="corpus.jsonl is missing"):
        finetune_retriever(app, tmp_path / "empty", TuningOptions())
    with pytest.raises(InputError, match=r"dev.tsv is missing \(splits here: train\)"):
        finetune_retriever(app, write_beir(tmp_path / "tiny"), TuningOptions(split="dev"))
    with pytest.raises(InputError, match="only 1 .* pair"):
        finetune_retriever(app, write_beir(tmp_path / "one", {"q1": "d1"}), TuningOptions(holdout=0))
    with pytest.raises(InputError, match="batch-size"):
        finetune_retriever(app, tmp_path / "tiny", TuningOptions(batch_size=1))
    assert app.model_registry.list("embedder") == []


# -- selecting another embedder ---------------------------------------------------------------


def test_store_refuses_vectors_of_another_embedder_and_rebuilds_on_sync(tmp_path: Path) -> None:
    directory = tmp_path / "lancedb"
    first = LanceDBStore(directory, 8, embedder="model-a")
    first.upsert(*_chunks(2, 8), new_documents=True)
    assert first.count() == 2

    same = LanceDBStore(directory, 8, embedder="model-a")
    assert same.search(SearchQuery("x", [1.0] + [0.0] * 7, limit=5), AccessFilter()) != []

    for dims, embedder in ((8, "model-b"), (16, "model-a")):  # another model, or another size
        other = LanceDBStore(directory, dims, embedder=embedder)
        with pytest.raises(ConfigError, match="was built by the embedder model-a .* Run `archivist sync`"):
            other.search(SearchQuery("x", [1.0] + [0.0] * (dims - 1)), AccessFilter())
    switched = LanceDBStore(directory, 16, embedder="model-b")
    assert switched.indexed_documents("test") == {}  # what a sync asks first: the index starts over
    assert switched.count() == 0
    switched.upsert(*_chunks(1, 16), new_documents=True)
    reopened = LanceDBStore(directory, 16, embedder="model-b")
    assert reopened.count() == 1 and reopened.search(SearchQuery("x", [1.0] + [0.0] * 15), AccessFilter())


def _chunks(n: int, dims: int):  # noqa: ANN202
    from datetime import UTC, datetime

    from core.documents import Acl, Chunk

    chunks = [
        Chunk(
            id=f"doc{i}#0",
            document_id=f"doc{i}",
            source="test",
            title=f"Doc {i}",
            text=f"passage {i}",
            heading_path=(),
            position=0,
            url="",
            path=f"doc{i}.md",
            content_hash=f"h{i}",
            version="1",
            updated_at=datetime.now(UTC),
            acl=Acl.everyone(),
        )
        for i in range(n)
    ]
    return chunks, [[1.0] + [0.0] * (dims - 1)] * n


def test_selecting_a_model_directory_reindexes_every_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in (("tides", "The moon raises ocean tides."), ("bread", "Sourdough rises slowly.")):
        (docs / f"{name}.md").write_text(f"# {name}\n\n{text}\n")
    model = tmp_path / "my-embedder"
    shutil.copytree(bundled_minilm_path(), model)  # another model directory: a new embedder to the index
    base = f'data_dir = "data"\n[connectors.docs]\ntype = "filesystem"\npath = "{docs}"\npublic = true\n'
    config = tmp_path / "archivist.toml"

    config.write_text(base)
    before = App(load_settings(config, environ={}))
    assert before.sync_engine.sync(before.connector("docs")).added == 2
    stop_embedded_redis(before)

    config.write_text(base + '[embeddings]\npath = "my-embedder"\n')  # relative to the config file
    after = App(load_settings(config, environ={}))
    assert after.settings.embeddings.path == str(model)
    assert embedder_identity(after.settings.embeddings) != "all-MiniLM-L6-v2"
    with pytest.raises(ConfigError, match="Run `archivist sync`"):
        after.assistant.retrieve("tides", AccessFilter())
    report = after.sync_engine.sync(after.connector("docs"))
    assert (report.added, report.unchanged) == (2, 0)  # re-embedded by the new model, not skipped
    assert (
        after.assistant.retrieve("What raises the tides?", AccessFilter())[0].chunk.document_id == "tides.md"
    )
    stop_embedded_redis(after)

    config.write_text(base + '[embeddings]\npath = "nowhere"\n')
    with pytest.raises(ConfigError, match="embeddings.path: .*nowhere is not a sentence-transformers model"):
        _ = App(load_settings(config, environ={})).embedder


def test_a_polled_source_is_read_from_the_start_after_an_embedder_switch(tmp_path: Path) -> None:
    from tests.core.test_sync_resume import PolledSource

    model = tmp_path / "my-embedder"
    shutil.copytree(bundled_minilm_path(), model)
    source = PolledSource({f"p{n}": f"Page {n} on the release train." for n in range(12)})
    config = tmp_path / "archivist.toml"
    config.write_text('data_dir = "data"\n')
    before = App(load_settings(config, environ={}))
    before.sync_engine.sync(source)
    assert before.sync_status.checkpoint("wiki") == "12"
    stop_embedded_redis(before)

    config.write_text('data_dir = "data"\n[embeddings]\npath = "my-embedder"\n')
    after = App(load_settings(config, environ={}))
    report = after.sync_engine.sync(source)
    assert source.cursors_asked[-1] is None  # the saved cursor would skip every page
    assert report.added == 12 and after.store.count("wiki") == 12
    stop_embedded_redis(after)
