"""Service functions over trained models (merge, load for inference), shared by the CLI, evaluation and serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.errors import InputError
from tunelab.store import Store
from tunelab.train.merge import load_merged, merge_adapter


def _id2label(model: dict[str, Any]) -> dict[int, str] | None:
    labels = model["labels"]
    return {i: label for label, i in labels.items()} if labels else None


def load_model(model: dict[str, Any]) -> tuple[Any, Any]:
    """A registered model (store.get_model's dict) ready for inference: adapters merged in memory, eval mode."""
    from transformers import AutoTokenizer

    from tunelab.train.setup import AUTO_MODELS

    id2label = _id2label(model)
    if model["kind"] == "adapter":
        return load_merged(model["base_model"], Path(model["path"]), task=model["task"],
                           num_labels=len(id2label) if id2label else None, id2label=id2label)
    auto = AUTO_MODELS[model["task"]]
    return auto.from_pretrained(model["path"]).eval(), AutoTokenizer.from_pretrained(model["path"])


def merge_model(store: Store, ref: str, out: Path | None = None) -> dict[str, Any]:
    model = store.get_model(ref)
    if model["kind"] != "adapter":
        raise InputError(f"model {model['id']} holds full weights already; nothing to merge",
                         f"its folder loads as it is: {model['path']}")
    target = out or Path(model["path"]).parent / "merged"
    id2label = _id2label(model)
    merge_adapter(model["base_model"], Path(model["path"]), target, task=model["task"],
                  num_labels=len(id2label) if id2label else None, id2label=id2label)
    store.audit("models.merge", model["id"], {"out": str(target)})
    return {"model": model["id"], "out": str(target)}
