"""Everything a run needs before its first step: data, tokenizer, model, optimizer, schedule.

Each piece is a small function so the recipe reads top to bottom; nothing here trains.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    get_scheduler,
)

from tunelab.data.versions import read_split
from tunelab.errors import InputError, TunelabError
from tunelab.models import ResolvedModel, quiet_transformers, resolve_base_model
from tunelab.records import DatasetVersion
from tunelab.store import Store
from tunelab.train import data as tdata
from tunelab.train import tagging
from tunelab.train.config import TrainConfig, resolve
from tunelab.train.defaults import DataFacts, fit_to_data
from tunelab.train.device import DevicePlan, plan_device, quantization_config
from tunelab.train.lora import apply_lora, head_names, trainable_summary

AUTO_MODELS = {"sft": AutoModelForCausalLM, "classification": AutoModelForSequenceClassification,
               "token_classification": AutoModelForTokenClassification}
# The dataset kinds each task trains on.
FITS = {"sft": ("chat", "instruction", "completion"), "classification": ("classification",),
        "token_classification": ("token_classification",)}


@dataclass
class Setup:
    cfg: TrainConfig  # resolved
    dataset: DatasetVersion
    base: ResolvedModel
    device: DevicePlan
    tokenizer: Any
    model: torch.nn.Module
    train: tdata.Encoded
    validation: tdata.Encoded | None
    label2id: dict[str, int] | None
    plans: list[list[list[int]]]  # micro-batches per epoch, as index lists
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    class_weights: torch.Tensor | None
    summary: dict[str, Any]
    scaler: torch.amp.GradScaler | None = None  # fp16 loss scaling


def load_dataset(store: Store, cfg: TrainConfig) -> DatasetVersion:
    dataset = store.get_dataset(cfg.dataset)
    if "train" not in dataset.splits:
        raise InputError(f"dataset {dataset.id} has no train split", "prepare it with `tunelab data prepare`")
    task = resolve(cfg, dataset.kind).task
    if dataset.kind not in FITS[task]:
        raise InputError(f"task {task} does not fit the {dataset.kind} dataset {dataset.id}",
                         "use task: classification for text+label data, token_classification for text+spans data, "
                         "sft for chat/instruction/completion data")
    return dataset


def load_tokenizer(base: ResolvedModel) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def _model_config(base: ResolvedModel, cfg: TrainConfig, label2id: dict[str, int] | None, pad_id: int) -> Any:
    config = AutoConfig.from_pretrained(base.path)
    if cfg.dropout is not None:
        for key, value in config.to_dict().items():
            if "dropout" in key and isinstance(value, float):
                setattr(config, key, cfg.dropout)
    if label2id is not None:
        config.num_labels = len(label2id)
        config.label2id = dict(label2id)
        config.id2label = {i: label for label, i in label2id.items()}
        config.pad_token_id = config.pad_token_id if config.pad_token_id is not None else pad_id
    return config


def load_model(base: ResolvedModel, cfg: TrainConfig, device: DevicePlan, label2id: dict[str, int] | None,
               tokenizer: Any) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)  # a new classification head and the LoRA matrices start the same every time
    config = _model_config(base, cfg, label2id, tokenizer.pad_token_id)
    auto = AUTO_MODELS[cfg.task]
    # 4-bit weights are quantised as they are placed, so they load straight onto their GPU
    placement = {"device_map": {"": _local_device(device)}} if device.quantize_4bit else {}
    try:
        model = auto.from_pretrained(base.path, config=config, dtype=device.load_dtype(cfg.method),
                                     attn_implementation=device.attn_implementation,
                                     quantization_config=quantization_config(device), **placement)
    except (OSError, ValueError) as exc:
        raise TunelabError(f"cannot load base model {base.name!r} for {cfg.task}: {exc}",
                           "check base_model (a short name, a model folder, or a hub name with network "
                           "access)") from exc
    model.config.use_cache = False  # a KV cache in training hides packed sequences from the attention masks
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.method != "full":
            model.enable_input_require_grads()
    if cfg.method in ("lora", "qlora"):
        model = apply_lora(model, r=cfg.lora.r, alpha=cfg.lora.alpha, dropout=cfg.lora.dropout,
                           target_modules=cfg.lora.target_modules, task=cfg.task)
        for param in model.parameters():  # a classification head copied from a half-precision base, say
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return model if device.quantize_4bit else model.to(_local_device(device))


def _local_device(device: DevicePlan) -> str:
    """This process's device: with several GPUs, torchrun's LOCAL_RANK picks one."""
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if device.device == "cuda" else device.device


def encode(cfg: TrainConfig, dataset: DatasetVersion, tokenizer: Any
           ) -> tuple[tdata.Encoded, tdata.Encoded | None, dict[str, int] | None]:
    tables = {s: read_split(dataset, s) for s in ("train", "validation") if s in dataset.splits}
    if cfg.task == "classification":
        label2id = tdata.label_map(list(tables.values()))
        encoded = {s: tdata.encode_classification(t, tokenizer, label2id, cfg.max_seq_length)
                   for s, t in tables.items()}
    elif cfg.task == "token_classification":
        label2id = tagging.label_map(list(tables.values()))
        encoded = {s: tagging.encode_token_classification(t, tokenizer, label2id, cfg.max_seq_length)
                   for s, t in tables.items()}
    else:
        label2id = None
        encoded = {s: tdata.encode_sft(t, dataset.kind, tokenizer, cfg.max_seq_length) for s, t in tables.items()}
    if not encoded["train"].input_ids:
        raise InputError(f"no train example of {dataset.id} is left after tokenisation",
                         f"check max_seq_length ({cfg.max_seq_length}) against the data")
    return encoded["train"], encoded.get("validation"), label2id


def plan_epochs(cfg: TrainConfig, train: tdata.Encoded, world: int = 1) -> tuple[list[list[list[int]]], int]:
    """The micro-batch plan of each epoch, and the optimizer steps to take (a fractional epoch ends early).

    With several processes a micro-batch is global (batch_size examples per process); each takes its share.
    """
    ga = cfg.gradient_accumulation_steps

    def plan(epoch: int) -> list[list[int]]:
        return tdata.plan_batches(train.lengths, batch_size=cfg.batch_size * world, seed=cfg.seed, epoch=epoch,
                                  packing=cfg.packing and cfg.task == "sft",
                                  max_tokens=cfg.max_tokens * world if cfg.max_tokens else None)

    plans = [plan(e) for e in range(math.ceil(cfg.epochs))]
    steps = [math.ceil(len(p) / ga) for p in plans]
    if cfg.max_steps:
        while sum(steps) < cfg.max_steps:
            plans.append(plan(len(plans)))
            steps.append(math.ceil(len(plans[-1]) / ga))
        return plans, cfg.max_steps
    whole, fraction = int(cfg.epochs), cfg.epochs - int(cfg.epochs)
    total = sum(steps[:whole]) + (max(1, round(fraction * steps[whole])) if fraction else 0)
    return plans, total


def head_parameters(model: torch.nn.Module) -> set[int]:
    """ids of the trainable parameters of a new classification head (LoRA's trainable copy included)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {id(p) for name in head_names(base) for p in getattr(base, name).parameters() if p.requires_grad}


def optimizer_and_schedule(cfg: TrainConfig, model: torch.nn.Module, total_steps: int) -> tuple[Any, Any]:
    """AdamW with decay on matrices only; a (token) classification head gets its own learning rate. The body's
    groups come first, so the scheduler's first rate (the one logged) is the body's."""
    params = [p for p in model.parameters() if p.requires_grad]
    head = head_parameters(model) if cfg.task != "sft" and cfg.head_learning_rate else set()
    groups = []
    for rate, members in ((cfg.learning_rate, [p for p in params if id(p) not in head]),
                          (cfg.head_learning_rate, [p for p in params if id(p) in head])):
        groups += [{"params": [p for p in members if p.ndim >= 2], "weight_decay": cfg.weight_decay, "lr": rate},
                   {"params": [p for p in members if p.ndim < 2], "weight_decay": 0.0, "lr": rate}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate, foreach=True)
    warmup = cfg.warmup_ratio * total_steps
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=int(warmup),
                              num_training_steps=total_steps)
    return optimizer, scheduler


def validation_sample(validation: tdata.Encoded | None, limit: int | None, seed: int) -> tdata.Encoded | None:
    """At most `limit` validation examples, a seeded sample in their original order, fixed for the whole run."""
    if validation is None or not limit or len(validation.input_ids) <= limit:
        return validation
    keep = sorted(random.Random(seed).sample(range(len(validation.input_ids)), limit))
    return dataclasses.replace(validation, input_ids=[validation.input_ids[i] for i in keep],
                               labels=[validation.labels[i] for i in keep])


def data_facts(cfg: TrainConfig, train: tdata.Encoded, label2id: dict[str, int] | None,
               model_config: Any) -> DataFacts:
    """What defaults.fit_to_data reads; token classification counts entity types, not B-/I- tags."""
    labels = len(label2id or {})
    if cfg.task == "token_classification" and label2id:
        labels = len({tag[2:] for tag in label2id if tag != "O"})
    hidden = next((getattr(model_config, k) for k in ("hidden_size", "dim", "d_model", "n_embd") if
                   isinstance(getattr(model_config, k, None), int)), None)
    return DataFacts(examples=len(train.input_ids), labels=labels, hidden_size=hidden)


def planned_config(store: Store, cfg_given: TrainConfig) -> TrainConfig:
    """The resolved config a run of `cfg_given` would train with, without loading the model (for benchmarks that
    give a peer the same recipe, and for showing the defaults before training)."""
    dataset = load_dataset(store, cfg_given)
    cfg = resolve(cfg_given, dataset.kind)
    base = resolve_base_model(cfg.base_model, store.workspace)
    train, _, label2id = encode(cfg, dataset, load_tokenizer(base))
    return fit_to_data(cfg, data_facts(cfg, train, label2id, AutoConfig.from_pretrained(base.path)))[0]


def class_weights(cfg: TrainConfig, train: tdata.Encoded, label2id: dict[str, int] | None,
                  device: DevicePlan) -> torch.Tensor | None:
    if cfg.task != "classification" or cfg.class_weights == "none":
        return None
    counts = np.bincount(np.asarray(train.labels), minlength=len(label2id)).astype(np.float64)
    return torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32,
                        device=_local_device(device))


def _step_tokens(cfg: TrainConfig, train: tdata.Encoded, device: DevicePlan) -> TrainConfig:
    """Default packed step: batch_size examples of mean length, so learning rates keep their unpacked meaning;
    default pass: short on a CPU (measured fastest in bench/), long on a GPU (fewer kernel launches)."""
    if cfg.task != "sft":
        return cfg
    mean = sum(train.lengths) / len(train.input_ids)
    return cfg.model_copy(update={
        "max_tokens": cfg.max_tokens or max(8, round(cfg.batch_size * mean)),
        "forward_tokens": cfg.forward_tokens or (16384 if device.device == "cuda" else 512)})


def build(store: Store, cfg_given: TrainConfig) -> Setup:
    """Resolve the config against the data and build every piece, failing before any training starts."""
    quiet_transformers()
    dataset = load_dataset(store, cfg_given)
    cfg = resolve(cfg_given, dataset.kind)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = plan_device(method=cfg.method, precision=cfg.precision, attn_implementation=cfg.attn_implementation)
    base = resolve_base_model(cfg.base_model, store.workspace)
    tokenizer = load_tokenizer(base)
    train, validation, label2id = encode(cfg, dataset, tokenizer)
    cfg = _step_tokens(cfg, train, device)
    model = load_model(base, cfg, device, label2id, tokenizer)
    cfg, defaults = fit_to_data(cfg, data_facts(cfg, train, label2id, model.config))
    validation = validation_sample(validation, cfg.eval_examples, cfg.seed)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    plans, total_steps = plan_epochs(cfg, train, world)
    optimizer, scheduler = optimizer_and_schedule(cfg, model, total_steps)
    summary = {"train_examples": len(train.input_ids), "validation_examples": len(validation.input_ids)
               if validation else 0, "truncated": train.truncated, "dropped": train.dropped,
               "parameters": trainable_summary(model), "device": device.device, "dtype": str(device.dtype),
               "attn_implementation": device.attn_implementation, "notes": device.notes,
               "defaults": defaults}
    return Setup(cfg, dataset, base, device, tokenizer, model, train, validation, label2id, plans, total_steps,
                 optimizer, scheduler, class_weights(cfg, train, label2id, device), summary, device.grad_scaler())
