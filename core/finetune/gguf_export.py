"""A fine-tune of the bundled SmolLM2 written back as a GGUF that the llama.cpp provider loads.

The new file is the original GGUF with only the tensors LoRA changed replaced:
every other tensor is copied byte for byte (still Q4_1/Q8_0) along with all the
metadata (tokenizer, chat template). A changed tensor is written in float16 as
the original's dequantized weights plus the LoRA's change (merged minus base,
both read from Hugging Face safetensors), so the untouched part of the weight
stays exactly what the bundled model answers with.

llama.cpp stores the query and key projections of llama models with their rows
permuted for its rotary embedding (convert_hf_to_gguf.py, ``LlamaModel.permute``),
and transformers undoes that when it reads a GGUF; the change is permuted the
same way before it is added.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.extras import MissingExtra, is_missing

CHANGED_ATOL = 1e-7  # a tensor whose change is below this everywhere was not trained
_HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")


def gguf_name(hf_name: str) -> str | None:
    """``model.layers.3.self_attn.q_proj.weight`` → ``blk.3.attn_q.weight``; None for other tensors."""
    match = _LAYER.match(hf_name)
    if not match or match[2] not in _HF_TO_GGUF:
        return None
    return f"blk.{match[1]}.{_HF_TO_GGUF[match[2]]}.weight"


def permute_rows(weight: Any, heads: int) -> Any:
    """The row order llama.cpp stores a query/key projection in (convert_hf_to_gguf's permute)."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:
        if is_missing(exc, "gguf"):
            raise MissingExtra("finetune", "gguf") from exc
        raise
    return gguf


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        msg = f"the GGUF has no {key} field"
        raise ConfigError(msg)
    return field.contents()


def changed_tensors(base_dir: Path, merged_dir: Path) -> dict[str, Any]:
    """HF name → (merged − base) as float32 numpy, for the projection weights the fine-tune changed."""
    from safetensors.numpy import load_file

    base = load_file(str(base_dir / "model.safetensors"))
    merged = load_file(str(merged_dir / "model.safetensors"))
    deltas = {}
    for name, weight in merged.items():
        if gguf_name(name) is None or name not in base:
            continue
        delta = weight.astype("float32") - base[name].astype("float32")
        if float(abs(delta).max()) > CHANGED_ATOL:
            deltas[name] = delta
    return deltas


def export_gguf(source: Path, base_dir: Path, merged_dir: Path, target: Path, name: str) -> int:
    """Write ``target``: ``source`` with the fine-tune's changes applied; returns how many tensors changed."""
    gguf = _gguf()
    import numpy as np

    reader = gguf.GGUFReader(str(source))
    if _field(reader, "general.architecture") != "llama":
        msg = (
            f"{source} is not a llama-architecture GGUF; serve the merged model with `archivist serve-model`"
        )
        raise ConfigError(msg)
    heads = int(_field(reader, "llama.attention.head_count"))
    kv_heads = int(_field(reader, "llama.attention.head_count_kv"))
    deltas = {gguf_name(k): (k, v) for k, v in changed_tensors(base_dir, merged_dir).items()}
    replaced: dict[str, Any] = {}
    for tensor in reader.tensors:
        if tensor.name not in deltas:
            continue
        hf_name, delta = deltas[tensor.name]
        if hf_name.endswith("q_proj.weight"):
            delta = permute_rows(delta, heads)
        elif hf_name.endswith("k_proj.weight"):
            delta = permute_rows(delta, kv_heads)
        original = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if original.shape != delta.shape:
            msg = f"{tensor.name}: shape {original.shape} in the GGUF, {delta.shape} in the fine-tune"
            raise ConfigError(msg)
        replaced[tensor.name] = (original + delta).astype(np.float16)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch="llama", endianess=reader.endianess)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # written by the writer itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        value = name if key == "general.name" else field.contents()
        writer.add_key_value(key, value, value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        if tensor.name in replaced:
            data = replaced[tensor.name]
            writer.add_tensor_info(
                tensor.name, data.shape, data.dtype, data.nbytes, gguf.GGMLQuantizationType.F16
            )
        else:
            data = tensor.data
            writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(replaced.get(tensor.name, tensor.data), tensor_endianess=reader.endianess)
    writer.close()
    partial.replace(target)
    return len(replaced)
