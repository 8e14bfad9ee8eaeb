"""The router: explicit mode, then the channel's mode, then default_mode; `auto` routes by example questions."""

from __future__ import annotations

import pytest

from core.answering.access import ChannelPolicy, channel_question, direct_question
from core.answering.answers import Question
from core.answering.router import Route, Router
from core.errors import ConfigError
from core.settings import RouterSettings, load_settings

ROUTES = {
    "rag": {
        "examples": [
            "How many vacation days do employees get?",
            "What is the policy for travel expenses?",
            "How do I set up the VPN on my laptop?",
            "Who approves the learning budget?",
        ]
    },
    "finetuned": {
        "examples": [
            "Write a friendly welcome message for a new colleague.",
            "Draft a short announcement for the team channel.",
            "Rephrase this paragraph in a warmer tone.",
            "Write a thank-you note to the office manager.",
        ]
    },
}


@pytest.fixture
def router(app) -> Router:
    return Router(RouterSettings.model_validate({"routes": ROUTES, "threshold": 0.3}), "auto", app.embedder)


def test_policy_questions_go_to_rag_and_writing_requests_to_finetuned(router: Router) -> None:
    # decide() routes the text it is given: the standalone query, after condensing a follow-up
    rag = router.decide(Question("x"), "How many days of paid leave do I get per year?", True)
    writing = router.decide(Question("x"), "Draft a welcome note for Maria, who joins the design team", True)
    assert rag.mode == "rag" and rag.automatic
    assert writing.mode == "finetuned" and writing.automatic
    assert rag.reason.startswith("nearest examples: rag ") and " vs finetuned " in rag.reason
    assert writing.reason.startswith("nearest examples: finetuned ")
    scores = router.scores("Draft a welcome note for Maria, who joins the design team")
    assert scores["finetuned"] > scores["rag"]


def test_a_question_near_no_route_takes_the_default_route(app) -> None:
    settings = RouterSettings.model_validate({"routes": ROUTES, "threshold": 0.6, "default": "rag"})
    route = Router(settings, "auto", app.embedder).decide(
        Question("x"), "Who won the 1998 football World Cup?", True
    )
    assert route.mode == "rag"
    assert "no route is close enough" in route.reason and "threshold 0.60" in route.reason
    assert route.reason.endswith("default route rag")


def test_finetuned_routes_are_skipped_while_no_finetuned_model_exists(router: Router) -> None:
    route = router.decide(Question("x"), "Draft a welcome note for Maria, who joins the design team", False)
    assert route.mode == "rag"
    assert "finetuned skipped: no fine-tuned model" in route.reason


def test_explicit_mode_wins_over_the_channel_which_wins_over_auto(router: Router) -> None:
    policy = ChannelPolicy(channel_modes={"C1": "rag", "C2": "auto"})
    common = {"platform": "slack", "workspace": "T1", "thread": "1", "policy": policy}
    writing = "Draft a welcome note for Maria, who joins the design team"

    explicit = channel_question(writing, channel="C1", mode="hybrid", **common)
    assert router.decide(explicit, writing, True) == Route("hybrid", "mode given")

    by_channel = channel_question(writing, channel="C1", **common)
    assert router.decide(by_channel, writing, True) == Route("rag", "channel C1 is set to rag")

    auto_channel = router.decide(channel_question(writing, channel="C2", **common), writing, True)
    assert auto_channel.mode == "finetuned"
    assert auto_channel.reason.startswith("channel C2 is set to auto: nearest examples: finetuned")

    unlisted = router.decide(channel_question(writing, channel="C9", **common), writing, True)
    assert unlisted.mode == "finetuned" and unlisted.reason.startswith("nearest examples:")

    dm = direct_question(writing, platform="slack", workspace="T1", user="U1", channel="D1")
    assert router.decide(dm, writing, True).automatic  # channel modes are for channels, DMs use the default


def test_default_mode_other_than_auto_never_embeds(app) -> None:
    class NoEmbedding:
        def embed_query(self, text: str) -> list[float]:
            raise AssertionError("a fixed default mode must not embed anything")

        embed_documents = embed_query

    router = Router(RouterSettings.model_validate({"routes": ROUTES}), "hybrid", NoEmbedding())  # type: ignore[arg-type]
    assert router.decide(Question("anything"), "anything", True) == Route(
        "hybrid", "[assistant] default_mode is hybrid"
    )


def test_auto_without_examples_uses_the_default_route(app) -> None:
    route = Router(RouterSettings(), "auto", app.embedder).decide(
        Question("x"), "How do I set up the VPN?", True
    )
    assert route == Route("rag", "no [router.routes] examples configured; default route rag", automatic=True)


def test_nothing_found_sends_only_auto_routed_questions_to_finetuned(router: Router) -> None:
    auto = Route("rag", "nearest examples: rag 0.50 vs finetuned 0.20", automatic=True)
    switched = router.after_empty_retrieval(auto, finetuned_available=True)
    assert switched.mode == "finetuned" and "no passage passed the relevance floor" in switched.reason
    assert router.after_empty_retrieval(auto, finetuned_available=False) == auto
    chosen = Route("rag", "--mode given")
    assert router.after_empty_retrieval(chosen, finetuned_available=True) == chosen


def test_blank_examples_are_a_config_error(app) -> None:
    settings = RouterSettings.model_validate({"routes": {"rag": {"examples": ["  "]}}})
    with pytest.raises(ConfigError, match=r"router.routes.rag.examples"):
        Router(settings, "auto", app.embedder).decide(Question("x"), "vpn", True)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ('[slack]\nchannel_modes = { C1 = "smart" }\n', "slack.channel_modes.C1"),
        ('[discord]\nchannel_modes = { 42 = "fast" }\n', "discord.channel_modes.42"),
        ('[router.routes.chitchat]\nexamples = ["hi"]\n', "router.routes.chitchat"),
        ('[assistant]\ndefault_mode = "magic"\n', "assistant.default_mode"),
        ("[router]\nthreshold = 2\n", "router.threshold"),
    ],
)
def test_bad_routing_config_names_its_key(write_config, config: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write_config(config), environ={})


def test_channel_modes_and_routes_load_from_config(write_config) -> None:
    settings = load_settings(
        write_config(
            '[assistant]\ndefault_mode = "auto"\n'
            '[slack]\nchannel_modes = { C1 = "rag", C2 = "hybrid" }\n'
            '[discord]\nchannel_modes = { "1234" = "finetuned" }\n'
            '[router.routes.rag]\nexamples = ["How do I set up the VPN?"]\n'
        ),
        environ={},
    )
    assert ChannelPolicy.from_settings(settings.slack).channel_modes == {"C1": "rag", "C2": "hybrid"}
    assert ChannelPolicy.from_settings(settings.discord).channel_modes == {"1234": "finetuned"}
    assert settings.router.routes["rag"].examples == ["How do I set up the VPN?"]
