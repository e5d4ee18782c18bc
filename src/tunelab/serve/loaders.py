"""How each kind of model comes off the disk for serving, and how LoRA adapters join and leave a base in memory.

Causal bases run in bf16 on a GPU (fp32 on a CPU); encoders and classifiers in fp32. A folder's kind is read from
its config: `...ForCausalLM` generates, `...ForSequenceClassification` classifies, `...ForTokenClassification`
tags entities, anything else embeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunelab.errors import TunelabError


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _causal_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def architecture(path: str) -> str:
    """causal | classifier | tagger | encoder, from the folder's config.json."""
    from transformers import AutoConfig

    names = AutoConfig.from_pretrained(path).architectures or []
    if any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names):
        return "causal"
    if any(n.endswith("ForSequenceClassification") for n in names):
        return "classifier"
    if any(n.endswith("ForTokenClassification") for n in names):
        return "tagger"
    return "encoder"


def tokenizer_for(path: str) -> Any:
    """The folder's tokenizer, with a pad token (eos) where it has none: batches need one."""
    from transformers import AutoTokenizer

    tokenizer = _pretrained(AutoTokenizer, path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_causal(path: str) -> Any:
    from transformers import AutoModelForCausalLM

    return _pretrained(AutoModelForCausalLM, path, dtype=_causal_dtype()).eval().to(device())


def load_encoder(path: str) -> Any:
    from transformers import AutoModel

    return _pretrained(AutoModel, path, dtype=torch.float32).eval().to(device())


def load_classifier(path: str) -> Any:
    from transformers import AutoModelForSequenceClassification

    return _pretrained(AutoModelForSequenceClassification, path, dtype=torch.float32).eval().to(device())


def load_tagger(path: str) -> Any:
    from transformers import AutoModelForTokenClassification

    return _pretrained(AutoModelForTokenClassification, path, dtype=torch.float32).eval().to(device())


def _pretrained(auto: Any, path: str, **kwargs: Any) -> Any:
    try:
        return auto.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise TunelabError(f"cannot load {path} with {auto.__name__}: {exc}",
                           "check that the folder holds a complete Hugging Face model") from exc


def attach_adapter(model: Any, path: str, name: str) -> Any:
    """The model with one more LoRA adapter called `name`; the first one wraps the base into a PeftModel."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.load_adapter(path, adapter_name=name, is_trainable=False)
        return model
    return PeftModel.from_pretrained(model, path, adapter_name=name, is_trainable=False).eval()


def detach_adapter(model: Any, name: str) -> Any:
    """The model without adapter `name`; without its last adapter it is the plain base again."""
    if set(model.peft_config) == {name}:
        return model.unload()
    model.delete_adapter(name)
    return model


def has_tokenizer(path: str) -> bool:
    return (Path(path) / "tokenizer_config.json").exists()
