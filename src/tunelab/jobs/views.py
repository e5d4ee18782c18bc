"""The typed results of the job services: what `tunelab jobs list|show --json`, the management API and the web UI
render, so each shows the same fields under the same names (the field order is the JSON key order)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobView(BaseModel):
    """One job: what it does, who asked, where it stands, and what it produced (`result`) or why it failed."""

    job: str
    project: str
    kind: str
    state: State
    created_by: str
    created_at: datetime
    attempts: int
    run_id: str | None = None
    claimed_by: str | None = None
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    params: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> JobView:
        """From a `jobs` row (`Store.get_job`), whose `id` is shown as `job` and `project_id` as `project`."""
        return cls.model_validate({**row, "job": row["id"], "project": row["project_id"]})


class WorkerReport(BaseModel):
    """What one `tunelab worker` did before it stopped: its id and the jobs it ran, as they ended."""

    worker: str
    jobs: list[JobView]
