"""The typed results of the run services (`tunelab.train.runs.list_runs`, `show`): what the CLI, the management API
and the web UI render, so each shows the same fields under the same names.

`model_dump(mode="json")` is the JSON of `tunelab runs list|show --json`: the field order here is the key order there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class RunSummary(BaseModel):
    """One run as lists show it: where it stands and its best checkpoint so far."""

    run: str
    name: str
    state: str
    task: str
    method: str
    dataset_id: str
    base_model: str
    step: int
    total_steps: int
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    best_val_f1: float | None = None
    best_step: int | None = None
    model_id: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    warnings: list[str] = []

    @classmethod
    def of(cls, record: dict[str, Any]) -> RunSummary:
        """From a run record (`Store.get_run`), whose `id` is shown as `run`."""
        return cls.model_validate({**record, "run": record["id"]})


class MetricPoint(BaseModel):
    """One point of a run's metric stream: where it was taken, then its values (loss, val_loss, accuracy...)."""

    model_config = ConfigDict(extra="allow")

    id: int
    step: int
    kind: str


class RunDetail(RunSummary):
    """A run with what it was trained with (the resolved config, the environment) and its whole metric stream."""

    config: dict[str, Any]
    environment: dict[str, Any]
    metrics: list[MetricPoint]
