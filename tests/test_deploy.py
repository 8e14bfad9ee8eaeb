"""The production deployment files hold together (Docker itself is not run here).

deploy/compose.yml, deploy/Dockerfile, deploy/.env.example and config/production.toml
must agree: the services a user expects, commands the CLI really has, secrets only
from the environment, and every variable the compose file needs documented.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app as cli
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ARCHIVIST_SERVICES = {"worker": ["worker"], "slack": ["serve", "slack"], "discord": ["serve", "discord"]}
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yml").read_text(encoding="utf-8"))


def test_compose_runs_the_five_services(compose: dict) -> None:
    assert set(compose["services"]) == {"weaviate", "redis", *ARCHIVIST_SERVICES}
    assert set(compose["volumes"]) == {"weaviate-data", "redis-data", "archivist-data"}


def test_archivist_services_share_one_image_and_run_real_commands(compose: dict) -> None:
    runner = CliRunner()
    for name, command in ARCHIVIST_SERVICES.items():
        service = compose["services"][name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["command"] == command
        assert runner.invoke(cli, [*command, "--help"]).exit_code == 0, f"`archivist {' '.join(command)}`"
        environment = service["environment"]
        assert environment["WEAVIATE_URL"] == "http://weaviate:8080"
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["ARCHIVIST_CONFIG"] == "/app/config/production.toml"
        assert service["depends_on"]["weaviate"]["condition"] == "service_healthy"
    assert compose["services"]["slack"]["profiles"] == ["slack"]
    assert compose["services"]["discord"]["profiles"] == ["discord"]
    assert "profiles" not in compose["services"]["worker"]  # syncing runs whatever bots are on


def test_weaviate_persists_and_publishes_grpc(compose: dict) -> None:
    weaviate = compose["services"]["weaviate"]
    assert "semitechnologies/weaviate:" in weaviate["image"]
    environment = weaviate["environment"]
    assert f"weaviate-data:{environment['PERSISTENCE_DATA_PATH']}" in weaviate["volumes"]
    assert any(port.endswith(":50051") for port in weaviate["ports"])
    assert all(port.startswith("127.0.0.1:") for port in weaviate["ports"])  # not open to the network
    assert environment["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    # The key Weaviate accepts is the key Archivist sends.
    accepted = _VARIABLE.findall(environment["AUTHENTICATION_APIKEY_ALLOWED_KEYS"])
    assert accepted == _VARIABLE.findall(compose["services"]["worker"]["environment"]["WEAVIATE_API_KEY"])
    assert "/v1/.well-known/ready" in " ".join(weaviate["healthcheck"]["test"])
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"] and "redis-data:/data" in redis["volumes"]


def test_secrets_come_only_from_the_environment(compose: dict) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"(KEY|KEYS|TOKEN|SECRET|PASSWORD)$", key):
                assert str(value).startswith("${"), f"{name}.{key} holds a literal secret"


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = set(_VARIABLE.findall((DEPLOY / "compose.yml").read_text(encoding="utf-8")))
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert used <= documented, sorted(used - documented)
    assert not re.search(r"^[A-Z_]*(KEY|TOKEN)=\S", example, flags=re.MULTILINE)  # no sample secrets
    assert "deploy/.env" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_production_config_matches_the_compose_file(compose: dict) -> None:
    settings = load_settings(ROOT / "config" / "production.toml", environ={})
    assert settings.store.backend == "weaviate"
    worker = compose["services"]["worker"]
    assert str(settings.data_dir) == worker["environment"]["ARCHIVIST_DATA_DIR"]
    assert any(volume.endswith(f":{settings.data_dir}") for volume in worker["volumes"])
    mounted = {re.sub(r"\$\{[^}]*\}", "HOST", volume).split(":")[1] for volume in worker["volumes"]}
    for name, source in settings.connectors.items():
        assert source.options()["path"] in mounted, f"connectors.{name} reads a path compose does not mount"
        assert source.interval_s, f"connectors.{name} has no interval_s, so the worker never syncs it"
    for model in settings.models.values():
        assert model.api_key_env in worker["environment"]


def test_dockerfile_copies_what_exists_and_uses_the_production_config() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", dockerfile, flags=re.MULTILINE)
    for line in copied:
        for path in line.split():
            assert (ROOT / path).exists(), path
    assert "ARCHIVIST_CONFIG=/app/config/production.toml" in dockerfile
    assert "COPY config /app/config" in dockerfile
    assert "torch==2.13.0" in dockerfile and "whl/cpu" in dockerfile  # the CPU build, as pyproject pins
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert not {"core", "bot", "connectors", "config", "pyproject.toml", "README.md"} & set(ignored)
