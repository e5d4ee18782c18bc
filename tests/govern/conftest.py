"""The governance tests walk many commands: `tunelab` runs them in this process (tests/inprocess.py) instead of one
subprocess each (the root `cli` fixture); tests/govern/test_users_cli.py keeps one subprocess smoke test that
proves the two agree."""

from __future__ import annotations

import pytest

from inprocess import run_cli


@pytest.fixture
def tunelab():
    return run_cli
