"""Defaults that adapt to the data: what a four-line classification config trains with.

Why rules rather than constants: the first defaults (batch 8, 4 epochs, one learning rate for body and head) were
picked on the 2-label SMS set. On 64- and 77-intent sets they under-trained the new head (validation accuracy still
rising at the end) while over-spending steps on 2-label data. The rules below were measured on SMS spam, HWU64 and
SNIPS together (docs/training.md, "Defaults that adapt"), and each value they pick is recorded in the run, with the
reason, under `environment.setup.defaults`. A value the user sets is never changed.

The quantities they read are cheap to know before training: examples, labels, hidden size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tunelab.train.config import TrainConfig

# Optimizer steps a run aims for: a floor, plus more per label (each class's rows must be seen often enough for the
# head to separate it). Epochs follow from it, within bounds that keep big sets cheap and tiny sets from overfitting.
BASE_STEPS, STEPS_PER_LABEL = 300, 15
# The floor of 2: SNIPS (12,012 rows, 7 intents) was at 0.987 validation accuracy after one epoch; a third pass
# cost 6 minutes here for nothing measurable (docs/training.md).
MIN_EPOCHS, MAX_EPOCHS = 2, 20
HEAD_LEARNING_RATE = 1e-3  # a randomly initialised linear head learns at probe speed, not at the body's


@dataclass(frozen=True)
class DataFacts:
    """What the rules may look at: known after tokenisation, before the first step."""

    examples: int
    labels: int
    hidden_size: int | None


def batch_size(facts: DataFacts) -> tuple[int, str]:
    """Bigger batches when there are enough rows: steadier gradients, better use of the cores per example."""
    size = 32 if facts.examples >= 2000 else 16 if facts.examples >= 500 else 8
    return size, f"{facts.examples:,} train examples (32 from 2,000, 16 from 500, else 8)"


def epochs(facts: DataFacts, batch: int) -> tuple[float, str]:
    steps = BASE_STEPS + STEPS_PER_LABEL * facts.labels
    per_epoch = math.ceil(facts.examples / batch)
    value = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(steps / per_epoch)))
    return float(value), (f"aim for {BASE_STEPS} + {STEPS_PER_LABEL} x {facts.labels} labels = {steps:,} steps at "
                          f"{per_epoch:,} steps per epoch, within {MIN_EPOCHS}-{MAX_EPOCHS} epochs")


def learning_rate(method: str, facts: DataFacts) -> tuple[float, str]:
    """Full fine-tuning: smaller models take larger steps (1e-4 up to 512 hidden units, 5e-5 to 1024, then 2e-5);
    LoRA: 5e-4, the body's adapters (1e-3 was unstable on SMS spam at batch 8, docs/training.md)."""
    if method != "full":
        return 5e-4, f"{method} adapters"
    hidden = facts.hidden_size or 768
    rate = 1e-4 if hidden <= 512 else 5e-5 if hidden <= 1024 else 2e-5
    return rate, f"full fine-tuning of a model with hidden size {hidden}"


def fit_to_data(cfg: TrainConfig, facts: DataFacts) -> tuple[TrainConfig, dict[str, Any]]:
    """A (token) classification config with every unset (None) data-dependent value filled, and a record of each
    choice and its reason. SFT configs are returned as they are: `config.resolve` fills theirs."""
    chosen: dict[str, Any] = {}

    def pick(key: str, value: Any, why: str) -> Any:
        if getattr(cfg, key) is not None:
            return getattr(cfg, key)
        chosen[key] = {"value": value, "why": why}
        return value

    if cfg.task == "sft":
        return cfg, chosen
    batch = pick("batch_size", *batch_size(facts))
    rate = pick("learning_rate", *learning_rate(cfg.method, facts))
    update = {
        "batch_size": batch,
        "learning_rate": rate,
        "epochs": pick("epochs", *epochs(facts, batch * cfg.gradient_accumulation_steps)),
        "warmup_ratio": pick("warmup_ratio", 0.1, "10% warmup: fine-tuning is stabler with it on small data"),
        "head_learning_rate": pick("head_learning_rate", max(rate, HEAD_LEARNING_RATE),
                                   "the new classification head learns at probe speed"),
    }
    return cfg.model_copy(update=update), chosen
