"""A local stand-in for OpenAI's files and fine-tuning API, speaking its wire format.

- ``POST /v1/files`` (multipart/form-data: ``file`` and ``purpose``) stores a file and
  returns a ``file`` object.
- ``POST /v1/fine_tuning/jobs`` checks the training file as OpenAI does (JSONL of chat
  rows, at least 10 of them) and returns a ``fine_tuning.job`` in ``validating_files``.
- ``GET /v1/fine_tuning/jobs/{id}`` advances the job one step per call along
  ``script`` (by default validating_files → running → running → succeeded), adding
  events as it goes; ``GET .../events`` lists them newest first, like the API.

Requests need ``Authorization: Bearer <api_key>``; anything else is a 401 in
OpenAI's error format. ``fail_next_job`` makes the next job end ``failed``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.http_service import serve, server_url, shut_down, write_json

MIN_EXAMPLES = 10
DEFAULT_SCRIPT = ("validating_files", "running", "running", "succeeded")


class FakeFineTuning:
    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.script: tuple[str, ...] = DEFAULT_SCRIPT
        self.fail_next_job = False
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"{server_url(self._server)}/v1"

    # -- the API -------------------------------------------------------------

    def _upload(self, form: dict[str, tuple[str, bytes]]) -> tuple[int, dict[str, Any]]:
        if "file" not in form or "purpose" not in form:
            return _error(400, "'file' and 'purpose' are required", "file")
        filename, content = form["file"]
        purpose = form["purpose"][1].decode()
        if purpose not in {"fine-tune", "assistants", "batch", "vision", "user_data", "evals"}:
            return _error(400, f"'{purpose}' is not a valid purpose", "purpose")
        file_id = f"file-{len(self.files) + 1:04d}"
        self.contents[file_id] = content
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        return 200, self.files[file_id]

    def _check_training_file(self, file_id: str, param: str) -> tuple[int, dict[str, Any]] | None:
        if file_id not in self.files:
            return _error(400, f"invalid file id '{file_id}'", param, "invalid_file_id")
        if self.files[file_id]["purpose"] != "fine-tune":
            return _error(400, f"file {file_id} was not uploaded with purpose 'fine-tune'", param)
        lines = [line for line in self.contents[file_id].decode("utf-8").splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return _error(400, f"line {number} is not valid JSON", param, "invalid_file_format")
            if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
                return _error(400, f"line {number} has no 'messages' list", param, "invalid_file_format")
        if param == "training_file" and len(lines) < MIN_EXAMPLES:
            message = (
                f"Training file has {len(lines)} example(s), but must have at least {MIN_EXAMPLES} examples"
            )
            return _error(400, message, param, "invalid_n_examples")
        return None

    def _create_job(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for param in ("model", "training_file"):
            if not body.get(param):
                return _error(400, f"Missing required parameter: '{param}'.", param)
        refusal = self._check_training_file(body["training_file"], "training_file")
        if refusal is None and body.get("validation_file"):
            refusal = self._check_training_file(body["validation_file"], "validation_file")
        if refusal:
            return refusal
        job_id = f"ftjob-{len(self.jobs) + 1:04d}"
        self.jobs[job_id] = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "model": body["model"],
            "organization_id": "org-fake",
            "result_files": [],
            "seed": body.get("seed") or 42,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "suffix": body.get("suffix"),
            "fails": self.fail_next_job,
        }
        self.fail_next_job = False
        self._steps[job_id] = 0
        self.events[job_id] = []
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        self._event(job_id, "Validating training file: " + body["training_file"])
        return 200, self._public(job_id)

    def _advance(self, job_id: str) -> None:
        """One poll, one step along the script (the first poll sees the job as created)."""
        job = self.jobs[job_id]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        step = self._steps[job_id]
        self._steps[job_id] += 1
        status = self.script[min(step, len(self.script) - 1)]
        if job["fails"] and status == "running":
            job.update(
                status="failed",
                finished_at=int(time.time()),
                error={
                    "code": "invalid_training_file",
                    "message": "The job failed due to an invalid training file.",
                    "param": "training_file",
                },
            )
            self._event(job_id, "The job failed due to an invalid training file.", level="error")
            return
        if status == "running":
            if job["status"] != "running":
                self._event(job_id, "Files validated, moving job to queued state")
                self._event(job_id, "Fine-tuning job started")
            total = 10 * max(self.script.count("running"), 1)
            done = 10 * self.script[: step + 1].count("running")
            loss = round(2.0 / done * 10, 4)
            self._event(
                job_id,
                f"Step {done}/{total}: training loss={loss}",
                kind="metrics",
                data={
                    "step": done,
                    "total_steps": total,
                    "train_loss": loss,
                    "valid_loss": round(loss * 1.1, 4),
                },
            )
        if status == "succeeded":
            suffix = job["suffix"] or ""
            job.update(
                fine_tuned_model=f"ft:{job['model']}:org-fake:{suffix}:{job_id[-4:]}",
                finished_at=int(time.time()),
                trained_tokens=1234,
                result_files=["file-result"],
            )
            self._event(job_id, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(job_id, "The job has successfully completed")
        job["status"] = status

    def _event(
        self, job_id: str, message: str, level: str = "info", kind: str = "message", data=None
    ) -> None:
        events = self.events[job_id]
        events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{job_id[-4:]}-{len(events) + 1:03d}",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": kind,
            }
        )

    def _public(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[job_id].items() if k not in ("fails", "suffix")}

    def _list_events(self, job_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        newest_first = list(reversed(self.events[job_id]))
        if "after" in query:
            ids = [e["id"] for e in newest_first]
            after = query["after"][0]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        return {"object": "list", "data": newest_first[:limit], "has_more": len(newest_first) > limit}

    # -- HTTP ----------------------------------------------------------------

    def start(self) -> FakeFineTuning:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self._json(
                    *_error(
                        401,
                        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                        None,
                        "invalid_api_key",
                    )
                )
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlparse(self.path)
                fake.requests.append({"method": "GET", "path": url.path})
                if not self._authorised():
                    return
                parts = url.path.strip("/").split("/")  # v1 fine_tuning jobs ID [events]
                if parts[:3] != ["v1", "fine_tuning", "jobs"] or len(parts) not in (4, 5):
                    self._json(*_error(404, f"Invalid URL (GET {url.path})", None))
                    return
                job_id = parts[3]
                with fake._lock:
                    if job_id not in fake.jobs:
                        self._json(*_error(404, f"No such fine-tuning job: {job_id}", "fine_tuning_job_id"))
                    elif len(parts) == 5 and parts[4] == "events":
                        self._json(200, fake._list_events(job_id, parse_qs(url.query)))
                    else:
                        fake._advance(job_id)
                        self._json(200, fake._public(job_id))

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                content_type = self.headers.get("Content-Type", "")
                fake.requests.append({"method": "POST", "path": self.path, "content_type": content_type})
                if not self._authorised():
                    return
                with fake._lock:
                    if self.path == "/v1/files":
                        if not content_type.startswith("multipart/form-data"):
                            self._json(*_error(400, "expected multipart/form-data", "file"))
                            return
                        self._json(*fake._upload(_multipart(content_type, raw)))
                    elif self.path == "/v1/fine_tuning/jobs":
                        try:
                            body = json.loads(raw or b"{}")
                        except json.JSONDecodeError:
                            self._json(
                                *_error(400, "We could not parse the JSON body of your request.", None)
                            )
                            return
                        self._json(*fake._create_job(body))
                    else:
                        self._json(*_error(404, f"Invalid URL (POST {self.path})", None))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                write_json(self, status, payload)

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)


def _error(
    status: int, message: str, param: str | None, code: str | None = None
) -> tuple[int, dict[str, Any]]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    """Form fields by name: (filename or "", raw bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return fields


@contextmanager
def fake_finetuning(api_key: str = "test-key") -> Iterator[FakeFineTuning]:
    server = FakeFineTuning(api_key).start()
    try:
        yield server
    finally:
        server.stop()
