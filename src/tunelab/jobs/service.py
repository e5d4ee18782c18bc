"""Queue, list, show and cancel jobs: the service behind `tunelab train --submit` and `tunelab jobs`.

Every function takes a store acting for the caller (`tunelab.govern.access.open_as` checked the action) and returns
a `JobView`, which the CLI, the management API and the web pages render alike.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from tunelab.errors import ConflictError, InputError
from tunelab.govern.access import check
from tunelab.jobs.kinds import KINDS, train_params
from tunelab.jobs.views import JobView
from tunelab.store import Store


def new_job_id() -> str:
    return f"job-{secrets.token_hex(5)}"


def job_dir(store: Store, job_id: str) -> Path:
    """Where a job's log and its attempts' outcomes are written."""
    return store.workspace.home / "jobs" / job_id


def submit(store: Store, kind: str, params: dict[str, Any]) -> JobView:
    """Queue a job of `kind` for `tunelab worker`, after checking its params and that the caller may do what it
    does (`job.submit` was checked by the caller; the kind's own action is checked here, and audited if refused)."""
    if kind not in KINDS:
        raise InputError(f"no job kind {kind!r}", f"kinds: {', '.join(KINDS)}")
    check(store, KINDS[kind].action, kind)
    KINDS[kind].check(store, params)
    row = store.add_job(id=new_job_id(), kind=kind, params=params, created_by=store.actor,
                        run_id=params.get("resume"))
    store.audit("job.submit", row["id"], {"kind": kind, "run": row["run_id"]})
    return JobView.of(row)


def submit_train(store: Store, config: Path | None, overrides: list[str] | None, resume: str | None) -> JobView:
    """`tunelab train CONFIG --submit`: the same config checks as a foreground run, then a queued job."""
    return submit(store, "train", train_params(config, overrides, resume))


def list_jobs(store: Store, state: str | None = None, limit: int = 100) -> list[JobView]:
    """The project's newest jobs first (of one state if given)."""
    return [JobView.of(r) for r in store.list_jobs(state, limit)]


def show(store: Store, ref: str) -> JobView:
    return JobView.of(store.get_job(ref))


def cancel(store: Store, ref: str) -> JobView:
    """A queued job ends cancelled at once; a running one is asked to stop: its worker sees it at the next
    heartbeat and stops the job's process (a training run checkpoints first, so it stays resumable)."""
    job = store.get_job(ref)
    if job["state"] not in ("queued", "running"):
        raise ConflictError(f"job {job['id']} is {job['state']}", "only a queued or running job can be cancelled")
    row = store.cancel_job(job["id"])
    store.audit("job.cancel", job["id"], {"was": job["state"]})
    return JobView.of(row)
