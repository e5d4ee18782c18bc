"""Write a Hugging Face Llama-family folder as one GGUF file for llama.cpp, the way its convert_hf_to_gguf.py does.

What is written, and why:
- hyperparameters under llama.cpp's `llama.*` keys (Mistral is converted as `llama` too, as llama.cpp does);
- q_proj/k_proj rows permuted from Hugging Face's rotary layout (two halves) into llama.cpp's (interleaved pairs);
  readers such as transformers undo it on load;
- the byte-level BPE vocabulary ("gpt2" in GGUF terms) with token types, merges, the pre-tokenizer name, the
  special token ids and the chat template (gguf.SpecialVocab reads those the same way llama.cpp does);
- tensors streamed one at a time from the safetensors files, so a model never sits in memory twice.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.errors import InputError

LLAMA_FAMILY = ("LlamaForCausalLM", "MistralForCausalLM")
GGUF_TYPES = ("f32", "f16")
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


def unsupported_architecture(model: str, arch: str) -> InputError:
    """The one refusal for anything that is not a llama-family causal LM (the CLI turns it into exit code 2)."""
    return InputError(f"GGUF export supports: llama-family causal LMs; {model} is {arch}",
                      f"llama-family means {', '.join(LLAMA_FAMILY)}; export a Hugging Face folder instead: "
                      f"tunelab export {model} --format merged")


def check_architecture(config: dict[str, Any], model: str) -> None:
    """Refuse early (before any merge) a model llama.cpp's `llama` architecture cannot describe."""
    arch = (config.get("architectures") or [config.get("model_type") or "an unknown architecture"])[0]
    if arch not in LLAMA_FAMILY:
        raise unsupported_architecture(model, arch)


@dataclass(frozen=True)
class _Tensor:
    """One tensor to write: its GGUF name, where its data comes from and how to turn it into GGUF's layout."""

    name: str
    source: str  # the Hugging Face name; "" for tensors made here (rope_freqs)
    shape: tuple[int, ...]
    dtype: np.dtype


# ---- hyperparameters ---------------------------------------------------------------------------------------------


def _rope(config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """(rope theta, rope scaling parameters): transformers 5 keeps both in `rope_parameters`, older configs did not."""
    params = dict(config.get("rope_parameters") or {})
    params.update(config.get("rope_scaling") or {})
    theta = config.get("rope_theta") or params.get("rope_theta") or 10000.0
    return float(theta), params


def _rope_type(params: dict[str, Any]) -> str:
    return str(params.get("rope_type") or params.get("type") or "default").lower()


def _head_dim(config: dict[str, Any]) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def _add_hparams(writer: Any, config: dict[str, Any], name: str, out_type: str) -> None:
    import gguf

    theta, rope = _rope(config)
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(theta)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(_head_dim(config))
    if config.get("head_dim"):
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
    if _rope_type(rope) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    file_type = gguf.LlamaFileType.ALL_F32 if out_type == "f32" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _check_rope(config: dict[str, Any], model: str) -> None:
    kind = _rope_type(_rope(config)[1])
    if kind not in ("default", "linear", "llama3"):
        raise InputError(f"GGUF export does not handle rope scaling {kind!r} ({model})",
                         f"supported: default, linear, llama3; use: tunelab export {model} --format merged")


def _llama3_rope_factors(config: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1's frequency-dependent rope scaling, precomputed as llama.cpp stores it (`rope_freqs.weight`)."""
    theta, rope = _rope(config)
    dim = _head_dim(config)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


# ---- vocabulary --------------------------------------------------------------------------------------------------


def _pre_tokenizer_name(spec: dict[str, Any] | None) -> str | None:
    """llama.cpp's name for a byte-level pre-tokenizer, read from tokenizer.json's structure (None if unknown).

    llama.cpp itself hashes the tokens of a test string against a list of known models; reading the structure
    recognises the same three families without that list and fails loudly on anything else.
    """
    steps = (spec.get("pretokenizers") if spec and spec.get("type") == "Sequence" else [spec]) or []
    kinds = [step.get("type") if step else None for step in steps]
    last = steps[-1] if steps else None
    if kinds[-1:] != ["ByteLevel"] or last.get("add_prefix_space"):
        return None
    if kinds == ["ByteLevel"] and last.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and last.get("use_regex", True):
        return "smollm"
    pattern = (steps[0].get("pattern") or {}).get("Regex") if kinds == ["Split", "ByteLevel"] else None
    if pattern == _LLAMA3_SPLIT and not last.get("use_regex", True):
        return "llama-bpe"
    return None


def _check_tokenizer(folder: Path, model: str) -> str:
    """The pre-tokenizer name, after checking the tokenizer is a byte-level BPE that GGUF's "gpt2" model describes."""
    path = folder / "tokenizer.json"
    hint = f"GGUF export needs a byte-level BPE tokenizer.json; use: tunelab export {model} --format merged"
    if not path.exists():
        raise InputError(f"{model} has no tokenizer.json", hint)
    spec = json.loads(path.read_text(encoding="utf-8"))
    bpe = spec.get("model") or {}
    if bpe.get("type") != "BPE" or bpe.get("byte_fallback"):
        kind = "SentencePiece-style BPE (byte fallback)" if bpe.get("byte_fallback") else bpe.get("type")
        raise InputError(f"{model}'s tokenizer is {kind}, not byte-level BPE", hint)
    if spec.get("normalizer"):
        raise InputError(f"{model}'s tokenizer has a normalizer ({spec['normalizer'].get('type')}), which llama.cpp's "
                         "byte-level BPE does not apply", hint)
    name = _pre_tokenizer_name(spec.get("pre_tokenizer"))
    if name is None:
        raise InputError(f"{model}'s pre-tokenizer is not one llama.cpp knows (GPT-2, SmolLM or Llama 3 style): "
                         f"{json.dumps(spec.get('pre_tokenizer'))[:200]}", hint)
    return name


def _looks_special(token: str) -> bool:
    return token.startswith("<|") and token.endswith("|>")


def _vocab(folder: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens in id order and their GGUF types, padded to the model's vocab_size as llama.cpp does."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    if max(by_id) >= vocab_size:
        raise InputError(f"the tokenizer has ids up to {max(by_id)} but the model's vocab_size is {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(token)
            special = added[i].special or _looks_special(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def _add_vocab(writer: Any, folder: Path, vocab_size: int, pre: str) -> None:
    import gguf

    tokens, types = _vocab(folder, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)


# ---- tensors -----------------------------------------------------------------------------------------------------


def _permute(weights: torch.Tensor, n_head: int, n_head_kv: int | None = None) -> torch.Tensor:
    """llama.cpp's rotary layout: per head, rows (x0..x_{d/2-1}, y0..y_{d/2-1}) become (x0, y0, x1, y1, ...)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _to_gguf(source: str, data: torch.Tensor, config: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    n_head = config["num_attention_heads"]
    if source.endswith(("q_proj.weight", "q_proj.bias")):
        data = _permute(data, n_head, n_head)
    elif source.endswith(("k_proj.weight", "k_proj.bias")):
        data = _permute(data, n_head, config.get("num_key_value_heads") or n_head)
    return data.to(torch.float32).numpy().astype(dtype)


def _out_dtype(ndim: int, out_type: str) -> np.dtype:
    """f16 files keep 1-D tensors (norms, biases) in f32, like llama.cpp's MOSTLY_F16."""
    return np.dtype(np.float16 if out_type == "f16" and ndim > 1 else np.float32)


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InputError(f"{folder} has no .safetensors weights", "save the model with safetensors (transformers 5 "
                                                                  "always does), or export --format merged")
    return files


def _plan(handles: dict[str, Any], config: dict[str, Any], out_type: str) -> list[_Tensor]:
    """Every tensor to write, in order, with its GGUF name; refuses tensors llama.cpp's `llama` has no slot for."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    plan, unknown = [], []
    for source, handle in handles.items():
        if source.endswith(".rotary_emb.inv_freq") or (source == "lm_head.weight"
                                                       and config.get("tie_word_embeddings")):
            continue  # recomputed by llama.cpp / the same tensor as the embeddings
        name = names.get_name(source, try_suffixes=(".weight", ".bias"))
        if name is None:
            unknown.append(source)
            continue
        shape = tuple(handle.get_slice(source).get_shape())
        plan.append(_Tensor(name, source, shape, _out_dtype(len(shape), out_type)))
    if unknown:
        raise InputError(f"GGUF export has no llama.cpp tensor for: {', '.join(unknown[:8])}"
                         + (f" (+{len(unknown) - 8} more)" if len(unknown) > 8 else ""),
                         "export with --format merged instead")
    if _rope_type(_rope(config)[1]) == "llama3":
        plan.append(_Tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", "",
                            (_head_dim(config) // 2,), np.dtype(np.float32)))
    return plan


def _tensor_data(plan: list[_Tensor], handles: dict[str, Any], config: dict[str, Any]) -> Iterator[np.ndarray]:
    for tensor in plan:
        if not tensor.source:
            yield _llama3_rope_factors(config).numpy()
            continue
        yield _to_gguf(tensor.source, handles[tensor.source].get_tensor(tensor.source), config, tensor.dtype)


# ---- the file ----------------------------------------------------------------------------------------------------


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise InputError(f"{folder} has no config.json: not a Hugging Face model folder")
    return json.loads(path.read_text(encoding="utf-8"))


def write_gguf(folder: Path, target: Path, *, out_type: str = "f32", name: str = "model") -> Path:
    """Convert the Hugging Face folder `folder` (weights, config.json, tokenizer.json) into the GGUF file `target`.

    Every check runs before the first byte is written; the file is written under a temporary name next to
    `target` and renamed into place. Returns `target`.
    """
    import gguf
    from safetensors import safe_open

    if out_type not in GGUF_TYPES:
        raise InputError(f"--gguf-type {out_type!r} is not supported", f"use one of: {', '.join(GGUF_TYPES)}")
    folder, target = Path(folder), Path(target)
    config = read_config(folder)
    check_architecture(config, name)
    _check_rope(config, name)
    pre = _check_tokenizer(folder, name)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}.gguf"
    with ExitStack() as stack:
        handles = {}
        for file in _weight_files(folder):
            handle = stack.enter_context(safe_open(str(file), framework="pt"))
            handles.update(dict.fromkeys(handle.keys(), handle))
        plan = _plan(handles, config, out_type)
        writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        _add_hparams(writer, config, name, out_type)
        _add_vocab(writer, folder, config["vocab_size"], pre)
        for tensor in plan:
            writer.add_tensor_info(tensor.name, tensor.shape, tensor.dtype,
                                   math.prod(tensor.shape) * tensor.dtype.itemsize)
        try:
            _write(writer, tmp, _tensor_data(plan, handles, config))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(target)
    return target


def _write(writer: Any, path: Path, tensors: Iterator[np.ndarray]) -> None:
    """Header, metadata and tensor index first, then each tensor's data as it is converted."""
    try:
        writer.write_header_to_file(path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for data in tensors:
            writer.write_tensor_data(data)
    finally:
        writer.close()
