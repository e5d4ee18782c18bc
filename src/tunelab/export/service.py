"""Export a registered model for other runtimes: a merged Hugging Face folder (transformers, vLLM) or GGUF (llama.cpp).

Both formats start from plain Hugging Face weights: a full model's own folder, or an adapter merged into its base.
An export folder carries an `export.json` naming what it holds; only such a folder (or a new or empty one) is ever
replaced, so a mistyped `--out` cannot wipe a folder that tunelab did not write.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tunelab.errors import InputError
from tunelab.export.gguf import GGUF_TYPES, check_architecture, read_config, unsupported_architecture, write_gguf
from tunelab.govern import cards
from tunelab.store import Store
from tunelab.train.merge import merge_adapter
from tunelab.train.service import merge_model

FORMATS = ("merged", "gguf")
MARKER = cards.EXPORT_MARKER


def export_model(store: Store, ref: str, fmt: str, out: Path | None = None, gguf_type: str = "f32") -> dict[str, Any]:
    """Write model `ref` in format `fmt` to `out` (default: `export-<fmt>` next to the model's folder).

    Returns {"model", "format", "out", "files" (paths relative to out), "bytes"}. Raises InputError for an unknown
    format or GGUF type, a model GGUF cannot describe, or an `out` that is not new, empty or an earlier export.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not supported", f"use one of: {', '.join(FORMATS)}")
    if fmt == "gguf" and gguf_type not in GGUF_TYPES:
        raise InputError(f"--gguf-type {gguf_type!r} is not supported", f"use one of: {', '.join(GGUF_TYPES)}")
    model = store.get_model(ref)
    target = Path(out) if out else Path(model["path"]).parent / f"export-{fmt}"
    _check_target(target)
    if fmt == "merged":
        _export_merged(store, model, target)
    else:
        _export_gguf(model, target, gguf_type)
    cards.write(store, model, target)  # the model card travels with the weights
    files = _files(target)
    (target / MARKER).write_text(json.dumps({"model": model["id"], "format": fmt, "files": files,
                                             "gguf_type": gguf_type if fmt == "gguf" else None}, indent=2) + "\n")
    result = {"model": model["id"], "format": fmt, "out": str(target), "files": files,
              "bytes": sum((target / name).stat().st_size for name in files)}
    store.audit("models.export", model["id"], {"format": fmt, "out": str(target), "bytes": result["bytes"]})
    return result


def _check_target(target: Path) -> None:
    """Refuse to write into a file, or into a non-empty folder that is not an earlier tunelab export."""
    if target.exists() and not target.is_dir():
        raise InputError(f"--out {target} is a file", "pass a folder (new, empty or an earlier export)")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).exists():
        raise InputError(f"--out {target} is not empty and holds no earlier tunelab export",
                         "pass a new or empty folder; an export replaces what an earlier export wrote there")


def _files(target: Path) -> list[str]:
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file() and p.name != MARKER)


def _export_merged(store: Store, model: dict[str, Any], target: Path) -> None:
    """An adapter merged into its base, or a full model's folder copied: either way a folder transformers loads."""
    if model["kind"] == "adapter":
        merge_model(store, model["id"], target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-export-{uuid.uuid4().hex}"
    try:
        shutil.copytree(model["path"], tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _source_config(model: dict[str, Any]) -> dict[str, Any]:
    """The config the exported weights will have: the model's own, or for an adapter its base's."""
    if model["kind"] != "adapter":
        return read_config(Path(model["path"]))
    if (Path(model["base_model"]) / "config.json").exists():
        return read_config(Path(model["base_model"]))
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model["base_model"]).to_dict()


def _check_gguf(model: dict[str, Any]) -> None:
    """Refuse before merging anything: (token) classifiers, and every architecture outside the llama family."""
    config = _source_config(model)
    if model["task"] in ("classification", "token_classification"):
        arch = (config.get("architectures") or [config.get("model_type", "a model")])[0]
        if not arch.endswith(("ForSequenceClassification", "ForTokenClassification")):
            arch = f"{arch} with a classification head"
        raise unsupported_architecture(model["id"], arch)
    check_architecture(config, model["id"])


def _export_gguf(model: dict[str, Any], target: Path, gguf_type: str) -> None:
    """Write `<model id>-<type>.gguf` into `target`, merging an adapter into a temporary folder first."""
    _check_gguf(model)
    target.mkdir(parents=True, exist_ok=True)
    name = f"{model['id']}-{gguf_type}.gguf"
    if model["kind"] != "adapter":
        write_gguf(Path(model["path"]), target / name, out_type=gguf_type, name=model["name"])
        return
    with tempfile.TemporaryDirectory(dir=target, prefix=".tmp-merge-") as tmp:
        merged = merge_adapter(model["base_model"], Path(model["path"]), Path(tmp) / "merged", task="sft")
        write_gguf(merged, target / name, out_type=gguf_type, name=model["name"])
