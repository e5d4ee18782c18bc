"""Shared fixtures: every test gets its own workspace, and the real CLI runs in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tunelab.store import open_store

# `make test` runs two workers (pytest -n 2): each gets one core's worth of threads, here and in the subprocesses
# it starts; two workers with two torch threads each on a 2-core machine spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# tiny random models + tokenizers (no hub), shared by the train and evaluate tests
pytest_plugins = ["tiny_models"]


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    home = tmp_path / "tunelab-home"
    monkeypatch.setenv("TUNELAB_HOME", str(home))
    monkeypatch.delenv("TUNELAB_DATABASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TUNELAB_PROGRESS", "0")
    return home


@pytest.fixture
def store():
    opened = open_store()
    yield opened
    opened.close()


@pytest.fixture
def cli():
    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tunelab.cli", *args], capture_output=True, text=True,
                              env=dict(os.environ), input=input, timeout=300)

    return run
