"""Helpers for tests that run the real server: a free port, and `tunelab serve` started in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def server_home(folder: Path) -> tuple[Path, dict[str, str]]:
    """A workspace folder for a served test, and the environment of a server subprocess that uses it."""
    home = folder / "home"
    env = {**os.environ, "TUNELAB_HOME": str(home), "HF_HUB_OFFLINE": "1", "TUNELAB_PROGRESS": "0"}
    env.pop("TUNELAB_DATABASE_URL", None)
    return home, env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], models: list[str], port: int, log: Path, *extra: str) -> subprocess.Popen:
    """`tunelab serve` on 127.0.0.1:port with the models (and `extra` arguments), once /health answers (its output
    goes to `log`)."""
    args = [sys.executable, "-m", "tunelab.cli", "serve", "--port", str(port), "--max-batch", "8",
            "--max-tokens-cap", "256", "--allow-unapproved", *extra]
    for model in models:
        args += ["--model", model]
    process = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not answer /health within 120 s:\n{log.read_text()}")
