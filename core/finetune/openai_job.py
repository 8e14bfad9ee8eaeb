"""A fine-tuning job on OpenAI (or any server speaking its files and fine-tuning API).

Upload train.jsonl (and validation.jsonl) with purpose ``fine-tune``, create the
job, poll it and its events until it ends, then register the fine-tuned model
under its name with the dataset's hash. The job runs at the provider: if
following stops (Ctrl-C, a dropped connection), ``follow`` picks it up again by id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from core.errors import AccessDenied, ConfigError, InputError, ModelError, ServiceUnavailable
from core.finetune.dataset import Dataset
from core.models.registry import ModelRegistry, ModelVersion

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_BASE_MODEL = "gpt-4o-mini-2024-07-18"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Uploads of a large training file can take a while; status calls are small.
REQUEST_TIMEOUT_S = 300.0
# The client retries 429s and 5xx after Retry-After; a job is hours long, so a few
# retries per call are cheap and a blip does not end the follow.
MAX_RETRIES = 4
EVENTS_PER_POLL = 100

Say = Callable[[str], None]


@dataclass(frozen=True)
class JobResult:
    job_id: str
    status: str
    fine_tuned_model: str
    base_model: str
    trained_tokens: int | None
    validation_loss: float | None


class OpenAIFineTuning:
    def __init__(self, base_url: str, api_key: str, api_key_env: str = "OPENAI_API_KEY") -> None:
        self.base_url = base_url.rstrip("/")
        self._key_env = api_key_env
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key, timeout=REQUEST_TIMEOUT_S, max_retries=MAX_RETRIES
        )

    def upload(self, path: Path) -> str:
        with self._errors(f"uploading {path.name}"), path.open("rb") as handle:
            uploaded = self._client.files.create(
                file=(path.name, handle, "application/jsonl"), purpose="fine-tune"
            )
        return uploaded.id

    def create(
        self, training_file: str, validation_file: str | None, base_model: str, suffix: str, seed: int | None
    ) -> Any:
        options: dict[str, Any] = {"model": base_model, "training_file": training_file}
        if validation_file:
            options["validation_file"] = validation_file
        if suffix:
            options["suffix"] = suffix
        if seed is not None:
            options["seed"] = seed
        with self._errors("creating the fine-tuning job"):
            return self._client.fine_tuning.jobs.create(**options)

    def follow(
        self, job_id: str, say: Say, poll_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> JobResult:
        """Poll the job and print its new events in order until it succeeds, fails or is cancelled."""
        seen: set[str] = set()
        status = ""
        validation_loss: float | None = None
        while True:
            with self._errors(f"checking job {job_id}"):
                job = self._client.fine_tuning.jobs.retrieve(job_id)
                events = self._client.fine_tuning.jobs.list_events(job_id, limit=EVENTS_PER_POLL).data
            for event in reversed(events):  # the API lists newest first
                if event.id in seen:
                    continue
                seen.add(event.id)
                data = event.data if isinstance(event.data, dict) else {}
                loss = data.get("full_valid_loss", data.get("valid_loss"))
                validation_loss = float(loss) if loss is not None else validation_loss
                clock = time.strftime("%H:%M:%S", time.localtime(event.created_at))
                say(f"  {clock} {event.level}: {event.message}")
            if job.status != status:
                status = job.status
                say(f"job {job_id}: {status}")
            if status in TERMINAL:
                break
            sleep(poll_s)
        if status != "succeeded":
            error = job.error
            detail = f": {error.message} ({error.code})" if error and error.message else ""
            msg = f"fine-tuning job {job_id} {status}{detail}"
            raise ModelError(msg)
        if not job.fine_tuned_model:
            msg = f"fine-tuning job {job_id} succeeded but named no fine-tuned model"
            raise ModelError(msg)
        return JobResult(job_id, status, job.fine_tuned_model, job.model, job.trained_tokens, validation_loss)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """The API's refusals as the core's errors, with the API's own reason."""
        try:
            yield
        except openai.AuthenticationError as exc:
            msg = (
                f"{self.base_url} rejected the API key while {doing} (401: {_reason(exc)}); "
                f"set {self._key_env} to a valid key"
            )
            raise ConfigError(msg) from exc
        except openai.PermissionDeniedError as exc:
            msg = f"{self.base_url} refused {doing} (403: {_reason(exc)}): the key may not fine-tune"
            raise AccessDenied(msg) from exc
        except openai.RateLimitError as exc:
            msg = f"{self.base_url} is rate limiting {doing} (429: {_reason(exc)}); try again later"
            raise ServiceUnavailable(msg) from exc
        except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError) as exc:
            msg = f"the fine-tuning API refused {doing} ({exc.status_code}: {_reason(exc)})"
            raise InputError(msg) from exc
        except openai.APIStatusError as exc:
            msg = f"the fine-tuning API failed while {doing} ({exc.status_code}: {_reason(exc)})"
            raise ServiceUnavailable(msg) from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            msg = f"cannot reach {self.base_url} while {doing}: {exc}"
            raise ServiceUnavailable(msg) from exc


def _reason(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            param = f" [{error['param']}]" if error.get("param") else ""
            return f"{error['message']}{param}"
    return exc.message


def run_openai_finetune(
    dataset: Dataset,
    tuner: OpenAIFineTuning,
    registry: ModelRegistry,
    say: Say,
    *,
    base_model: str = DEFAULT_BASE_MODEL,
    suffix: str = "archivist",
    poll_s: float = 30.0,
    seed: int | None = None,
    name: str = "",
    job_id: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> ModelVersion:
    """Upload, create (or resume ``job_id``), follow, register; returns the registered version."""
    if not dataset.hash_matches_manifest:
        say("note: train.jsonl differs from the manifest; registering the hash of the file as uploaded")
    if not job_id:
        training = tuner.upload(dataset.directory / "train.jsonl")
        say(f"uploaded train.jsonl ({len(dataset.train)} rows) as {training}")
        validation = None
        if dataset.validation:
            validation = tuner.upload(dataset.directory / "validation.jsonl")
            say(f"uploaded validation.jsonl ({len(dataset.validation)} rows) as {validation}")
        job = tuner.create(training, validation, base_model, suffix, seed)
        job_id = job.id
        say(f"created fine-tuning job {job_id} on {job.model}")
    try:
        result = tuner.follow(job_id, say, poll_s, sleep)
    except KeyboardInterrupt:
        msg = (
            f"stopped following job {job_id}; it keeps running at {tuner.base_url}. Pick it up again with "
            f"`archivist finetune run --provider openai --dataset {dataset.directory} --job {job_id}`"
        )
        raise InputError(msg) from None
    scores = {"validation_loss": result.validation_loss} if result.validation_loss is not None else {}
    version = ModelVersion(
        name=name or result.fine_tuned_model,
        kind="chat",
        provider="openai",
        model=result.fine_tuned_model,
        base_url=tuner.base_url,
        base_model=result.base_model,
        training_data_hash=dataset.training_data_hash,
        eval_scores=scores,
    )
    return registry.register(version)
