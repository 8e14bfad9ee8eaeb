"""The answer chain against an OpenAI-compatible endpoint (a local stand-in speaking its wire format)."""

import pytest

from core.answering.answers import Question, Token
from core.errors import ModelError


def test_streams_from_an_openai_compatible_endpoint(remote_model_app, openai_server) -> None:
    openai_server.reply = (
        "Employees get 27 days of paid vacation in the Netherlands [1]. "
        "Vacation is requested in the HR portal [1]."
    )
    events = list(remote_model_app.assistant.stream(Question("How many vacation days in the Netherlands?")))
    tokens = [e.text for e in events if isinstance(e, Token)]
    answer = events[-1].answer
    assert len(tokens) > 1  # streamed in pieces: a checked sentence at a time
    assert answer.model == "gpt-test" and answer.text.startswith("Employees get 27 days")
    assert answer.sources[0].path.endswith("pto-policy.md") and answer.sources[0].cited
    request = openai_server.requests[-1]["body"]
    assert request["model"] == "gpt-test" and request["stream"] is True
    assert "Bearer test-key" in openai_server.requests[-1]["headers"]["authorization"]


def test_endpoint_failure_is_a_model_error(remote_model_app, openai_server) -> None:
    openai_server.fail_with = 400
    with pytest.raises(ModelError, match="gpt-test"):
        remote_model_app.assistant.ask(Question("How many vacation days in the Netherlands?"))


def test_sync_and_search_with_an_openai_compatible_embeddings_endpoint(
    kb, write_config, openai_server, monkeypatch
) -> None:
    from core.app import App
    from core.retrieval.store.base import AccessFilter, SearchQuery
    from core.settings import load_settings
    from tests.conftest import BASE_CONFIG, stop_embedded_redis

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    config = BASE_CONFIG + (
        '\n[embeddings]\nprovider = "openai"\nmodel = "text-embedding-test"\n'
        f'base_url = "{openai_server.base_url}"\n'
        "batch_size = 16\n"
    )
    app = App(load_settings(write_config(config), environ={}))
    report = app.sync_engine.sync(app.connector("handbook"))
    assert report.added >= 25 and report.failed == 0
    batches = [r["body"]["input"] for r in openai_server.requests if r["path"].endswith("/embeddings")]
    assert len(batches) > 1 and max(len(b) for b in batches) <= 16  # batched as configured
    vector = app.embedder.embed_query("WireGuard VPN configuration portal")
    hits = app.store.search(
        SearchQuery("WireGuard VPN configuration portal", vector, limit=3), AccessFilter()
    )
    assert hits[0].chunk.document_id == "it/vpn-setup.html"
    stop_embedded_redis(app)
