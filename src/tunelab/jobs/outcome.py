"""How a job's attempt ended, from its process's outcome file and exit code: the values its row gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.store.rows import now


def ending(outcome: Path, code: int, reason: str | None, log: Path) -> dict[str, Any]:
    """The job's new columns. `reason` is why the worker stopped the process, if it did: "cancel" (cancelled),
    "shutdown" (the worker is stopping: back to the queue, to resume elsewhere) or "lost" (another worker holds the
    job now; the row is not ours to write, so what is returned here is not written)."""
    if not outcome.exists():
        if reason == "cancel":
            return {"state": "cancelled", "finished_at": now(), "error": None}
        if reason == "shutdown":
            return _requeued()
        return {"state": "failed", "finished_at": now(),
                "error": f"the job's process ended (exit code {code}) before reporting; its log: {log}"}
    told = json.loads(outcome.read_text())
    if told["state"] == "succeeded":
        return {"state": "succeeded", "finished_at": now(), "result": told["result"], "error": None}
    if told["state"] == "failed":
        return {"state": "failed", "finished_at": now(), "error": told["error"]}
    if reason == "shutdown":  # stopped at a checkpoint because the worker is stopping
        return _requeued()
    return {"state": "cancelled", "finished_at": now(), "result": told["result"], "error": None}


def _requeued() -> dict[str, Any]:
    return {"state": "queued", "claimed_by": None, "heartbeat_at": None,
            "error": "its worker stopped; re-queued to resume"}
