"""The `tunelab train` config: one pydantic schema that is the YAML keys, the --set overrides and the docs.

A config can be four lines (dataset, base_model, task, method); every other field has a default that works, and
`resolve()` fills the ones that depend on the task and method; for (token) classification, `defaults.fit_to_data`
then fills those that depend on the data (batch size, epochs, learning rates, warmup).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tunelab.config import Schema
from tunelab.errors import InputError


class LoraSettings(Schema):
    r: int = Field(16, ge=1, le=1024, description="Rank of the LoRA update matrices.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or all-linear for every linear layer of the blocks.")


class EarlyStopping(Schema):
    metric: Literal["auto", "val_loss", "val_f1", "val_accuracy"] = Field(
        "auto", description="What picks the best checkpoint and counts as improvement (auto: classification "
        "val_f1, the macro F1 over labels; token_classification val_f1, the entity micro F1; sft val_loss). Ties "
        "go to the lower validation loss.")
    patience: int | None = Field(None, ge=1, description="Evaluations without improvement before stopping; null "
                                 "(default): train every epoch and keep the best checkpoint.")
    min_delta: float = Field(0.0, ge=0, description="Smallest improvement of the metric that counts.")


class Logging(Schema):
    tensorboard: bool = Field(False, description="Also write TensorBoard event files (needs tensorboard installed).")
    mlflow: bool = Field(False, description="Also log to MLflow (needs mlflow installed; MLFLOW_TRACKING_URI).")


class SearchRange(Schema):
    low: float | None = Field(None, description="Lower bound of a numeric range.")
    high: float | None = Field(None, description="Upper bound of a numeric range.")
    log: bool = Field(False, description="Sample the range on a log scale.")
    choices: list[Any] | None = Field(None, description="A list of values to choose from instead of a range.")

    @model_validator(mode="after")
    def _one_kind(self) -> SearchRange:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("give either choices or low and high")
        return self


class TrainConfig(Schema):
    dataset: str = Field(description="Prepared dataset: id, id prefix or name.")
    base_model: str = Field(description="Short name (minilm-l6, smollm2-135m), local folder or hub name.")
    task: Literal["auto", "sft", "classification", "token_classification"] = Field(
        "auto", description="sft for chat/instruction/completion data, classification for text+label, "
        "token_classification for text+spans; auto: by data.")
    method: Literal["lora", "qlora", "full"] = Field("lora", description="LoRA adapter, 4-bit QLoRA (CUDA), or all "
                                                     "weights.")
    name: str | None = Field(None, description="Name of the run and model (default: dataset-task-method).")
    epochs: float | None = Field(None, gt=0, description="Passes over the train split (default: sft 2; "
                                 "classification and token_classification by data, see docs/training.md).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate (default: sft lora 2e-4, "
                                        "full 5e-5; (token) classification by method and model size, see "
                                        "docs/training.md).")
    head_learning_rate: float | None = Field(None, gt=0, description="(token) classification: peak learning rate "
                                             "of the new head (default: 1e-3, or learning_rate if higher).")
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="Decay after warmup.")
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="Share of steps spent warming up (default: "
                                       "sft 0.06, (token) classification 0.1).")
    batch_size: int | None = Field(None, ge=1, description="Examples per step and process (default: sft 8, with "
                                   "packing see max_tokens; (token) classification by data, see docs/training.md).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip gradients to this norm; null: no clipping.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Override the model's dropout probabilities.")
    seed: int = Field(42, description="Seed of initialisation, data order and dropout.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory.")
    max_seq_length: int = Field(512, ge=8, description="Longer examples are cut (the count is recorded).")
    packing: bool = Field(True, description="sft: concatenate examples into rows of at most max_seq_length tokens "
                          "(position ids reset per example).")
    max_tokens: int | None = Field(None, ge=8, description="sft with packing: tokens per packed step (default "
                                   "batch_size x the mean example length, so a step holds about batch_size "
                                   "examples, as an unpacked batch does).")
    forward_tokens: int | None = Field(None, ge=8, description="sft with packing: most tokens in one forward/"
                                       "backward pass; a bigger step runs as several passes whose gradients add up "
                                       "to the same step (default: 512 on CPU, where short passes stay in cache; "
                                       "16384 on a GPU). Bounds activation memory, not the math.")
    class_weights: Literal["none", "balanced"] = Field("none", description="classification: weight the loss by "
                                                       "inverse class frequency.")
    lora: LoraSettings = LoraSettings()
    eval_every: int | None = Field(None, ge=1, description="Evaluate every N steps (default: 4 times per epoch).")
    eval_examples: int | None = Field(None, ge=1, description="In-loop validation on at most this many validation "
                                      "examples, the same seeded sample at every evaluation (default: sft 256, "
                                      "where each evaluation is a forward pass over long replies; (token) "
                                      "classification all). `tunelab eval` always scores the whole test split.")
    early_stopping: EarlyStopping = EarlyStopping()
    checkpoint_every: int | None = Field(None, ge=1, description="Checkpoint every N steps (default: at each eval).")
    keep_checkpoints: int = Field(2, ge=1, description="Recent checkpoints kept (the best is always kept).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="auto: flash_attention_2 on CUDA when installed, else sdpa.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores).")
    logging: Logging = Logging()
    search: dict[str, SearchRange] = Field(default_factory=dict, description="tunelab tune: key -> range or choices.")
    trials: int = Field(10, ge=1, description="tunelab tune: number of trials.")


LABELLED = ("classification", "token_classification")  # the tasks whose data has a label set (and an F1)
SFT_EVAL_EXAMPLES = 256


def resolve(cfg: TrainConfig, dataset_kind: str) -> TrainConfig:
    """The config with every automatic value filled in, as recorded by the run."""
    task = cfg.task if cfg.task != "auto" else (dataset_kind if dataset_kind in LABELLED else "sft")
    classification = task in LABELLED
    # (token) classification values that depend on the data are left None for defaults.fit_to_data
    sft = {} if classification else {
        "learning_rate": cfg.learning_rate or (5e-5 if cfg.method == "full" else 2e-4), "epochs": cfg.epochs or 2.0,
        "batch_size": cfg.batch_size or 8, "warmup_ratio": 0.06 if cfg.warmup_ratio is None else cfg.warmup_ratio,
        "eval_examples": cfg.eval_examples or SFT_EVAL_EXAMPLES}
    metric = cfg.early_stopping.metric
    if metric == "auto":
        metric = "val_f1" if classification else "val_loss"
    elif metric != "val_loss" and not classification:
        raise InputError(f"early_stopping.metric {metric} needs labels; a {task} run has only validation loss",
                         "use early_stopping.metric: val_loss (or auto)")
    return cfg.model_copy(update={
        "task": task,
        **sft,
        "early_stopping": cfg.early_stopping.model_copy(update={"metric": metric}),
        "name": cfg.name or None,
    })
