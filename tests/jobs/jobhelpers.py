"""Helpers of the job tests: a train config on disk, `tunelab worker` in the background, waiting on a job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from inprocess import run_cli


def write_config(folder: Path, name: str, dataset: str, base_model: Path | str, **settings) -> Path:
    """A tiny SFT config: one thread, a few steps unless told otherwise."""
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps({"dataset": dataset, "base_model": str(base_model), "max_steps": 2, "max_tokens": 64,
                                "eval_every": 50, "seed": 0, "threads": 1, **settings}))
    return path


def submit(config: Path, *args: str) -> dict:
    """`tunelab train CONFIG --submit --json` (in this process): the queued job."""
    done = run_cli("train", str(config), "--submit", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_worker(*args: str) -> subprocess.Popen:
    """`tunelab worker` in its own process group (so a test can kill it and its job's process at once)."""
    return subprocess.Popen([sys.executable, "-m", "tunelab.cli", "worker", "--poll", "0.2", *args, "--json"],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(what, timeout: float = 240, every: float = 0.05):
    """`what()` once it is truthy; AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := what():
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {what}")


def checkpoint_of(store, job_id: str, step: int) -> str | None:
    """The job's run id, once the run has its checkpoint at `step`."""
    run_id = store.get_job(job_id)["run_id"]
    folder = store.workspace.home / "runs" / str(run_id) / "checkpoints" / f"checkpoint-{step:07d}"
    return run_id if run_id and folder.exists() else None
