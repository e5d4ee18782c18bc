"""Put LoRA adapters on a transformers model, with target errors that say what exists.

PEFT matches `target_modules` by module-name suffix and, when some names match and others do not, only warns
(huggingface/peft#1959). tunelab checks every name first and fails on any that matches nothing, listing the
Linear layers the model has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from tunelab.errors import InputError

ALL_LINEAR = "all-linear"
TASK_TYPES = {"sft": "CAUSAL_LM", "classification": "SEQ_CLS", "token_classification": "TOKEN_CLS"}


def _linear_classes() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D  # GPT-2 style blocks use Conv1D as their linear layer

    return (nn.Linear, Conv1D)


def head_names(model: nn.Module) -> list[str]:
    """Top-level modules that sit outside the backbone: the classification head (classifier, score, pre_classifier,
    classification_head, ...) or the LM head. These are what a classification adapter must train and save whole."""
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    if backbone is None or backbone is model:
        return []
    return [name for name, child in model.named_children()
            if child is not backbone and any(True for _ in child.parameters())]


def _excluded_prefixes(model: nn.Module) -> list[str]:
    """Module names whose subtree LoRA never targets: output heads and embeddings."""
    excluded = set(head_names(model))
    get_output = getattr(model, "get_output_embeddings", None)
    output_head = get_output() if callable(get_output) else None
    for name, module in model.named_modules():
        if name and (module is output_head or isinstance(module, nn.Embedding) or name.split(".")[-1] == "embeddings"):
            excluded.add(name)
    return sorted(excluded)


def _split_linear(model: nn.Module) -> tuple[list[str], list[str]]:
    """Full names of the Linear layers LoRA may target, and of those it must not (heads, embeddings)."""
    excluded = _excluded_prefixes(model)
    inside, outside = [], []
    for name, module in model.named_modules():
        if isinstance(module, _linear_classes()):
            is_excluded = any(name == p or name.startswith(p + ".") for p in excluded)
            (outside if is_excluded else inside).append(name)
    return inside, outside


def _matches(target: str, name: str) -> bool:
    """PEFT's rule for a list of names: the whole module name, or its dotted suffix."""
    return name == target or name.endswith("." + target)


def _short_suffix(name: str, avoid: list[str]) -> str:
    """The shortest dotted suffix of `name` that matches none of the `avoid` module names."""
    parts = name.split(".")
    for size in range(1, len(parts) + 1):
        suffix = ".".join(parts[-size:])
        if not any(_matches(suffix, other) for other in avoid):
            return suffix
    return name


def _dedup(items: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def default_target_modules(model: nn.Module) -> list[str]:
    """All linear layers of the transformer blocks, by module-name suffix, in model order.

    Llama/Mistral/Qwen give q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; BERT-like encoders give
    query, key, value, dense. The output head (lm_head, classifier, score, ...) and embeddings are left out; where a
    short suffix would also hit a head layer (RoBERTa's `classifier.dense`), a longer one is used (`output.dense`).
    """
    inside, outside = _split_linear(model)
    return _dedup(_short_suffix(name, outside) for name in inside)


def _requested(target_modules: list[str] | str, model: nn.Module) -> list[str]:
    if isinstance(target_modules, str):
        if target_modules.strip().lower() == ALL_LINEAR:
            return default_target_modules(model)
        target_modules = target_modules.replace(",", " ").split()
    names = _dedup(str(t).strip() for t in target_modules if str(t).strip())
    if not names:
        raise InputError("no LoRA target modules given", f"Use target_modules: {ALL_LINEAR} to select all.")
    if ALL_LINEAR in names:
        raise InputError(f"{ALL_LINEAR} cannot be combined with other target module names",
                         f"Use target_modules: {ALL_LINEAR} alone, or list the names.")
    inside, _ = _split_linear(model)
    unknown = [t for t in names if not any(_matches(t, name) for name in inside)]
    if unknown:
        existing = ", ".join(_dedup(name.split(".")[-1] for name in inside))
        raise InputError(f"Unknown LoRA target(s) {', '.join(unknown)}. Linear modules in this model: {existing}.",
                         f"Use target_modules: {ALL_LINEAR} to select all.")
    return names


def apply_lora(model: nn.Module, *, r: int, alpha: int, dropout: float, target_modules: list[str] | str,
               task: str) -> Any:
    """Wrap `model` in a PeftModel with LoRA on `target_modules`.

    task "sft" uses TaskType.CAUSAL_LM. task "classification" uses TaskType.SEQ_CLS ("token_classification":
    TOKEN_CLS) and puts the head modules (found per architecture: classifier, score, pre_classifier, ...) in
    `modules_to_save`, so they stay trainable and are saved with the adapter.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if task not in TASK_TYPES:
        raise InputError(f"unknown task {task!r}", f"use one of: {', '.join(TASK_TYPES)}")
    if r < 1:
        raise InputError(f"LoRA rank r must be at least 1, got {r}")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"LoRA dropout must be in [0, 1), got {dropout}")
    targets = _requested(target_modules, model)
    modules_to_save = None
    if task != "sft":
        modules_to_save = head_names(model)
        if not modules_to_save:
            raise InputError(f"{type(model).__name__} has no classification head to train",
                             "load the base model with AutoModelFor(Sequence|Token)Classification")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        modules_to_save=modules_to_save, task_type=getattr(TaskType, TASK_TYPES[task]), bias="none")
    peft_model = get_peft_model(model, config)
    saved = peft_model.peft_config["default"]
    if saved.modules_to_save:  # PEFT appends its own ["classifier", "score"] for SEQ_CLS: keep each name once
        saved.modules_to_save = _dedup(saved.modules_to_save)
    return peft_model


def trainable_summary(model: nn.Module) -> dict[str, int | float]:
    """Trainable and total parameter counts, and the trainable share in percent (4-bit weights counted unpacked)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        params = list(model.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
    percent = round(100.0 * trainable / total, 4) if total else 0.0
    return {"trainable": int(trainable), "total": int(total), "percent": percent}
