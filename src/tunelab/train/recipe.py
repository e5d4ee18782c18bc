"""`tunelab train`: setup -> loop -> save -> register, top to bottom.

The run is recorded before its first step and kept current while it trains; a crash, a kill or a signal leaves
a checkpoint and a run record that `--resume` continues from exactly.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from tunelab.errors import InputError
from tunelab.govern import cards
from tunelab.store import Store
from tunelab.train import checkpoint, runs
from tunelab.train.checkpoint import LoopState
from tunelab.train.config import TrainConfig
from tunelab.train.device import describe_device
from tunelab.train.loop import Context, Outcome, run_loop
from tunelab.train.setup import Setup, build
from tunelab.train.sinks import Sink, open_sinks

PACKAGES = ("tunelab", "torch", "transformers", "peft", "accelerate", "tokenizers", "datasets")


def environment() -> dict[str, Any]:
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"packages": {p: installed(p) for p in PACKAGES}, "python": platform.python_version(),
            "device": describe_device()}


def _logger(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("tunelab.train")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def _distributed() -> tuple[int, int]:
    """(rank, world size): set by torchrun for `tunelab train --nproc N`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():  # one GPU per process; the loop's small CPU tensors go through gloo
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group("gloo")
    return (dist.get_rank() if world > 1 else 0), world


def _wrap(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel around the model for forward/backward; saving and evaluation keep the plain one."""
    from torch.nn.parallel import DistributedDataParallel

    devices = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=devices)


def _pruned(exc: BaseException) -> bool:
    """optuna.TrialPruned raised by an on_eval callback of `tunelab tune` (optuna is only imported there)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.TrialPruned)


def _resume_config(run: dict[str, Any], cfg: TrainConfig | None) -> TrainConfig:
    recorded = TrainConfig.model_validate(run["config_given"])
    if cfg is not None and cfg != recorded:
        changed = sorted(k for k in TrainConfig.model_fields if getattr(cfg, k) != getattr(recorded, k))
        raise InputError(f"the config differs from run {run['id']}'s in: {', '.join(changed)}",
                         "resume without a config (the run's own is used), or start a new run")
    return recorded


def train(store: Store, cfg: TrainConfig | None, *, resume: str | None = None,
          on_eval: Callable[[int, dict[str, float]], None] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Train (or resume) a run and register its model; returns the run summary.

    `run_id` is the id a new run gets (a background job picks it first, so a re-queued job finds its run).

    `on_eval(step, metrics)` is called after each evaluation (on every process); raising optuna.TrialPruned from it
    ends the run as "pruned" and the exception propagates to the tuner.
    """
    rank, world = _distributed()
    previous = runs.claim_for_resume(store, resume) if resume and rank == 0 else None
    if resume and previous is None:
        previous = store.get_run(resume)
    if cfg is None and previous is None:
        raise InputError("give a config file, or --resume RUN", "e.g. tunelab train examples/sms_spam/train.yaml")
    cfg = _resume_config(previous, cfg) if previous else cfg
    setup = build(store, cfg)
    run_id = previous["id"] if previous else run_id or _shared_run_id(rank, world)
    out = runs.run_dir(store, run_id)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.given.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True)))
        (out / "config.yaml").write_text(yaml.safe_dump(setup.cfg.model_dump(mode="json")))
        if previous is None:
            name = setup.cfg.name or f"{setup.dataset.name}-{setup.cfg.task}-{setup.cfg.method}"
            runs.start(store, run_id, name=name,
                       task=setup.cfg.task, method=setup.cfg.method, dataset_id=setup.dataset.id,
                       base_model=setup.base.name, base_revision=setup.base.revision,
                       config_given=cfg.model_dump(mode="json", exclude_unset=True),
                       config_resolved=setup.cfg.model_dump(mode="json"),
                       environment={**environment(), "setup": setup.summary},
                       output_dir=str(out), total_steps=setup.total_steps)
    if world > 1:
        dist.barrier()
    handler = _logger(out) if rank == 0 else None
    sinks: list[Sink] = []
    state = LoopState()
    ended = "failed"  # the run's final state, told to the sinks
    try:
        sinks = open_sinks(setup.cfg, out, run_id) if rank == 0 else []  # inside: a sink that fails fails the run
        state = _restore(setup, out) if previous else state
        if previous and rank == 0:
            _truncate_metrics(store, run_id, out, state.step)
        ctx = Context(store if rank == 0 else None, run_id, out, rank, world, sinks=sinks,
                      ddp=_wrap(setup.model) if world > 1 else None, on_eval=on_eval)
        outcome = run_loop(setup, state, ctx)
        if rank != 0:
            return {"run": run_id, "rank": rank}
        result = _finish(store, setup, outcome, run_id, out)
        ended = result["state"]
        return result
    except BaseException as exc:
        if rank == 0 and _pruned(exc):
            ended = "pruned"
            store.update_run(run_id, state="pruned", pid=None, finished_at=_now(), step=state.step,
                             best_val_loss=state.best_val_loss, best_val_accuracy=state.best_val_accuracy,
                             best_val_f1=state.best_val_f1, best_step=state.best_step, warnings=state.warnings,
                             error=f"pruned by the tuner at step {state.step}" + (f": {exc}" if str(exc) else ""))
        elif rank == 0:
            store.update_run(run_id, state="failed", error=f"{type(exc).__name__}: {exc}", pid=None,
                             finished_at=_now())
        raise
    finally:
        for sink in sinks:
            sink.close(ended)
        if handler is not None:
            logging.getLogger("tunelab.train").removeHandler(handler)
            handler.close()


def _shared_run_id(rank: int, world: int) -> str:
    run_id = [runs.new_run_id() if rank == 0 else None]
    if world > 1:
        dist.broadcast_object_list(run_id, src=0)
    return run_id[0]


def _restore(setup: Setup, out: Path) -> LoopState:
    latest = checkpoint.latest(out / "checkpoints")
    return (checkpoint.load(latest, setup.model, setup.optimizer, setup.scheduler, setup.scaler) if latest
            else LoopState())


def _truncate_metrics(store: Store, run_id: str, out: Path, step: int) -> None:
    """Metric points written after the checkpoint are dropped: the resumed run computes them again."""
    store.drop_metrics_after(run_id, step)
    stream = out / "metrics.jsonl"
    if stream.exists():
        kept = [line for line in stream.read_text().splitlines() if json.loads(line)["step"] <= step]
        stream.write_text("".join(line + "\n" for line in kept))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _finish(store: Store, setup: Setup, outcome: Outcome, run_id: str, out: Path) -> dict[str, Any]:
    state = outcome.state
    common = {"step": state.step, "best_val_loss": state.best_val_loss, "best_val_accuracy": state.best_val_accuracy,
              "best_val_f1": state.best_val_f1, "best_step": state.best_step, "warnings": state.warnings}
    if outcome.stopped_by:
        store.update_run(run_id, state="cancelled" if outcome.stopped_by == "SIGTERM" else "interrupted", pid=None,
                         error=f"stopped by {outcome.stopped_by} at step {state.step}; resume with "
                               f"`tunelab train --resume {run_id}`", **common)
        return runs.summary(store.get_run(run_id))
    if state.best_step is not None and state.best_step != state.step:
        checkpoint.load_weights(out / "checkpoints" / f"checkpoint-{state.best_step:07d}", setup.model)
    model_id = _save_model(store, setup, state, run_id, out)
    cards.refresh(store, model_id)  # a Hugging Face model card beside the weights, from the first moment
    store.update_run(run_id, state="succeeded", model_id=model_id, pid=None, finished_at=_now(), **common)
    store.audit("train.finish", run_id, {"model": model_id, "steps": state.step})
    return {**runs.summary(store.get_run(run_id)), "model": model_id, "early_stopped": outcome.early_stopped,
            "output": str(out / "model")}


def _save_model(store: Store, setup: Setup, state: LoopState, run_id: str, out: Path) -> str:
    """Write the adapter (or full weights) and tokenizer to <run>/model and register the model."""
    target = out / "model"
    setup.model.save_pretrained(target, safe_serialization=True)
    setup.tokenizer.save_pretrained(target)
    model_id = f"m-{uuid.uuid4().hex[:10]}"
    kind = "full" if setup.cfg.method == "full" else "adapter"
    metrics = {"best_val_loss": state.best_val_loss, "best_val_accuracy": state.best_val_accuracy,
               "best_val_f1": state.best_val_f1, "steps": state.step, "tokens_seen": state.tokens_seen}
    store.add_model(model_id, setup.cfg.name or run_id, kind, str(target), setup.dataset.id, run_id=run_id,
                    task=setup.cfg.task, base_model=setup.base.path if kind == "adapter" else setup.base.name,
                    labels=setup.label2id, metrics=metrics)
    return model_id
