"""Optional metric sinks (TensorBoard, MLflow) beside the store's own stream, for teams that already use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tunelab.errors import InputError
from tunelab.train.config import TrainConfig


class Sink(Protocol):
    def write(self, step: int, kind: str, values: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


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

    def close(self) -> None:
        self.writer.close()


class MlflowSink:
    def __init__(self, run_name: str, params: dict[str, Any]) -> None:
        try:
            import mlflow
        except ImportError as exc:
            raise InputError("logging.mlflow needs the mlflow package",
                             "pip install mlflow (and set MLFLOW_TRACKING_URI), or set logging.mlflow: false") from exc
        self.mlflow = mlflow
        mlflow.start_run(run_name=run_name)
        mlflow.log_params({k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))})

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        metrics = {f"{kind}_{k}": float(v) for k, v in values.items() if isinstance(v, (int, float))}
        self.mlflow.log_metrics(metrics, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def open_sinks(cfg: TrainConfig, out: Path, run_name: str) -> list[Sink]:
    sinks: list[Sink] = []
    if cfg.logging.tensorboard:
        sinks.append(TensorBoardSink(out / "tensorboard"))
    if cfg.logging.mlflow:
        sinks.append(MlflowSink(run_name, cfg.model_dump(mode="json")))
    return sinks
