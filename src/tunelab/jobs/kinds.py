"""What each kind of job does: one `Kind` each, so `prepare`, `eval`, `export` and `erase` are one entry more.

A kind names the policy action its submitter needs (checked when the job is queued and again when it runs, as the
submitter), checks its params when queued (a bad config is an error at `--submit`, not an hour later in a worker),
and runs in the job's own process (`tunelab.jobs.child`) with a store acting as the submitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config import load_config, parse_config
from tunelab.errors import ConflictError, InputError, NotFoundError
from tunelab.store import Store


@dataclass(frozen=True)
class Kind:
    action: str  # the policy action the submitter needs
    check: Callable[[Store, dict[str, Any]], None]  # raises a TunelabError for bad params, when queued
    run: Callable[[Store, dict[str, Any]], dict[str, Any]]  # (store as the submitter, the job) -> result


def train_params(config: Path | None, overrides: list[str] | None, resume: str | None) -> dict[str, Any]:
    """A train job's params: the config as given (file + `--set`, validated now, kept in the job so the worker
    needs no copy of the file), or the run to resume."""
    from tunelab.train.config import TrainConfig

    if resume:
        if config or overrides:
            raise InputError("--resume continues a run with its own config", "drop the config and --set")
        return {"resume": resume}
    if config is None and not overrides:
        raise InputError("give a config file, or --resume RUN", "e.g. tunelab train train.yaml --submit")
    cfg = load_config(TrainConfig, config, overrides)
    return {"config": cfg.model_dump(mode="json", exclude_unset=True), "source": str(config or "--set"),
            "set": list(overrides or [])}


def _check_train(store: Store, params: dict[str, Any]) -> None:
    from tunelab.train.config import TrainConfig

    if params.get("resume"):
        run = store.get_run(params["resume"])
        if run["state"] == "succeeded":
            raise ConflictError(f"run {run['id']} already finished", f"its model is {run['model_id']}")
        params["resume"] = run["id"]
        return
    cfg = parse_config(TrainConfig, params["config"], params.get("source", "config"))
    store.get_dataset(cfg.dataset)  # NotFoundError naming the datasets that exist


def _existing_run(store: Store, run_id: str | None) -> dict[str, Any] | None:
    try:
        return store.get_run(run_id) if run_id else None
    except NotFoundError:
        return None


def _run_train(store: Store, job: dict[str, Any]) -> dict[str, Any]:
    """Train, or resume the job's run from its last checkpoint when an earlier attempt started it. The run id is
    chosen and written to the job before training starts, so a re-queued job always finds its run."""
    from tunelab.train import runs
    from tunelab.train.config import TrainConfig
    from tunelab.train.recipe import train

    run_id = job["run_id"] or job["params"].get("resume")
    run = _existing_run(store, run_id)
    if run is not None and run["state"] == "succeeded":  # the last attempt finished, its worker died before saying
        return {**runs.summary(run), "model": run["model_id"]}
    if run is not None:
        return train(store, None, resume=run["id"])
    run_id = run_id or runs.new_run_id()
    store.update_job(job["id"], run_id=run_id)
    cfg = parse_config(TrainConfig, job["params"]["config"], job["params"].get("source", "config"))
    return train(store, cfg, run_id=run_id)


KINDS: dict[str, Kind] = {
    "train": Kind("train.run", _check_train, _run_train),
}
