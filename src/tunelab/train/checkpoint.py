"""Checkpoints that survive a crash: written to a temporary folder, hashed, then renamed into place.

A checkpoint holds the trainable weights, the optimizer and scheduler, every RNG state and the loop's position,
so `--resume` continues exactly where the run was. A manifest of SHA-256 hashes lets a damaged checkpoint be
refused with a clear message instead of loading garbage.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunelab.errors import TunelabError

MANIFEST = "manifest.json"


@dataclass
class LoopState:
    """Where the loop is: enough to continue as if it had never stopped."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    tokens_seen: int = 0
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    best_val_f1: float | None = None  # macro F1 over labels (classification)
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # eval points
    warnings: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().contiguous().clone() for name, p in model.named_parameters() if p.requires_grad}


def _rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()  # dropout on the GPU draws from these
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: Any, state: LoopState, scaler: torch.amp.GradScaler | None = None) -> Path:
    """Write checkpoint-<step> atomically and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"checkpoint-{step:07d}"
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    states = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    if scaler is not None:
        states["scaler"] = scaler.state_dict()
    torch.save(states, tmp / "optimizer.pt")
    torch.save(_rng_states(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    manifest = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def verify(path: Path) -> None:
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise TunelabError(f"checkpoint {path} is incomplete (no {MANIFEST})",
                           "delete it to resume from the one before, or start the run again")
    for name, expected in json.loads(manifest_path.read_text()).items():
        file = path / name
        if not file.exists() or _sha256(file) != expected:
            raise TunelabError(f"checkpoint {path} is corrupted: {name} does not match its recorded hash",
                               "delete this checkpoint folder to resume from the one before, or start again")


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
         scaler: torch.amp.GradScaler | None = None) -> LoopState:
    """Restore everything `save` wrote; the checkpoint is verified first."""
    verify(path)
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise TunelabError(f"checkpoint {path} does not fit this model (unknown weights: {', '.join(missing[:3])})",
                           "resume with the same base model and config as the run")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    states = torch.load(path / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    if scaler is not None and "scaler" in states:
        scaler.load_state_dict(states["scaler"])
    _set_rng_states(torch.load(path / "rng.pt", weights_only=False))
    return LoopState(**json.loads((path / "state.json").read_text()))


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Only the trainable weights (e.g. the best checkpoint's, before saving the final model)."""
    verify(path)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in load_file(str(path / "trainable.safetensors")).items():
            params[name].copy_(tensor)


def checkpoints(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("checkpoint-*") if p.is_dir())


def latest(directory: Path) -> Path | None:
    found = checkpoints(directory)
    return found[-1] if found else None


def prune(directory: Path, keep: int, best_step: int | None) -> None:
    """Keep the newest `keep` checkpoints and the best one."""
    found = checkpoints(directory)
    best = directory / f"checkpoint-{best_step:07d}" if best_step is not None else None
    for path in found[:-keep]:
        if path != best:
            shutil.rmtree(path, ignore_errors=True)
    for stale in directory.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
