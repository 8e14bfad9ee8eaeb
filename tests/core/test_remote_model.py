"""The answer chain against an OpenAI-compatible endpoint (a local stand-in speaking its wire format)."""

import pytest

from core.answers import Question, Token
from core.errors import ModelError


def test_streams_from_an_openai_compatible_endpoint(remote_model_app, openai_server) -> None:
    openai_server.reply = "Employees get 27 days of paid vacation in the Netherlands [1]."
    events = list(remote_model_app.assistant.stream(Question("How many vacation days in the Netherlands?")))
    tokens = [e.text for e in events if isinstance(e, Token)]
    answer = events[-1].answer
    assert len(tokens) > 1  # streamed in pieces
    assert answer.model == "gpt-test" and answer.text.startswith("Employees get 27 days")
    assert answer.sources[0].path.endswith("pto-policy.md") and answer.sources[0].cited
    request = openai_server.requests[-1]["body"]
    assert request["model"] == "gpt-test" and request["stream"] is True
    assert "Bearer test-key" in openai_server.requests[-1]["headers"]["authorization"]


def test_endpoint_failure_is_a_model_error(remote_model_app, openai_server) -> None:
    openai_server.fail_with = 400
    with pytest.raises(ModelError, match="gpt-test"):
        remote_model_app.assistant.ask(Question("How many vacation days in the Netherlands?"))
