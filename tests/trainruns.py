"""Helpers for tests that follow a training run: its metric stream, and the CLI started in the background."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def loss_curve(run_dir: Path, kind: str = "train") -> list[float]:
    """The run's train losses (or, with kind="eval", validation losses) in step order."""
    points = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [p["loss" if kind == "train" else "val_loss"] for p in points if p["kind"] == kind]


def start_training(store, config: Path, *args: str) -> subprocess.Popen:
    """`tunelab train CONFIG --json` in a subprocess on the test's workspace."""
    env = {**os.environ, "TUNELAB_HOME": str(store.workspace.home)}
    return subprocess.Popen([sys.executable, "-m", "tunelab.cli", "train", str(config), *args, "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(store, step: int, process: subprocess.Popen, timeout: float = 240) -> dict:
    """The newest run's record, once its checkpoint at `step` exists."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.stderr.read()}")
        runs = store.list_runs()
        if runs and (Path(runs[-1]["output_dir"]) / "checkpoints" / f"checkpoint-{step:07d}").exists():
            return runs[-1]
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint-{step} within {timeout} s")


def kill_and_resume(store, cli, folder: Path, settings: dict, step: int) -> tuple[dict, subprocess.CompletedProcess]:
    """Train `settings` in a subprocess, SIGKILL it once checkpoint `step` exists, then `tunelab train --resume`:
    the killed run's record and the resume's completed process."""
    config = folder / "train.yaml"
    config.write_text(json.dumps(settings))
    process = start_training(store, config)
    run = wait_for_checkpoint(store, step, process)
    process.send_signal(signal.SIGKILL)  # wherever it is now: past `step`, before the end
    process.wait()
    return run, cli("train", "--resume", run["id"], "--json")
