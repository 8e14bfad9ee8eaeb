"""The local embedder through ONNX Runtime: exported once from the local weights, never downloaded.

``ensure_export`` turns a local sentence-transformers directory into an ONNX graph that
outputs the sentence embedding (transformer, pooling and any dense layers in one graph),
checks that it reproduces PyTorch's vectors, fuses the transformer's operators for the
CPU (ONNX Runtime's own optimizer), and, for ``onnx-int8``, quantizes the weights of the
matrix multiplications and attention to int8 per output channel. Exports live under
``<data_dir>/embedders/<weights digest>/``: a re-trained model has another digest and is
exported afresh; the same weights are exported once, whichever process gets there first.

``OnnxEmbeddings`` runs such a graph: tokenize with the model's own tokenizer, longest
texts first (less padding), normalize. ONNX Runtime releases the GIL while it runs, so
the sync engine reads and writes other batches meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from core.errors import ModelError

log = logging.getLogger(__name__)

# Vectors of two backends may share an index only when every probe pair is at least this close.
MATCH_COSINE = 0.999
OPSET = 17  # understood by every ONNX Runtime release this project allows (>= 1.20)
FORMAT = 1  # bump when the export recipe changes: older exports are then made again
# Probe texts for the export check: short and long, prose and jargon, as a sync sees them.
PROBES = (
    "How do I reset my password?",
    "Deploys are frozen on Fridays after 3pm; ask #release for an exception.",
    "Alterations of the architecture of cerebral white matter in the developing human brain can "
    "affect cortical development and result in functional disabilities. A line scan "
    "diffusion-weighted magnetic resonance imaging sequence with diffusion tensor analysis was "
    "applied to measure the apparent diffusion coefficient in preterm infants.",
    "x",
)


def probe_vectors(model: Any) -> Any:
    """A sentence-transformers model's unit vectors of ``PROBES``: what another way of running
    the same weights must reproduce to share its index."""
    return model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)


def closeness(reference: Any, vectors: Any) -> float:
    """The lowest cosine between paired unit vectors (compare with ``MATCH_COSINE``)."""
    import numpy as np

    return float(np.min(np.sum(np.asarray(reference, np.float32) * np.asarray(vectors, np.float32), axis=1)))


_WEIGHT_FILES = (".safetensors", ".bin")
_CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json", "vocab.txt")


@lru_cache(maxsize=8)
def _digest(directory: str, stamp: str) -> str:
    del stamp  # part of the cache key only: a rewritten model is hashed again
    digest = hashlib.sha256(f"archivist-onnx-{FORMAT}".encode())
    for root, _dirs, files in sorted(os.walk(directory)):
        for name in sorted(files):
            if name.endswith(_WEIGHT_FILES) or name in _CONFIG_FILES:
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, directory).encode())
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()[:20]


def weights_digest(directory: str) -> str:
    """A hash of the model's weights and configuration (memoized while its files stay put)."""
    from core.models.embeddings import weights_stamp

    return _digest(os.path.abspath(directory), weights_stamp(directory) + _config_stamp(directory))


def _config_stamp(directory: str) -> str:
    stamps = []
    for name in _CONFIG_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            info = os.stat(path)
            stamps.append(f"{name}:{info.st_size}:{info.st_mtime_ns}")
    return "|".join(stamps)


def export_path(model_path: str, data_dir: Path, quantized: bool) -> Path:
    name = "model-int8.onnx" if quantized else "model.onnx"
    return Path(data_dir) / "embedders" / weights_digest(model_path) / name


# Exports this process made or found, by weights digest: an App over another data dir (tests,
# evaluation's throwaway apps) reuses them instead of exporting the same weights again.
_KNOWN: dict[tuple[str, bool], Path] = {}


def ensure_export(model_path: str, data_dir: Path, quantized: bool) -> Path:
    """The ONNX file for these weights, exported now if it is not there yet."""
    target = export_path(model_path, data_dir, quantized)
    key = (target.parent.name, quantized)
    if not target.is_file() and key in _KNOWN and _KNOWN[key].is_file():
        return _KNOWN[key]
    _KNOWN[key] = _export_once(model_path, data_dir, quantized, target)
    return _KNOWN[key]


def _export_once(model_path: str, data_dir: Path, quantized: bool, target: Path) -> Path:
    from filelock import FileLock

    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot write the ONNX export of the embedder under {target.parent}: {exc}"
        raise ModelError(msg) from exc
    with FileLock(str(target.parent / ".export.lock")):  # another process may be exporting
        if target.is_file():
            return target
        plain = export_path(model_path, data_dir, quantized=False)
        if not plain.is_file():
            log.info("exporting the embedder at %s to ONNX (once for these weights)", model_path)
            _export(model_path, plain)
        if quantized:
            log.info("quantizing the embedder's ONNX export to int8")
            _quantize(plain, target)
    return target


def _export(model_path: str, target: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers_logging.disable_progress_bar()  # a weights bar in the middle of a sync is noise
    transformers_logging.set_verbosity_error()
    # Eager attention traces to plain MatMul/Softmax, which ONNX Runtime's optimizer fuses into
    # one Attention operator; the SDPA path exports as a pattern it does not recognise.
    model = SentenceTransformer(
        model_path, device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    ).eval()
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
    features = tokenize(list(PROBES[:2]))
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in features]

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    raw = target.with_name(target.stem + ".raw.onnx")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names} | {"embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow: shapes stay dynamic
        torch.onnx.export(
            SentenceGraph().eval(),
            tuple(features[name] for name in names),
            str(raw),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript tracer: seconds, no extra dependency, exact for encoders
        )
    optimized = _fuse(raw, model)
    meta = {
        "format": FORMAT,
        "inputs": names,
        "max_seq_length": int(model.max_seq_length or 512),
        "dimensions": int(model.get_embedding_dimension() or 0),
    }
    reference = probe_vectors(model)
    session = _session(str(optimized), 1)
    vectors = OnnxEmbeddings.run(session, _tokenizer(model_path), meta, list(PROBES), len(PROBES))
    cosine = closeness(reference, vectors)
    if cosine < MATCH_COSINE:
        msg = (
            f"the ONNX export of {model_path} does not reproduce its vectors (cosine {cosine:.4f}); "
            "set [embeddings] backend = 'torch'"
        )
        raise ModelError(msg)
    (target.parent / "export.json").write_text(json.dumps(meta | {"cosine_to_torch": cosine}, indent=1))
    os.replace(optimized, target)
    if raw.exists():
        raw.unlink()


def _fuse(raw: Path, model: Any) -> Path:
    """ONNX Runtime's transformer optimizer for BERT-family encoders; others keep the plain graph."""
    config = getattr(model[0], "auto_model", None)
    config = getattr(config, "config", None)
    if getattr(config, "model_type", "") not in ("bert", "roberta", "xlm-roberta", "mpnet"):
        return raw
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=1,  # graph fusions only; kernels are still picked at session start
    )
    out = raw.with_name(raw.stem + ".fused.onnx")
    fused.save_model_to_file(str(out))
    raw.unlink()
    return out


def _quantize(plain: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(handle)
    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process is for CNNs, not this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Weights per output channel: per tensor moved vectors far (cosine ~0.94); per channel
            # keeps them within ~0.99 while the heavy operators run in int8.
            quantize_dynamic(
                str(plain),
                temporary,
                op_types_to_quantize=["MatMul", "Attention"],
                per_channel=True,
                weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": 1},  # fused operators' outputs are float32
            )
    except BaseException:
        os.unlink(temporary)
        raise
    finally:
        logging.disable(logging.NOTSET)
    os.chmod(temporary, 0o644)  # mkstemp made it private; the export is no secret
    os.replace(temporary, target)


# -- running it ----------------------------------------------------------------


@lru_cache(maxsize=4)
def _session(path: str, threads: int):  # noqa: ANN202 - onnxruntime is imported lazily
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: on a small shared machine spinning steals the
    # cores the sync's reader and writer need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


# A fast tokenizer sets its padding and truncation state on each call, and two threads doing so at
# once fail ("Already borrowed"): a bot's question and a sync's batch take turns (a millisecond).
_TOKENIZING = threading.Lock()


@lru_cache(maxsize=4)
def _tokenizer(model_path: str):  # noqa: ANN202
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, local_files_only=True)


class OnnxEmbeddings(Embeddings):
    """A local sentence-transformers model run by ONNX Runtime on the CPU."""

    def __init__(
        self,
        model_path: str,
        data_dir: Path,
        quantized: bool = False,
        batch_size: int = 64,
        dimensions: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.data_dir = Path(data_dir)
        self.quantized = quantized
        self.batch_size = batch_size
        self._dimensions = dimensions
        self._threads = threads or 0  # 0: ONNX Runtime's choice, one per physical core

    @property
    def backend(self) -> str:
        return "onnx-int8" if self.quantized else "onnx"

    def _loaded(self) -> tuple[Any, Any, dict[str, Any]]:
        path = ensure_export(self.model_path, self.data_dir, self.quantized)
        meta = json.loads((path.parent / "export.json").read_text())
        return _session(str(path), self._threads), _tokenizer(self.model_path), meta

    def warm(self) -> None:
        """Export (first use) and load now, rather than inside the first sync or question."""
        self._loaded()

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self._loaded()[2]["dimensions"]) or len(self.embed_query("probe"))
        return self._dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        session, tokenizer, meta = self._loaded()
        return self.run(session, tokenizer, meta, texts, self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    @staticmethod
    def run(session: Any, tokenizer: Any, meta: dict[str, Any], texts: Sequence[str], batch_size: int) -> Any:
        import numpy as np

        # Longest first, so each batch pads to lengths close to its own (as sentence-transformers does).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: Any = None
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            with _TOKENIZING:
                encoded = tokenizer(
                    [texts[i] for i in picked],
                    padding=True,
                    truncation=True,
                    max_length=meta["max_seq_length"],
                    return_tensors="np",
                )
            feed = {item.name: encoded[item.name].astype(np.int64) for item in session.get_inputs()}
            vectors = session.run(None, feed)[0]
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[picked] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
