"""The bundled SmolLM2 GGUF as a full-precision Hugging Face model, so it can be fine-tuned offline.

`transformers` reads a llama-architecture GGUF (tokenizer and chat template
included) and dequantizes its Q4_1/Q8_0 blocks with the `gguf` package. That
takes ~20 s on two cores, so the result is written once under
``DATA_DIR/models/base/`` in a directory named after the GGUF's SHA-256: a
different bundled file gets a new directory, the same one is never converted
twice. The directory is written beside its final name and renamed into place,
so an interrupted conversion leaves nothing that looks usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.extras import MissingExtra, is_missing

BUNDLED_NAME = "smollm2-135m-instruct"
SOURCE_FILE = "source.json"  # beside the weights: which GGUF they came from
_HASH_CHARS = 12

Say = Callable[[str], None]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_gguf() -> Path:
    from core.models.chat import bundled_smollm2_path

    return Path(bundled_smollm2_path())


def base_dir(data_dir: Path, gguf_path: Path, digest: str = "") -> Path:
    digest = digest or file_sha256(gguf_path)
    return data_dir / "models" / "base" / f"{BUNDLED_NAME}-{digest[:_HASH_CHARS]}"


def read_source(model_dir: Path) -> dict[str, Any]:
    """What ``materialise`` recorded about the GGUF a directory came from; {} for any other model."""
    path = model_dir / SOURCE_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def materialise(data_dir: Path, say: Say, gguf_path: Path | None = None) -> Path:
    """The Hugging Face directory of ``gguf_path`` (default: the bundled SmolLM2), converting it once."""
    source = gguf_path or bundled_gguf()
    if not source.is_file():
        msg = f"no GGUF file at {source}"
        raise ConfigError(msg)
    digest = file_sha256(source)
    target = base_dir(data_dir, source, digest)
    if read_source(target).get("gguf_sha256") == digest:
        return target
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file
    except ImportError as exc:
        if is_missing(exc, "gguf"):
            raise MissingExtra("finetune", "gguf") from exc
        raise
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"converting {source.name} to a Hugging Face model under {target} (once)")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        model: Any = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        # The weights are dequantized to float32 already; what remains is the loader's marker,
        # which makes save_pretrained refuse ("quantized with gguf and is not serializable").
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        record = {"gguf": str(source), "gguf_sha256": digest, "name": BUNDLED_NAME}
        (work / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # a half-written or stale directory from an older file
            shutil.rmtree(target)
        work.rename(target)
    except (OSError, ValueError, KeyError) as exc:
        msg = f"cannot convert {source} to a Hugging Face model: {exc}"
        raise ConfigError(msg) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
