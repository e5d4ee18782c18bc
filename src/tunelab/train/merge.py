"""Merge a LoRA adapter into its base model: one plain transformers folder that needs no peft to load."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from tunelab.errors import InputError, NotFoundError

TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json")


def _has_tokenizer(folder: str | Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and any((folder / name).exists() for name in TOKENIZER_FILES)


def _saved_dtype(base_path: str) -> torch.dtype:
    """The dtype the base weights were saved in: the merged model is saved in it too (merging itself runs in fp32)."""
    config = Path(base_path) / "config.json"
    if not config.exists():
        return torch.float32
    data = json.loads(config.read_text())
    saved = data.get("dtype") or data.get("torch_dtype")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(saved, torch.float32)


def _load_base(base_path: str, task: str, num_labels: int | None, id2label: dict[int, str] | None):
    from tunelab.train.setup import AUTO_MODELS

    if task not in AUTO_MODELS:
        raise InputError(f"unknown task {task!r}", f"use one of: {', '.join(AUTO_MODELS)}")
    if task == "sft":
        return AUTO_MODELS[task].from_pretrained(base_path, dtype=torch.float32)
    if num_labels is None and id2label is None:
        raise InputError("merging a classification adapter needs the label map (num_labels or id2label)",
                         "pass the labels the adapter was trained with")
    id2label = {int(k): v for k, v in id2label.items()} if id2label else None
    num_labels = num_labels if num_labels is not None else len(id2label)
    if id2label and len(id2label) != num_labels:
        raise InputError(f"num_labels is {num_labels} but id2label has {len(id2label)} labels")
    label_kwargs = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
    return AUTO_MODELS[task].from_pretrained(base_path, dtype=torch.float32, num_labels=num_labels, **label_kwargs)


def load_merged(base_path: str, adapter_dir: Path, *, task: str, num_labels: int | None = None,
                id2label: dict[int, str] | None = None) -> tuple[torch.nn.Module, Any]:
    """The base model with the adapter folded into its weights (fp32, eval mode), and the tokenizer to use with it.

    The tokenizer comes from the adapter folder if it was saved there, else from the base (None if neither has one).
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise NotFoundError(f"{adapter_dir} has no adapter_config.json: not a PEFT adapter folder")
    base = _load_base(base_path, task, num_labels, id2label)
    tokenizer_source = str(adapter_dir) if _has_tokenizer(adapter_dir) else base_path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source) if _has_tokenizer(tokenizer_source) else None
    if tokenizer is not None and base.config.pad_token_id is None:
        # sequence classification needs it to find the last token of padded batches
        base.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else tokenizer.eos_token_id
    merged = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False).merge_and_unload()
    return merged.eval(), tokenizer


def merge_adapter(base_path: str, adapter_dir: Path, out_dir: Path, *, task: str, num_labels: int | None = None,
                  id2label: dict[int, str] | None = None) -> Path:
    """Load the base model, apply the adapter, fold it into the weights and save the result to `out_dir`.

    The folder holds model.safetensors, config.json and the tokenizer (from the adapter folder if it was saved there,
    else from the base). It is written to a temporary folder next to `out_dir` and renamed into place, replacing any
    earlier merge. Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    merged, tokenizer = load_merged(base_path, adapter_dir, task=task, num_labels=num_labels, id2label=id2label)
    merged = merged.to(_saved_dtype(base_path))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".tmp-merge-{uuid.uuid4().hex}"
    old = out_dir.parent / f".old-merge-{uuid.uuid4().hex}"
    try:
        merged.save_pretrained(tmp)  # transformers 5 always writes safetensors
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir
