"""Connecting to Weaviate: a cluster at WEAVIATE_URL, Weaviate Cloud, or an embedded server.

Whichever it is, the connection is checked at once (the client's start-up checks,
then ``is_ready()``), so an unreachable Weaviate stops Archivist with one line
that names the URL and what to check, not a stack trace on the first question.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.extras import MissingExtra, is_missing  # before the optional packages it explains

try:
    from weaviate import WeaviateClient, connect_to_custom, connect_to_embedded, connect_to_weaviate_cloud
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout
    from weaviate.exceptions import (
        AuthenticationFailedError,
        UnexpectedStatusCodeError,
        WeaviateBaseError,
        WeaviateGRPCUnavailableError,
    )
except ImportError as exc:
    if is_missing(exc, "weaviate"):
        raise MissingExtra("weaviate") from exc
    raise

from core.errors import ConfigError, ServiceUnavailable
from core.settings import Settings

# Start-up gives up after this: a cluster that has not answered in 10 s is down, not slow.
INIT_TIMEOUT_S = 10
QUERY_TIMEOUT_S = 30  # one hybrid search, or one page of a listing
INSERT_TIMEOUT_S = 120  # one batch of chunks on a busy cluster
# Weaviate Cloud hosts: these connect through connect_to_weaviate_cloud with an API key.
CLOUD_SUFFIXES = (".weaviate.cloud", ".weaviate.network")
_REASON_CHARS = 300


@dataclass(frozen=True)
class Endpoint:
    """Where a self-hosted Weaviate listens: REST/GraphQL on the URL's port, gRPC beside it."""

    host: str
    http_port: int
    grpc_port: int
    secure: bool

    @property
    def cloud(self) -> bool:
        return self.host.endswith(CLOUD_SUFFIXES)


def parse_url(url: str, grpc_port: int) -> Endpoint:
    """``http://weaviate:8080`` → host, port and TLS; a URL without a scheme means http."""
    raw = url.strip()
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"WEAVIATE_URL: {url!r} is not an http(s) URL such as http://localhost:8080"
        raise ConfigError(msg)
    if parts.path not in ("", "/"):
        msg = f"WEAVIATE_URL: {url!r} has a path; Weaviate is served at the root of its host and port"
        raise ConfigError(msg)
    secure = parts.scheme == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:  # a port that is not a number, or out of range
        msg = f"WEAVIATE_URL: {url!r}: {exc}"
        raise ConfigError(msg) from exc
    return Endpoint(parts.hostname, port, grpc_port, secure)


def _timeouts() -> AdditionalConfig:
    timeout = Timeout(init=INIT_TIMEOUT_S, query=QUERY_TIMEOUT_S, insert=INSERT_TIMEOUT_S)
    return AdditionalConfig(timeout=timeout)


def _reason(exc: BaseException) -> str:
    """The client's message, on one line and short enough to read."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def unreachable_message(url: str, grpc_port: int, reason: str) -> str:
    return (
        f"cannot reach Weaviate at {url} ({reason}). Check that WEAVIATE_URL is right and that "
        f"Weaviate is running there, that its gRPC port {grpc_port} is open as well "
        "(store.weaviate_grpc_port), and for Weaviate Cloud that WEAVIATE_API_KEY is set"
    )


def connect(settings: Settings, environ: Mapping[str, str] | None = None) -> WeaviateClient:
    """A ready client for ``[store]``: embedded, Weaviate Cloud, or a self-hosted URL."""
    env = os.environ if environ is None else environ
    store = settings.store
    if store.weaviate_embedded:
        return _connect_embedded(settings)
    if not store.weaviate_url:
        msg = (
            "store.backend = 'weaviate' needs WEAVIATE_URL (or store.weaviate_url), "
            "or store.weaviate_embedded = true"
        )
        raise ConfigError(msg)
    endpoint = parse_url(store.weaviate_url, store.weaviate_grpc_port)
    api_key = env.get(store.weaviate_api_key_env, "")
    if endpoint.cloud and not api_key:
        msg = f"WEAVIATE_URL is a Weaviate Cloud cluster: set {store.weaviate_api_key_env} to its API key"
        raise ConfigError(msg)
    try:
        if endpoint.cloud:
            client = connect_to_weaviate_cloud(
                endpoint.host, Auth.api_key(api_key), additional_config=_timeouts()
            )
        else:
            client = connect_to_custom(
                http_host=endpoint.host,
                http_port=endpoint.http_port,
                http_secure=endpoint.secure,
                grpc_host=endpoint.host,
                grpc_port=endpoint.grpc_port,
                grpc_secure=endpoint.secure,
                auth_credentials=Auth.api_key(api_key) if api_key else None,
                additional_config=_timeouts(),
            )
    except (AuthenticationFailedError, UnexpectedStatusCodeError) as exc:
        if getattr(exc, "status_code", 401) in (401, 403):
            msg = (
                f"Weaviate at {store.weaviate_url} refused the credentials ({_reason(exc)}): "
                f"check {store.weaviate_api_key_env}"
            )
            raise ServiceUnavailable(msg) from exc
        raise ServiceUnavailable(
            unreachable_message(store.weaviate_url, endpoint.grpc_port, _reason(exc))
        ) from exc
    except WeaviateGRPCUnavailableError as exc:
        msg = (
            f"Weaviate at {store.weaviate_url} answers over HTTP but not over gRPC on port "
            f"{endpoint.grpc_port}: publish Weaviate's gRPC port (50051 by default) where Archivist "
            "can reach it, or set store.weaviate_grpc_port to the port it is published on"
        )
        raise ServiceUnavailable(msg) from exc
    except WeaviateBaseError as exc:
        raise ServiceUnavailable(
            unreachable_message(store.weaviate_url, endpoint.grpc_port, _reason(exc))
        ) from exc
    return _ready(client, store.weaviate_url, endpoint.grpc_port)


def _connect_embedded(settings: Settings) -> WeaviateClient:
    try:
        client = connect_to_embedded(
            persistence_data_path=str(settings.data_dir / "weaviate"),
            grpc_port=settings.store.weaviate_grpc_port,
            additional_config=_timeouts(),
        )
    except (WeaviateBaseError, OSError) as exc:
        msg = (
            f"embedded Weaviate did not start ({_reason(exc)}). It downloads its server binary from "
            "GitHub on first use, which needs internet access; otherwise run Weaviate yourself "
            "and set WEAVIATE_URL"
        )
        raise ServiceUnavailable(msg) from exc
    return _ready(client, "the embedded server", settings.store.weaviate_grpc_port)


def _ready(client: WeaviateClient, where: str, grpc_port: int) -> WeaviateClient:
    try:
        ready = client.is_ready()
    except WeaviateBaseError as exc:
        client.close()
        raise ServiceUnavailable(unreachable_message(where, grpc_port, _reason(exc))) from exc
    if not ready:
        client.close()
        raise ServiceUnavailable(unreachable_message(where, grpc_port, "it answers but is not ready yet"))
    return client
