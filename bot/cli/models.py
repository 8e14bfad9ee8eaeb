"""`archivist models`: list, register, promote and roll back model versions.

The bots read the promoted chat version per question (with a short cache), so a
promotion or rollback here reaches running bots without a restart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.console import out
from core.errors import InputError
from core.models.fallbacks import CONFIG_FINETUNED, FallbackCount, FallbackCounts
from core.models.registry import KINDS, ModelKind, ModelRegistry, ModelVersion

if TYPE_CHECKING:
    from core.app import App

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,99}$")
_PROVIDERS = {"chat": ("openai", "llamacpp"), "embedder": ("openai", "local")}


def _kind(value: str | None) -> ModelKind | None:
    if value is not None and value not in KINDS:
        msg = f"--kind must be one of {', '.join(KINDS)}, not {value!r}"
        raise InputError(msg)
    return value  # type: ignore[return-value]


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.3g}" for name, value in sorted(scores.items())) or "-"


def _in_use(application: App, registry: ModelRegistry) -> dict[str, str | None]:
    """What answers finetuned and hybrid questions now, and where that choice comes from."""
    promoted = registry.promoted("chat")
    if promoted is not None:
        return {"source": "registry", "name": promoted.name, "model": promoted.model}
    configured = application.settings.models.get("finetuned")
    if configured is not None:
        return {"source": "config", "name": CONFIG_FINETUNED, "model": configured.model}
    return {"source": None, "name": None, "model": None}


def models_commands(core: Callable[[], App]) -> typer.Typer:
    """The `models` command group; ``core`` gives the composition root, built lazily."""
    models = typer.Typer(help="Register, list, promote and roll back model versions.", no_args_is_help=True)

    @models.command("list")
    def list_versions(
        kind: Annotated[str | None, typer.Option(help="Only chat or embedder versions.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Every registered version, the promoted one marked, with eval scores and fallback counts."""
        application = core()
        registry = application.model_registry
        chosen = _kind(kind)
        versions = registry.list(chosen)
        promoted = {k: registry.promoted_name(k) for k in KINDS}
        fallbacks = FallbackCounts(application.redis).all()
        in_use = _in_use(application, registry)
        if as_json:
            rows = [
                {
                    **asdict(v),
                    "promoted": promoted[v.kind] == v.name,
                    "fallbacks": fallbacks.get(v.name, FallbackCount(0, None, "")).as_dict(),
                }
                for v in versions
            ]
            report = {
                "versions": rows,
                "promoted": promoted,
                "finetuned_in_use": in_use,
                "config_fallbacks": fallbacks.get(CONFIG_FINETUNED, FallbackCount(0, None, "")).as_dict(),
            }
            out.print_json(json.dumps(report, ensure_ascii=False))
            return
        _render(versions, promoted, fallbacks, in_use)

    @models.command("promote")
    def promote(name: Annotated[str, typer.Argument(help="A registered version.")]) -> None:
        """Make NAME the live version of its kind; the previous one stays for rollback."""
        application = core()
        version = application.model_registry.promote(name)
        application.model_lineup.forget_promotion()
        out.print(f"Promoted {version.name} ({version.kind}).", markup=False)
        if version.kind == "chat":
            check = application.settings.assistant.promotion_check_s
            out.print(
                f"Finetuned and hybrid answers now come from {_endpoint(version)}; "
                f"running bots switch within {check:g} s.",
                markup=False,
            )

    @models.command("rollback")
    def rollback(
        kind: Annotated[str, typer.Option(help="chat or embedder.")] = "chat",
    ) -> None:
        """Go back to the version promoted before the current one."""
        application = core()
        chosen = _kind(kind) or "chat"
        previous = application.model_registry.rollback(chosen)
        application.model_lineup.forget_promotion()
        if previous is not None:
            out.print(f"Rolled back {chosen}: {previous.name} is live again.", markup=False)
            return
        fallback = (
            "the config's [models.finetuned] answers"
            if chosen == "chat" and "finetuned" in application.settings.models
            else "the config file's model is used"
        )
        out.print(f"Rolled back {chosen}: no version is promoted now; {fallback}.", markup=False)

    @models.command("register")
    def register(
        name: Annotated[str, typer.Argument(help="A new version name, e.g. handbook-ft-2026-11.")],
        model: Annotated[str, typer.Option(help="Model id at the endpoint (llamacpp: a GGUF file).")],
        base_url: Annotated[
            str, typer.Option(help="OpenAI-compatible endpoint, e.g. http://host:8000/v1.")
        ] = "",
        provider: Annotated[
            str, typer.Option(help="openai, llamacpp (chat) or local (embedder).")
        ] = "openai",
        kind: Annotated[str, typer.Option(help="chat or embedder.")] = "chat",
        base_model: Annotated[str, typer.Option(help="The model it was fine-tuned from.")] = "",
        data_hash: Annotated[str, typer.Option(help="Hash of its training data.")] = "",
        promote_now: Annotated[bool, typer.Option("--promote", help="Promote it right away.")] = False,
    ) -> None:
        """Add a model endpoint by hand (a fine-tuned model served elsewhere)."""
        application = core()
        registry = application.model_registry
        version = _checked_version(
            name, model, base_url, provider, _kind(kind) or "chat", base_model, data_hash
        )
        if any(existing.name == version.name for existing in registry.list()):
            msg = f"a version named {name!r} is already registered; choose another name"
            raise InputError(msg)
        registry.register(version)
        out.print(f"Registered {version.name} ({version.kind}, {_endpoint(version)}).", markup=False)
        if promote_now:
            promote(version.name)

    return models


def _checked_version(
    name: str, model: str, base_url: str, provider: str, kind: ModelKind, base_model: str, data_hash: str
) -> ModelVersion:
    if not _NAME.match(name):
        msg = f"{name!r} is not a usable name: use letters, digits and . _ : @ + - (at most 100)"
        raise InputError(msg)
    if provider not in _PROVIDERS[kind]:
        msg = (
            f"--provider for a {kind} version must be one of {', '.join(_PROVIDERS[kind])}, not {provider!r}"
        )
        raise InputError(msg)
    if not model.strip():
        msg = "--model is empty: give the model id at the endpoint"
        raise InputError(msg)
    if base_url and not re.match(r"^https?://[^\s/]+", base_url):
        msg = f"--base-url must be an http(s) URL, not {base_url!r}"
        raise InputError(msg)
    if provider in ("llamacpp", "local"):
        path = Path(model).expanduser()
        if not path.exists():
            msg = f"--model: nothing at {model} (a {provider} model is a local file or directory)"
            raise InputError(msg)
        model, base_url = str(path.resolve()), ""
    return ModelVersion(
        name=name,
        kind=kind,
        provider=provider,
        model=model.strip(),
        base_url=base_url.rstrip("/"),
        base_model=base_model,
        training_data_hash=data_hash,
    )


def _endpoint(version: ModelVersion) -> str:
    if version.provider == "openai":
        return f"{version.model} at {version.base_url or 'the OpenAI API'}"
    return f"{version.model} ({version.provider})"


def _training(record: dict[str, object]) -> str:
    """One line of how a fine-tune was made: steps, rows, held-out loss before → after."""
    line = f"trained {record.get('steps', '?')} steps on {record.get('train_rows', '?')} rows"
    before, after = record.get("validation_loss_before"), record.get("validation_loss_after")
    if isinstance(before, int | float) and isinstance(after, int | float):
        line += f" · held-out loss {before:.3f} → {after:.3f} ({record.get('validation_rows', '?')} rows)"
    return line


def _render(
    versions: list[ModelVersion],
    promoted: dict[ModelKind, str | None],
    fallbacks: dict[str, FallbackCount],
    in_use: dict[str, str | None],
) -> None:
    # Two lines per version rather than a ten-column table: readable at 80 columns and in logs.
    for v in versions:
        live = promoted[v.kind] == v.name
        count = fallbacks.get(v.name)
        details = [
            f"base {v.base_model or '-'}",
            f"data {v.training_data_hash[:12] or '-'}",
            f"created {_when(v.created_at)}",
            f"scores {_scores(v.eval_scores)}",
            f"fallbacks {count.count if count else 0}",
        ]
        out.print(
            f"{'*' if live else ' '} {v.name}  {v.kind} · {v.provider} · {_endpoint(v)}"
            + ("  (promoted)" if live else ""),
            markup=False,
        )
        out.print("    " + " · ".join(details), markup=False)
        if v.training:
            out.print("    " + _training(v.training), markup=False)
    if not versions:
        out.print(
            "No model versions registered. Add one: archivist models register NAME --model ID --base-url URL",
            markup=False,
        )
    if in_use["source"] == "registry":
        out.print(f"Finetuned and hybrid answers come from {in_use['name']} (promoted).", markup=False)
    elif in_use["source"] == "config":
        out.print(
            f"Finetuned and hybrid answers come from {CONFIG_FINETUNED} ({in_use['model']}); "
            "nothing is promoted.",
            markup=False,
        )
    else:
        out.print(
            "No fine-tuned model: promote a chat version or add [models.finetuned] to the config.",
            markup=False,
        )
    if config := fallbacks.get(CONFIG_FINETUNED):
        out.print(f"{CONFIG_FINETUNED} fell back to the base model {config.count} time(s).", markup=False)
    failing = [(name, c) for name, c in fallbacks.items() if c.last_reason]
    if failing:
        name, last = max(failing, key=lambda item: item[1].last_at or 0)
        out.print(f"Last fallback: {name} at {_when(last.last_at)}: {last.last_reason}", markup=False)
