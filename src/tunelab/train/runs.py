"""Run records: created when a run starts, kept current while it trains, honest when its process is gone."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from tunelab.errors import ConflictError, TunelabError
from tunelab.store import Store
from tunelab.train.views import RunDetail, RunSummary

ACTIVE = ("running",)
RESUMABLE = ("failed", "cancelled", "interrupted")


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:6]}"


def run_dir(store: Store, run_id: str) -> Path:
    return store.workspace.home / "runs" / run_id


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def refresh_stale(store: Store) -> None:
    """A run marked running whose process on this host is gone failed; say so, and that it can be resumed."""
    host = socket.gethostname()
    for run in store.list_runs():
        if run["state"] in ACTIVE and run["host"] == host and not _alive(run["pid"]):
            store.update_run(run["id"], state="failed", pid=None,
                             error=f"the training process (pid {run['pid']}) vanished: killed or crashed; "
                                   f"resume with `tunelab train --resume {run['id']}`")


def claim_for_resume(store: Store, ref: str) -> dict[str, Any]:
    refresh_stale(store)
    run = store.get_run(ref)
    if run["state"] in ACTIVE:
        raise ConflictError(f"run {run['id']} is still running (pid {run['pid']} on {run['host']})",
                            f"cancel it first with `tunelab runs cancel {run['id']}`")
    if run["state"] == "succeeded":
        raise ConflictError(f"run {run['id']} already finished", f"its model is {run['model_id']}")
    store.update_run(run["id"], state="running", pid=os.getpid(), host=socket.gethostname(), error=None)
    return run


def start(store: Store, run_id: str, **values: Any) -> None:
    store.add_run(id=run_id, state="running", pid=os.getpid(), host=socket.gethostname(), **values)
    store.audit("train.start", run_id, {"dataset": values.get("dataset_id"), "base_model": values.get("base_model")})


def cancel(store: Store, ref: str) -> dict[str, Any]:
    """Ask a running run to stop: it writes a checkpoint, then ends as cancelled (resumable)."""
    import signal

    refresh_stale(store)
    run = store.get_run(ref)
    if run["state"] not in ACTIVE:
        raise ConflictError(f"run {run['id']} is not running (state: {run['state']})")
    if run["host"] != socket.gethostname():
        raise TunelabError(f"run {run['id']} runs on {run['host']}", "cancel it from that machine")
    os.kill(run["pid"], signal.SIGTERM)
    store.audit("train.cancel", run["id"], {})
    return {"run": run["id"], "state": "cancelling"}


def logs(store: Store, ref: str) -> str:
    run = store.get_run(ref)
    path = Path(run["output_dir"]) / "train.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """A run record as JSON, the way `runs list` shows it (the result of `tunelab train` starts with it)."""
    return RunSummary.of(run).model_dump(mode="json")


def list_runs(store: Store) -> list[RunSummary]:
    """The project's runs, oldest first; a run whose process vanished is marked failed first, so no list shows a
    dead run as running."""
    refresh_stale(store)
    return [RunSummary.of(r) for r in store.list_runs()]


def show(store: Store, ref: str) -> RunDetail:
    """One run (id, id prefix or name) with its resolved config, environment and metric stream; stale runs are
    refreshed first, as in `list_runs`."""
    refresh_stale(store)
    record = store.get_run(ref)
    return RunDetail.model_validate({**record, "run": record["id"], "config": record["config_resolved"],
                                     "metrics": store.metrics(record["id"])})


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))
