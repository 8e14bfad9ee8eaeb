"""An OpenAI fine-tuning job end to end against a local server speaking the files and fine-tuning API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app import App
from core.errors import ConfigError, InputError, ModelError
from core.finetune.dataset import load_dataset, write_dataset
from core.finetune.openai_job import OpenAIFineTuning, run_openai_finetune
from tests.core.finetune.conftest import APPROXIMATE, handbook_candidates
from tests.fakes.openai_finetune import FakeFineTuning, fake_finetuning


@pytest.fixture
def fine_tuning() -> Iterator[FakeFineTuning]:
    with fake_finetuning("sk-test") as server:
        yield server


def _run(app: App, dataset_dir: Path, server: FakeFineTuning, key: str = "sk-test", **options):
    lines: list[str] = []
    tuner = OpenAIFineTuning(server.base_url, key)
    version = run_openai_finetune(
        load_dataset(dataset_dir, APPROXIMATE),
        tuner,
        app.model_registry,
        lines.append,
        poll_s=0,
        sleep=lambda _: None,
        **options,
    )
    return version, lines


def test_upload_create_follow_and_register(
    app: App, handbook_dataset: Path, fine_tuning: FakeFineTuning
) -> None:
    version, lines = _run(
        app, handbook_dataset, fine_tuning, base_model="gpt-4o-mini-2024-07-18", suffix="kb"
    )

    # Both files went up as multipart uploads for fine-tuning, byte for byte.
    assert [f["filename"] for f in fine_tuning.files.values()] == ["train.jsonl", "validation.jsonl"]
    assert all(f["purpose"] == "fine-tune" for f in fine_tuning.files.values())
    assert fine_tuning.contents["file-0001"] == (handbook_dataset / "train.jsonl").read_bytes()
    uploads = [r for r in fine_tuning.requests if r["path"] == "/v1/files"]
    assert all(r["content_type"].startswith("multipart/form-data") for r in uploads)
    job = fine_tuning.jobs["ftjob-0001"]
    assert job["training_file"] == "file-0001" and job["validation_file"] == "file-0002"

    # Progress: every status once, in order, and each event once, oldest first.
    statuses = [line.split(": ", 1)[1] for line in lines if line.startswith("job ftjob-0001:")]
    assert statuses == ["validating_files", "running", "succeeded"]
    events = [line for line in lines if line.startswith("  ")]
    assert len(events) == len(set(events)) == len(fine_tuning.events["ftjob-0001"])
    assert "Created fine-tuning job" in events[0] and "successfully completed" in events[-1]
    assert any("Step 10/20: training loss=2.0" in e for e in events)

    manifest = json.loads((handbook_dataset / "manifest.json").read_text())
    assert version.model == "ft:gpt-4o-mini-2024-07-18:org-fake:kb:0001" == version.name
    assert version.provider == "openai" and version.base_url == fine_tuning.base_url
    assert version.base_model == "gpt-4o-mini-2024-07-18"
    assert version.training_data_hash == manifest["training_data_hash"]
    assert version.eval_scores == {"validation_loss": 1.1}
    assert app.model_registry.get(version.name) == version


def test_a_wrong_key_is_a_clear_401(app: App, handbook_dataset: Path, fine_tuning: FakeFineTuning) -> None:
    with pytest.raises(ConfigError) as caught:
        _run(app, handbook_dataset, fine_tuning, key="sk-wrong")
    message = str(caught.value)
    assert "rejected the API key while uploading train.jsonl (401: Incorrect API key" in message
    assert message.endswith("set OPENAI_API_KEY to a valid key")
    assert not fine_tuning.files and app.model_registry.list() == []


def test_the_apis_validation_errors_are_shown(app: App, tmp_path: Path, fine_tuning: FakeFineTuning) -> None:
    write_dataset(handbook_candidates()[:6], tmp_path, APPROXIMATE)  # fewer rows than OpenAI accepts
    with pytest.raises(
        InputError, match=r"refused creating the fine-tuning job \(400: .*must have at least 10"
    ):
        _run(app, tmp_path, fine_tuning)
    assert not fine_tuning.jobs and app.model_registry.list() == []


def test_a_failed_job_says_why_and_registers_nothing(
    app: App, handbook_dataset: Path, fine_tuning: FakeFineTuning
) -> None:
    fine_tuning.fail_next_job = True
    with pytest.raises(
        ModelError, match=r"job ftjob-0001 failed: .*invalid training file\. \(invalid_training_file\)"
    ):
        _run(app, handbook_dataset, fine_tuning)
    assert app.model_registry.list() == []


def test_following_an_existing_job_does_not_upload_again(
    app: App, handbook_dataset: Path, fine_tuning: FakeFineTuning
) -> None:
    tuner = OpenAIFineTuning(fine_tuning.base_url, "sk-test")
    training = tuner.upload(handbook_dataset / "train.jsonl")
    job = tuner.create(training, None, "gpt-4o-mini-2024-07-18", "", seed=None)
    version, lines = _run(app, handbook_dataset, fine_tuning, job_id=job.id, name="handbook-v1")
    assert len(fine_tuning.files) == 1 and len(fine_tuning.jobs) == 1
    assert not any(line.startswith("uploaded") for line in lines)
    assert version.name == "handbook-v1" and version.model.startswith("ft:gpt-4o-mini")


def test_an_unknown_job_is_an_input_error(
    app: App, handbook_dataset: Path, fine_tuning: FakeFineTuning
) -> None:
    with pytest.raises(InputError, match=r"checking job ftjob-9999 \(404: No such fine-tuning job"):
        _run(app, handbook_dataset, fine_tuning, job_id="ftjob-9999")
