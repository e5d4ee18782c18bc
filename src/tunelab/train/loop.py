"""The training loop: an explicit PyTorch loop with evaluation, early stopping, checkpoints and clean stops.

Read it top to bottom in `run_loop`: for each optimizer step, forward and backward over its micro-batches, clip,
step, log; every `eval_every` steps, evaluate, keep the best, checkpoint. SIGINT and SIGTERM finish the current
step, write a checkpoint and return, so `--resume` continues from there.

With several processes (`tunelab train --nproc N`) the forward/backward runs through the DistributedDataParallel
wrapper in `Context.ddp`; everything else (evaluation, clipping, checkpoints) uses the plain model, and a signal
received by any process stops them all after the same step.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sklearn.metrics import accuracy_score, f1_score
from torch.nn.parallel import DistributedDataParallel

from tunelab.progress import progress_enabled, stderr
from tunelab.store import Store
from tunelab.train import checkpoint, tagging
from tunelab.train import data as tdata
from tunelab.train.checkpoint import LoopState
from tunelab.train.setup import Setup

log = logging.getLogger("tunelab.train")


@dataclass
class Outcome:
    state: LoopState
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal ended the run early
    early_stopped: bool = False


@dataclass
class Context:
    """Where the loop reports: the store (rank 0 only), the run's folder, and the process group.

    `ddp` is the DistributedDataParallel wrapper of the model when world > 1 (forward/backward go through it).
    `on_eval(step, metrics)` is called on every process after each evaluation (`tunelab tune` reports to optuna
    there); an exception it raises ends the loop and propagates.
    """

    store: Store | None
    run_id: str
    out: Path
    rank: int = 0
    world: int = 1
    ddp: torch.nn.Module | None = None
    on_eval: Callable[[int, dict[str, float]], None] | None = None
    sinks: list[Any] = field(default_factory=list)  # TensorBoard / MLflow, when asked for
    pending: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)

    @property
    def main(self) -> bool:
        return self.rank == 0


@contextmanager
def stop_signals() -> Iterator[dict[str, str | None]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""
    flag: dict[str, str | None] = {"signal": None}

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _to_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _collate(setup: Setup, split: tdata.Encoded, indices: list[int]) -> dict[str, torch.Tensor]:
    ids = [split.input_ids[i] for i in indices]
    labels = [split.labels[i] for i in indices]
    pad = setup.tokenizer.pad_token_id
    if setup.cfg.task == "classification":
        return tdata.collate_classification(ids, labels, pad_id=pad)
    # token classification: right-padded rows, tags padded with IGNORE_INDEX, as unpacked SFT
    return tdata.collate_sft(ids, labels, packing=setup.cfg.packing and setup.cfg.task == "sft", pad_id=pad,
                             row_tokens=setup.cfg.max_seq_length)


def loss_sum(setup: Setup, model: torch.nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """Summed loss, number of loss targets, and (classifiers) the predicted labels of one micro-batch."""
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "num_tokens")}
    if setup.cfg.task == "classification":
        logits = model(**inputs).logits
        loss = F.cross_entropy(logits.float(), labels, weight=setup.class_weights, reduction="sum")
        return loss, labels.numel(), logits.argmax(-1)
    if setup.cfg.task == "token_classification":  # a tag on each word's first sub-token, IGNORE_INDEX elsewhere
        logits = model(**inputs).logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=tdata.IGNORE_INDEX,
                               reduction="sum")
        return loss, int((labels != tdata.IGNORE_INDEX).sum()), logits.argmax(-1)
    targets = labels[:, 1:]
    split = body_and_head(model)
    if split is None:
        logits = model(**inputs).logits[:, :-1]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=tdata.IGNORE_INDEX,
                               reduction="sum")
    else:
        body, head = split
        keep = targets != tdata.IGNORE_INDEX
        hidden = body(**inputs).last_hidden_state[:, :-1][keep]
        loss = F.cross_entropy(head(hidden).float(), targets[keep], reduction="sum")
    return loss, int((targets != tdata.IGNORE_INDEX).sum()), None


# Config keys of causal LMs whose logits are more than head(hidden) (soft-capping, scaling): they keep the full path.
_HEAD_EXTRAS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(transformer body, output layer) of a causal LM whose logits are just head(hidden), else None.

    The SFT loss needs logits only where a target is (the assistant tokens: about half of a chat batch), so the
    output layer runs on those positions alone instead of producing a [tokens, vocabulary] tensor for every token;
    the loss is the same. A DistributedDataParallel wrapper keeps its own forward, which its gradient sync needs.
    """
    if isinstance(model, DistributedDataParallel):
        return None
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: LoRA layers stay in place
    body = getattr(lm, getattr(lm, "base_model_prefix", ""), None)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if body is None or head is None or any(getattr(lm.config, key, None) for key in _HEAD_EXTRAS):
        return None
    return body, head


def _targets(setup: Setup, batch: dict[str, torch.Tensor]) -> int:
    labels = batch["labels"]
    if setup.cfg.task == "classification":
        return labels.numel()
    return int(((labels if setup.cfg.task == "token_classification" else labels[:, 1:]) != tdata.IGNORE_INDEX).sum())


def evaluate(setup: Setup) -> dict[str, float]:
    """Validation loss (per target token or example) and, for classifiers, accuracy and macro F1 (token
    classification: word accuracy and entity micro F1)."""
    split = setup.validation
    if split is None or not split.input_ids:
        return {}
    setup.model.eval()
    total, targets, predicted, expected = 0.0, 0, [], []
    plan = tdata.plan_batches(split.lengths, batch_size=setup.cfg.batch_size * 2, seed=0, epoch=0,
                              packing=setup.cfg.packing and setup.cfg.task == "sft", max_tokens=setup.cfg.max_tokens,
                              shuffle=False)
    with torch.inference_mode(), setup.device.autocast():
        for indices in plan:
            batch = _to_device(_collate(setup, split, indices), setup.device.device)
            loss, n, predictions = loss_sum(setup, setup.model, batch)
            total, targets = total + float(loss), targets + n
            if predictions is not None:
                predicted += predictions.tolist()
                expected += batch["labels"].tolist()
    setup.model.train()
    return {"val_loss": total / max(targets, 1), **_label_metrics(setup, expected, predicted)}


def _label_metrics(setup: Setup, expected: list, predicted: list) -> dict[str, float]:
    if setup.cfg.task == "token_classification":
        return tagging.validation_metrics(expected, predicted, {i: tag for tag, i in setup.label2id.items()})
    if setup.cfg.task != "classification":
        return {}
    return {"val_accuracy": accuracy_score(expected, predicted),
            "val_f1": f1_score(expected, predicted, labels=list(setup.label2id.values()), average="macro",
                               zero_division=0)}


def _global(value: int, ctx: Context) -> int:
    if ctx.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.long)
    dist.all_reduce(tensor)
    return int(tensor.item())


def _share(indices: list[int], ctx: Context) -> tuple[list[int], float]:
    """This process's part of a global micro-batch and its weight: a process whose part is empty (a micro-batch
    smaller than the world, a packed bin of one long example) still runs forward/backward, as DDP needs, on a
    stand-in example with weight 0."""
    mine = indices[ctx.rank::ctx.world]
    return (mine, 1.0) if mine else (indices[:1], 0.0)


def _passes(setup: Setup, indices: list[int], ctx: Context) -> list[list[int]]:
    """A packed micro-batch cut into forward/backward passes of at most forward_tokens tokens per process."""
    if setup.cfg.task != "sft" or not setup.cfg.packing:
        return [indices]
    return tdata.split_by_tokens(indices, setup.train.input_ids, setup.cfg.forward_tokens * ctx.world)


def train_step(setup: Setup, micro_batches: list[list[int]], ctx: Context) -> tuple[float, int]:
    """One optimizer step over its micro-batches; returns the step's mean loss and real tokens seen."""
    cfg = setup.cfg
    model = ctx.ddp or setup.model
    shares = [_share(indices, ctx) for batch in micro_batches for indices in _passes(setup, batch, ctx)]
    batches = [(_collate(setup, setup.train, indices), weight) for indices, weight in shares]
    step_targets = _global(sum(_targets(setup, b) for b, w in batches if w), ctx)
    running, tokens = 0.0, 0
    for i, (batch, weight) in enumerate(batches):
        batch = _to_device(batch, setup.device.device)
        # gradients are averaged over processes once, at the step's last micro-batch
        last = ctx.ddp is None or i == len(batches) - 1
        with nullcontext() if last else ctx.ddp.no_sync():
            with setup.device.autocast():
                loss, _, _ = loss_sum(setup, model, batch)
            loss = loss * weight
            # DDP averages gradients over processes, so scale by world to get the mean over every target of the step
            scaled = loss * ctx.world / max(step_targets, 1)
            (setup.scaler.scale(scaled) if setup.scaler else scaled).backward()
        running += float(loss.detach())
        tokens += tdata.count_tokens(batch) if weight else 0
    if setup.scaler:
        setup.scaler.unscale_(setup.optimizer)  # clip the true gradients
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    if setup.scaler:
        setup.scaler.step(setup.optimizer)  # skipped when a gradient overflowed; the scale then shrinks
        setup.scaler.update()
    else:
        setup.optimizer.step()
    setup.scheduler.step()
    setup.optimizer.zero_grad(set_to_none=True)
    return _global_mean(running, step_targets, ctx), _global(tokens, ctx)


_SIGNALS = (None, "SIGINT", "SIGTERM")


def _stop_signal(flag: dict[str, str | None], ctx: Context) -> str | None:
    """The signal that stops the run, agreed by every process (the one `runs cancel` hits is rank 0 only)."""
    if ctx.world == 1:
        return flag["signal"]
    code = torch.tensor([_SIGNALS.index(flag["signal"])], dtype=torch.long)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    return _SIGNALS[int(code.item())]


def _global_mean(local_sum: float, count: int, ctx: Context) -> float:
    if ctx.world > 1:
        tensor = torch.tensor([local_sum], dtype=torch.float64)
        dist.all_reduce(tensor)
        local_sum = float(tensor.item())
    return local_sum / max(count, 1)


def _record(ctx: Context, step: int, kind: str, values: dict[str, Any], force: bool = False) -> None:
    """Buffer a metric point; write the buffer out every 10 points or 5 seconds, or when forced."""
    if not ctx.main:
        return
    ctx.pending.append((step, kind, values))
    if force or len(ctx.pending) >= 10 or time.monotonic() - ctx.last_flush > 5:
        flush(ctx)


def flush(ctx: Context) -> None:
    """Write pending metric points to metrics.jsonl and the store, where other processes can follow them."""
    if not ctx.main or not ctx.pending:
        return
    with (ctx.out / "metrics.jsonl").open("a") as f:
        for s, k, v in ctx.pending:
            f.write(json.dumps({"step": s, "kind": k, **v}) + "\n")
            for sink in ctx.sinks:
                sink.write(s, k, v)
    if ctx.store is not None:
        ctx.store.add_metrics(ctx.run_id, ctx.pending)
        ctx.store.update_run(ctx.run_id, step=ctx.pending[-1][0])
    ctx.pending.clear()
    ctx.last_flush = time.monotonic()


def _overfitting(points: list[dict[str, Any]]) -> bool:
    """Validation loss up and training loss down across the last three evaluations."""
    if len(points) < 3 or any(p["train_loss"] is None for p in points):
        return False
    val = [p["val_loss"] for p in points]
    train = [p["train_loss"] for p in points]
    return val[0] < val[1] < val[2] and train[0] > train[1] > train[2]


def _improves(state: LoopState, metrics: dict[str, float], metric: str, min_delta: float) -> bool:
    """Better than the best so far by min_delta on the chosen metric, or equal on it with a lower validation loss."""
    best = {"val_loss": state.best_val_loss, "val_f1": state.best_val_f1,
            "val_accuracy": state.best_val_accuracy}[metric]
    if best is None or state.best_val_loss is None:  # the first evaluation, or a checkpoint from before val_f1
        return True
    gain = best - metrics[metric] if metric == "val_loss" else metrics[metric] - best
    return gain > min_delta or (gain == 0 and metrics["val_loss"] < state.best_val_loss)


def _after_eval(setup: Setup, state: LoopState, metrics: dict[str, float], train_loss: float | None) -> bool:
    """Update the best result, the patience counter and the overfitting warning; True to stop early."""
    cfg = setup.cfg
    val = metrics["val_loss"]
    state.history.append({"step": state.step, "train_loss": train_loss, **metrics})
    if _overfitting(state.history[-3:]) and not state.warnings:
        first, last = state.history[-3], state.history[-1]
        message = (f"step {state.step}: validation loss rose for two evaluations ({first['val_loss']:.4f} -> "
                   f"{val:.4f}) while training loss fell ({first['train_loss']:.4f} -> {last['train_loss']:.4f}): "
                   "the model is starting to overfit; the best checkpoint is kept")
        state.warnings.append(message)
        log.warning(message)
    if _improves(state, metrics, cfg.early_stopping.metric, cfg.early_stopping.min_delta):
        state.best_val_loss, state.best_step = val, state.step
        state.best_val_accuracy, state.best_val_f1 = metrics.get("val_accuracy"), metrics.get("val_f1")
        state.evals_without_improvement = 0
        return False
    state.evals_without_improvement += 1
    patience = cfg.early_stopping.patience
    return patience is not None and state.evals_without_improvement >= patience


def _progress() -> Progress:
    columns = [TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    return Progress(*columns, console=stderr, disable=not progress_enabled(), transient=True)


def _save(setup: Setup, state: LoopState, ctx: Context) -> None:
    flush(ctx)  # the metric stream and the checkpoint stay consistent: resume truncates the stream to this step
    if ctx.main:
        folder = ctx.out / "checkpoints"
        checkpoint.save(folder, state.step, setup.model, setup.optimizer, setup.scheduler, state, setup.scaler)
        checkpoint.prune(folder, setup.cfg.keep_checkpoints, state.best_step)
    if ctx.world > 1:
        dist.barrier()


def run_loop(setup: Setup, state: LoopState, ctx: Context) -> Outcome:
    cfg, total = setup.cfg, setup.total_steps
    ga = cfg.gradient_accumulation_steps
    eval_every = cfg.eval_every or max(1, math.ceil(len(setup.plans[0]) / ga / 4))
    checkpoint_every = cfg.checkpoint_every or eval_every
    setup.model.train()
    interval_losses: list[float] = []
    started, tokens_at_start = time.monotonic(), state.tokens_seen
    with stop_signals() as flag, _progress() as bar:
        task = bar.add_task("train", total=total, completed=state.step, info="")
        while state.step < total:
            plan = setup.plans[state.epoch]
            steps = [plan[i: i + ga] for i in range(state.batch_in_epoch, len(plan), ga)]
            for micro_batches in steps:
                loss, tokens = train_step(setup, micro_batches, ctx)
                state.step += 1
                state.batch_in_epoch += len(micro_batches)
                state.tokens_seen += tokens
                interval_losses.append(loss)
                rate = (state.tokens_seen - tokens_at_start) / max(time.monotonic() - started, 1e-9)
                lr = setup.scheduler.get_last_lr()[0]
                _record(ctx, state.step, "train", {"loss": loss, "lr": lr, "tokens_per_s": rate, "epoch": state.epoch})
                bar.update(task, completed=state.step, info=f"loss {loss:.4f}  lr {lr:.2e}  {rate:,.0f} tok/s")
                stop_early, stop_signal = False, _stop_signal(flag, ctx)
                if state.step % eval_every == 0 or state.step == total:
                    metrics = evaluate(setup)
                    if metrics:
                        train_loss = sum(interval_losses) / len(interval_losses)
                        interval_losses.clear()
                        stop_early = _after_eval(setup, state, metrics, train_loss)
                        _record(ctx, state.step, "eval", {**metrics, "train_loss": train_loss}, force=True)
                        log.info("step %d: %s", state.step, json.dumps(metrics))
                        if ctx.on_eval is not None:
                            ctx.on_eval(state.step, metrics)
                if state.step % checkpoint_every == 0 or stop_signal or stop_early:
                    _save(setup, state, ctx)
                if stop_signal or stop_early or state.step >= total:
                    flush(ctx)
                    return Outcome(state, stop_signal, stop_early)
            state.epoch += 1
            state.batch_in_epoch = 0
    return Outcome(state)
