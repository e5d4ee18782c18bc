"""Service functions over trained models (merge), shared by the CLI and later the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.errors import InputError
from tunelab.store import Store
from tunelab.train.merge import merge_adapter


def merge_model(store: Store, ref: str, out: Path | None = None) -> dict[str, Any]:
    model = store.get_model(ref)
    if model["kind"] != "adapter":
        raise InputError(f"model {model['id']} holds full weights already; nothing to merge",
                         f"its folder loads as it is: {model['path']}")
    target = out or Path(model["path"]).parent / "merged"
    labels = model["labels"]
    id2label = {i: label for label, i in labels.items()} if labels else None
    merge_adapter(model["base_model"], Path(model["path"]), target, task=model["task"],
                  num_labels=len(labels) if labels else None, id2label=id2label)
    store.audit("models.merge", model["id"], {"out": str(target)})
    return {"model": model["id"], "out": str(target)}
