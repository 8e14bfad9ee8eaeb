"""A local Hugging Face chat model behind OpenAI's chat API, so the bots can use it like any endpoint.

``GET /v1/models`` lists the one model served; ``POST /v1/chat/completions``
answers as one JSON object or, with ``"stream": true``, as server-sent events
ending in ``data: [DONE]``, in OpenAI's wire format. Requests are answered one
generation at a time (a small machine gains nothing from two at once). Errors
come back in OpenAI's error shape, so clients report them properly.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.finetune.local_lora import load_causal_lm, pick_device

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256
MAX_BODY_BYTES = 4 * 1024 * 1024  # a chat request is text; anything larger is a mistake or abuse
STREAM_WAIT_S = 300.0  # longest wait for the next token before the stream is abandoned
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class RequestError(Exception):
    """A request the server refuses, with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None


@dataclass
class Generated:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


def parse_request(body: Any, served: str) -> tuple[GenerationRequest, bool, bool]:
    """The generation asked for, whether to stream, and whether to report usage in the stream."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    if body.get("model") != served:
        message = f"The model '{body.get('model')}' does not exist; this server serves '{served}'"
        raise RequestError(404, message, "model", "model_not_found")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestError(400, "'messages' must be a non-empty list", "messages")
    messages = []
    for number, message in enumerate(raw_messages):
        role = _ROLES.get(str(message.get("role"))) if isinstance(message, dict) else None
        if role is None:
            raise RequestError(400, f"messages[{number}]: role must be system, user or assistant", "messages")
        messages.append({"role": role, "content": _text(message.get("content"), number)})
    if int(body.get("n") or 1) != 1:
        raise RequestError(400, "only n = 1 is supported", "n")
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    temperature = body.get("temperature", 1.0)
    top_p = body.get("top_p", 1.0)
    if not isinstance(limit, int) or limit < 1:
        raise RequestError(400, "max_tokens must be a positive integer", "max_tokens")
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise RequestError(400, "temperature must be between 0 and 2", "temperature")
    if not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise RequestError(400, "top_p must be above 0 and at most 1", "top_p")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop if s)
    seed = body.get("seed")
    stream = bool(body.get("stream"))
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return GenerationRequest(messages, limit, float(temperature), float(top_p), stop, seed), stream, usage


def _text(content: Any, number: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise RequestError(400, f"messages[{number}]: only text content is supported", "messages")


class LocalChatModel:
    """A merged causal LM and its tokenizer; generates one request at a time."""

    def __init__(self, path: Path, name: str = "") -> None:
        self.path = path
        self.name = name or path.name
        self.device, dtype = pick_device()
        self.model, self.tokenizer = load_causal_lm(str(path), self.device, dtype)
        self.model.eval()
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._lock = threading.Lock()

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def run(self, request: GenerationRequest, result: Generated, cancelled: threading.Event) -> Iterator[str]:
        """Yield text pieces; fill ``result`` (counts, finish reason) by the time the iterator ends."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        ids = self.prompt_ids(request.messages)
        result.prompt_tokens = len(ids)
        room = self.context - len(ids)
        if room < 1:
            raise RequestError(
                400,
                f"This model's maximum context length is {self.context} tokens; the messages have {len(ids)}",
                "messages",
                "context_length_exceeded",
            )
        budget = min(request.max_tokens, room)

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancelled.is_set()

        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_WAIT_S
        )
        options: dict[str, Any] = {
            "input_ids": torch.tensor([ids], device=self.device),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=self.device),
            "max_new_tokens": budget,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([Cancelled()]),
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if request.temperature > 0:
            options.update(do_sample=True, temperature=request.temperature, top_p=request.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        produced: dict[str, Any] = {}

        def work() -> None:
            try:
                if request.seed is not None:
                    torch.manual_seed(int(request.seed))
                with torch.no_grad():
                    produced["ids"] = self.model.generate(**options)
            except Exception as exc:  # noqa: BLE001 - re-raised in the request's thread below
                produced["error"] = exc
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            text = ""
            sent = 0
            hold = max((len(s) for s in request.stop), default=1) - 1
            for piece in streamer:
                text += piece
                cut = _first_stop(text, request.stop)
                if cut is not None:
                    text = text[:cut]
                    cancelled.set()
                    result.finish_reason = "stop"
                    break
                ready = len(text) - hold  # keep back what may be the start of a stop sequence
                if ready > sent:
                    yield text[sent:ready]
                    sent = ready
            worker.join()
            if "error" in produced:
                raise RequestError(500, f"generation failed: {produced['error']}") from produced["error"]
            if len(text) > sent:
                yield text[sent:]
            generated = produced["ids"][0][len(ids) :].tolist()
            result.completion_tokens = len(generated)
            ended = bool(generated) and generated[-1] == self.tokenizer.eos_token_id
            if _first_stop(text, request.stop) is None and not cancelled.is_set():
                result.finish_reason = "stop" if ended or len(generated) < budget else "length"
            result.text = text


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [text.find(s) for s in stops if s in text]
    return min(found) if found else None


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


class ModelServer:
    """The HTTP server; ``start()`` serves in a thread (tests), ``serve_forever()`` in the foreground."""

    def __init__(
        self, model: LocalChatModel, host: str = "127.0.0.1", port: int = 8001, api_key: str = ""
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True

    @property
    def base_url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"http://{host}:{port}/v1"

    def start(self) -> ModelServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        model = self.model

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: object) -> None:
                log.info("%s %s", self.address_string(), fmt % args)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    self._authorise()
                    if self.path.rstrip("/") == "/v1/models":
                        self._json(200, {"object": "list", "data": [self._model_card()]})
                    elif self.path == f"/v1/models/{model.name}":
                        self._json(200, self._model_card())
                    elif self.path == "/health":
                        self._json(200, {"status": "ok", "model": model.name})
                    else:
                        raise RequestError(404, f"no route GET {self.path}")
                except RequestError as exc:
                    self._json(exc.status, exc.body())

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    self._authorise()
                    if self.path != "/v1/chat/completions":
                        raise RequestError(404, f"no route POST {self.path}")
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > MAX_BODY_BYTES:
                        raise RequestError(413, f"the request is over {MAX_BODY_BYTES} bytes")
                    try:
                        body = json.loads(self.rfile.read(length) or b"null")
                    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                        raise RequestError(400, f"the body is not valid JSON ({exc})") from exc
                    request, stream, usage = parse_request(body, model.name)
                    if stream:
                        self._stream(request, usage)
                    else:
                        self._complete(request)
                except RequestError as exc:
                    self._json(exc.status, exc.body())

            def _authorise(self) -> None:
                if not server._api_key:
                    return
                given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if not hmac.compare_digest(given.encode(), server._api_key.encode()):
                    raise RequestError(401, "Incorrect API key provided.", None, "invalid_api_key")

            def _model_card(self) -> dict[str, Any]:
                return {
                    "id": model.name,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "archivist",
                }

            def _complete(self, request: GenerationRequest) -> None:
                result = Generated()
                for _ in model.run(request, result, threading.Event()):
                    pass
                self._json(
                    200,
                    {
                        "id": _completion_id(),
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model.name,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": result.text},
                                "finish_reason": result.finish_reason,
                            }
                        ],
                        "usage": _usage(result),
                    },
                )

            def _stream(self, request: GenerationRequest, usage: bool) -> None:
                result = Generated()
                cancelled = threading.Event()
                pieces = model.run(request, result, cancelled)
                first = next(pieces, None)  # errors before the first token are still a JSON error
                completion = _completion_id()
                created = int(time.time())

                def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
                    chunk = {
                        "id": completion,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model.name,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        **extra,
                    }
                    return f"data: {json.dumps(chunk)}\n\n".encode()

                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    self.wfile.write(event({"role": "assistant", "content": ""}))
                    if first is not None:
                        self.wfile.write(event({"content": first}))
                    try:
                        for piece in pieces:
                            self.wfile.write(event({"content": piece}))
                            self.wfile.flush()
                    except RequestError as exc:  # headers are sent: the error travels as an event
                        self.wfile.write(f"data: {json.dumps(exc.body())}\n\n".encode())
                        self.wfile.flush()
                        return
                    self.wfile.write(event({}, result.finish_reason))
                    if usage:
                        chunk = event({}, None, usage=_usage(result))
                        data = json.loads(chunk[len(b"data: ") :])
                        data["choices"] = []
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    cancelled.set()  # the client left: stop generating for nobody
                    for _ in pieces:
                        pass

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _usage(result: Generated) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def open_model(path: Path, name: str = "") -> LocalChatModel:
    if not path.is_dir():
        msg = f"--model: no model directory at {path} (give the merged/ directory a local fine-tune wrote)"
        raise InputError(msg)
    return LocalChatModel(path, name)
