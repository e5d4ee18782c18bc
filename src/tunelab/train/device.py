"""Choose device, dtype, attention kernel and quantisation for a training run.

`auto` picks the best the machine offers. An explicit request the machine cannot honour is refused with the reason
and the setting to use instead: tunelab never silently downgrades what was asked for.
"""

from __future__ import annotations

import importlib
import os
import platform
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from tunelab.errors import InputError

METHODS = ("lora", "qlora", "full")
PRECISIONS = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class DevicePlan:
    """Half precision is mixed precision: frozen base weights are stored in `dtype`, trainable weights stay fp32
    (the optimizer's updates would vanish in bf16's 8-bit mantissa), and the forward runs under autocast."""

    device: str  # cpu | cuda
    dtype: torch.dtype  # compute dtype: frozen weights are loaded in it (the compute dtype for 4-bit weights)
    attn_implementation: str  # passed to from_pretrained(attn_implementation=...)
    quantize_4bit: bool
    notes: list[str] = field(default_factory=list)

    @property
    def mixed(self) -> bool:
        return self.dtype != torch.float32

    def load_dtype(self, method: str) -> torch.dtype:
        """Full fine-tuning trains every weight, so all are loaded in fp32; adapters leave the base frozen."""
        return torch.float32 if method == "full" else self.dtype

    def autocast(self) -> Any:
        return torch.autocast(self.device, dtype=self.dtype) if self.mixed else nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return torch.amp.GradScaler(self.device) if self.dtype == torch.float16 else None


def _importable(package: str) -> bool:
    try:
        importlib.import_module(package)
    except Exception:  # installed but failing to import (a wrong CUDA build, say) counts as missing
        return False
    return True


def _check_choice(kind: str, value: str, choices) -> None:
    if value not in choices:
        raise InputError(f"unknown {kind} {value!r}", f"use one of: {', '.join(choices)}")


def _plan_cpu(method: str, precision: str, attn: str) -> DevicePlan:
    problems, fixes = [], []
    if method == "qlora":
        problems.append("qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); this machine has none.")
        fixes.append("Use method: lora.")
    if precision in ("bf16", "fp16"):
        problems.append(f"precision {precision} needs a CUDA GPU; this machine has none, and tunelab trains on CPU "
                        "in fp32 (half precision on CPU is slow without AMX and loses accuracy).")
        fixes.append("Use precision: fp32 (or auto).")
    if attn == "flash_attention_2":
        problems.append("attn_implementation flash_attention_2 needs a CUDA GPU and the flash_attn package; "
                        "this machine has no GPU.")
        fixes.append("Use attn_implementation: sdpa (or auto).")
    if problems:
        raise InputError(" ".join(problems), " ".join(fixes))
    notes = ["no CUDA GPU: training on CPU in fp32"]
    return DevicePlan("cpu", torch.float32, "sdpa" if attn == "auto" else attn, False, notes)


def _plan_cuda(method: str, precision: str, attn: str) -> DevicePlan:
    notes = [f"CUDA GPU: {torch.cuda.get_device_name(0)}"]
    bf16_ok = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16_ok:
        raise InputError(f"precision bf16 is not supported by this GPU ({torch.cuda.get_device_name(0)}).",
                         "Use precision: fp16 or fp32 (or auto).")
    if precision == "auto":
        dtype = torch.bfloat16 if bf16_ok else torch.float32
        if not bf16_ok:
            notes.append("this GPU has no bf16: using fp32 (set precision: fp16 to halve memory)")
    else:
        dtype = PRECISIONS[precision]
    if dtype != torch.float32:
        notes.append(f"mixed precision: compute in {str(dtype).removeprefix('torch.')}, trainable weights in fp32"
                     + (", loss scaling" if dtype == torch.float16 else ""))

    flash_ok = _importable("flash_attn")
    if attn == "flash_attention_2":
        if not flash_ok:
            raise InputError("attn_implementation flash_attention_2 needs the flash_attn package, which does not "
                             "import here.", "pip install flash-attn, or use attn_implementation: sdpa (or auto).")
        if dtype == torch.float32:
            raise InputError("attn_implementation flash_attention_2 needs bf16 or fp16 weights, not fp32.",
                             "Use precision: bf16 (or fp16), or attn_implementation: sdpa.")
    if attn == "auto":
        attn = "flash_attention_2" if flash_ok and dtype != torch.float32 else "sdpa"

    if method == "qlora":
        if not _importable("bitsandbytes"):
            raise InputError("qlora needs the bitsandbytes package (4-bit NF4 weights), which does not import here.",
                             "pip install bitsandbytes, or use method: lora.")
        notes.append(f"qlora: base weights in 4-bit NF4, compute in {str(dtype).removeprefix('torch.')}")
    return DevicePlan("cuda", dtype, attn, method == "qlora", notes)


def plan_device(*, method: str, precision: str = "auto", attn_implementation: str = "auto") -> DevicePlan:
    """The device plan for a run, or an InputError for a request this machine cannot honour.

    With CUDA: auto is bf16 where the GPU supports it (fp32 otherwise), flash_attention_2 when flash_attn imports and
    the dtype is half precision (sdpa otherwise); qlora loads 4-bit NF4 weights through bitsandbytes.
    Without CUDA: auto is fp32 with sdpa; bf16/fp16, flash_attention_2 and qlora are refused.
    """
    _check_choice("method", method, METHODS)
    _check_choice("precision", precision, tuple(PRECISIONS))
    _check_choice("attn_implementation", attn_implementation, ATTENTION)
    if torch.cuda.is_available():
        return _plan_cuda(method, precision, attn_implementation)
    return _plan_cpu(method, precision, attn_implementation)


def quantization_config(plan: DevicePlan) -> Any | None:
    """A BitsAndBytesConfig (4-bit NF4, double quantisation, compute in the plan's dtype) for qlora, else None."""
    if not plan.quantize_4bit:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=plan.dtype)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device() -> dict[str, Any]:
    """What the run record keeps about the machine: library versions, the device and the CPU threads."""
    import peft
    import transformers

    cuda = torch.cuda.is_available()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda_available": cuda,
        "device": "cuda" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name(0) if cuda else _cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "torch_threads": torch.get_num_threads(),
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(cuda_version=torch.version.cuda, gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), bf16_supported=torch.cuda.is_bf16_supported())
    return info
