from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None):
    path = tmp_path / "archivist.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ=environ or {})


def test_shipped_default_config_is_valid_and_embedded() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "config" / "archivist.toml", environ={})
    assert settings.store.backend == "lancedb"
    assert settings.redis.url == ""
    assert settings.models["base"].provider == "llamacpp"
    assert settings.connectors["handbook"].public is True
    assert Path(settings.connectors["handbook"].options()["path"]).is_dir()


def test_production_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "config" / "production.example.toml", environ={})
    assert settings.store.backend == "weaviate"
    assert "finetuned" in settings.models


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[retrieval]\ntop_k = 'many'\n", "retrieval.top_k"),
        ("[retrieval]\ntopk = 3\n", "retrieval.topk: unknown key"),
        ("[connectors.wiki]\ntype = 'sharepoint'\n", "connectors.wiki.type"),
        ("[models.base]\nprovider = 'openai'\napi_key = 'sk-123'\n", "models.base.api_key"),
        ("[models.other]\nprovider = 'openai'\n", "models"),
        ("[retrieval\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_bad_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert named in str(raised.value)
    assert "sk-123" not in str(raised.value)  # a secret never echoes back


def test_environment_overlays_the_file(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "data_dir = 'state'\n[redis]\nurl = 'redis://file:6379'\n",
        {"REDIS_URL": "redis://env:6379/2", "ARCHIVIST_DATA_DIR": str(tmp_path / "elsewhere")},
    )
    assert settings.redis.url == "redis://env:6379/2"
    assert settings.data_dir == tmp_path / "elsewhere"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    settings = _load(tmp_path, "data_dir = 'state'\n[connectors.kb]\ntype = 'filesystem'\npath = 'docs'\n")
    assert settings.data_dir == tmp_path / "state"
    assert settings.connectors["kb"].options()["path"] == str(tmp_path / "docs")


def test_sources_are_private_unless_configured_public(tmp_path: Path) -> None:
    settings = _load(tmp_path, "[connectors.kb]\ntype = 'filesystem'\npath = 'docs'\n")
    assert settings.connectors["kb"].public is False


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={"ARCHIVIST_CONFIG": str(tmp_path / "nope.toml")})


def test_connector_paths_resolve_but_clone_urls_do_not(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "[connectors.a]\ntype = 'git'\nrepo = 'repos/handbook'\ncache_dir = 'clones'\n"
        "[connectors.b]\ntype = 'git'\nrepo = 'https://git.example/org/handbook.git'\n"
        "[connectors.c]\ntype = 'git'\nrepo = 'git@git.example:org/handbook.git'\n",
    )
    assert settings.connectors["a"].options()["repo"] == str(tmp_path / "repos" / "handbook")
    assert settings.connectors["a"].options()["cache_dir"] == str(tmp_path / "clones")
    assert settings.connectors["b"].options()["repo"] == "https://git.example/org/handbook.git"
    assert settings.connectors["c"].options()["repo"] == "git@git.example:org/handbook.git"
