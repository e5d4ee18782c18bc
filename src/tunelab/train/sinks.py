"""Optional metric sinks (TensorBoard, MLflow) beside the store's own stream, for teams that already use them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

from tunelab.errors import InputError
from tunelab.train.config import TrainConfig


class Sink(Protocol):
    def write(self, step: int, kind: str, values: dict[str, Any]) -> None: ...

    def close(self, state: str) -> None: ...


class TensorBoardSink:
    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise InputError("logging.tensorboard needs the tensorboard package",
                             "pip install tensorboard, or set logging.tensorboard: false") from exc
        self.writer = SummaryWriter(str(folder))

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self, state: str) -> None:
        self.writer.close()


class MlflowSink:
    """One MLflow run per tunelab run, through MlflowClient: the fluent API's process-wide active run would clash
    with a caller's own (a notebook, trials of `tunelab tune` in one process)."""

    def __init__(self, run_name: str, params: dict[str, Any]) -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param
        except ImportError as exc:
            raise InputError("logging.mlflow needs the mlflow package",
                             "pip install mlflow-skinny (or mlflow), or set logging.mlflow: false") from exc
        if not os.environ.get("MLFLOW_TRACKING_URI"):  # MLflow would quietly write ./mlflow.db wherever we run
            raise InputError("logging.mlflow needs MLFLOW_TRACKING_URI",
                             "e.g. export MLFLOW_TRACKING_URI=http://mlflow:5000 or sqlite:///mlflow.db")
        self.client, self.metric = MlflowClient(), Metric
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "tunelab"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in _flat(params).items()])

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        metrics = [self.metric(f"{kind}/{k}", float(v), now, step) for k, v in values.items()
                   if isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, state: str) -> None:
        """Cancelled, interrupted and pruned runs end as KILLED, so MLflow shows them apart from crashes."""
        status = {"succeeded": "FINISHED", "failed": "FAILED"}.get(state, "KILLED")
        self.client.set_terminated(self.run_id, status)


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys (lora.r), the names `--set` takes."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def open_sinks(cfg: TrainConfig, out: Path, run_name: str) -> list[Sink]:
    sinks: list[Sink] = []
    if cfg.logging.tensorboard:
        sinks.append(TensorBoardSink(out / "tensorboard"))
    if cfg.logging.mlflow:
        sinks.append(MlflowSink(run_name, cfg.model_dump(mode="json")))
    return sinks
