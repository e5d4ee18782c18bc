"""`tunelab worker`: claim a queued job, run it in a child process, heartbeat it, record how it ended; again.

Claims are conditional UPDATEs (`tunelab.store.jobs`), so any number of workers on any number of machines can share
one database. A running job's worker heartbeats it every few seconds from a thread; a job whose heartbeat is older
than `stale` seconds lost its worker, and any worker puts it back in the queue (its next attempt resumes its run
from the last checkpoint) or, after `max_attempts` claims, fails it. The same heartbeat is how a running job hears
that it was cancelled: the worker then stops its process. Details: docs/jobs.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from tunelab.errors import NotFoundError
from tunelab.govern.policy import allowed
from tunelab.govern.principal import WORKSPACE, Principal
from tunelab.jobs.outcome import ending
from tunelab.jobs.service import job_dir
from tunelab.jobs.views import JobView, WorkerReport
from tunelab.progress import say
from tunelab.store import Store
from tunelab.store.rows import now


@dataclass(frozen=True)
class WorkerOptions:
    once: bool = False  # run at most one job, then return
    poll: float = 2.0  # seconds between looks at an empty queue
    stale: float = 60.0  # a running job whose heartbeat is older than this lost its worker
    max_attempts: int = 3  # claims of one job before a lost worker fails it instead of re-queuing it

    @property
    def heartbeat(self) -> float:
        """Several heartbeats fit in `stale`, so one slow write never makes a live job look dead."""
        return max(0.2, min(5.0, self.stale / 4))


def worker_projects(principal: Principal) -> list[str] | None:
    """The projects whose jobs this principal may run (None: all of them, for a workspace-wide role)."""
    if principal.project:  # an API key acts in its one project
        return [principal.project]
    if allowed(principal.role_in(WORKSPACE), "worker.run"):
        return None
    return sorted(p for p, role in principal.grants.items() if p != WORKSPACE and allowed(role, "worker.run"))


class _Shutdown:
    """SIGTERM or SIGINT to the worker: stop the running job (it checkpoints), give it back to the queue, return."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.child: subprocess.Popen | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, _signum: int, _frame: Any) -> None:
        self.asked.set()
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def __enter__(self) -> _Shutdown:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *_: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _Heartbeat(threading.Thread):
    """Refresh the claim every `every` seconds; stop the job's process once it was cancelled or the claim lost."""

    def __init__(self, store: Store, job_id: str, worker: str, child: subprocess.Popen, every: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.store, self.job_id, self.worker, self.child, self.every = store, job_id, worker, child, every
        self.done = threading.Event()
        self.reason: str | None = None  # "cancel" | "lost"

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                job = self.store.heartbeat_job(self.job_id, self.worker)
            except OperationalError as exc:  # a busy or unreachable database: try again at the next beat
                say(f"heartbeat of {self.job_id} failed: {exc.orig}")
                continue
            reason = "lost" if job is None else "cancel" if job["cancel_requested_at"] else None
            if reason and self.reason is None:
                self.reason = reason
                self.child.terminate()  # SIGTERM: a training run checkpoints, then stops


def requeue_stale(store: Store, options: WorkerOptions, projects: list[str] | None) -> None:
    """Give the jobs of dead workers back to the queue (or fail them after `max_attempts` claims)."""
    for job in store.stale_jobs(now() - timedelta(seconds=options.stale), projects):
        why = f"its worker {job['claimed_by']} stopped heartbeating at {job['heartbeat_at']:%Y-%m-%d %H:%M:%S} UTC"
        if job["attempts"] >= options.max_attempts:
            values = {"state": "failed", "finished_at": now(),
                      "error": f"{why}, on attempt {job['attempts']} of {options.max_attempts}: given up"}
        else:
            values = {"state": "queued", "claimed_by": None, "heartbeat_at": None, "error": f"{why}; re-queued"}
        if store.take_over(job, **values):
            _orphan_run(store.in_project(job["project_id"]), job)
            say(f"job {job['id']}: {values['error']}")
            store.in_project(job["project_id"]).audit(f"job.{'fail' if values['state'] == 'failed' else 'requeue'}",
                                                      job["id"], {"worker": job["claimed_by"]})


def _orphan_run(store: Store, job: dict[str, Any]) -> None:
    """The job's run, still marked running by a process that died with its worker (maybe on another machine),
    is failed, so the next attempt may resume it."""
    try:
        run = store.get_run(job["run_id"]) if job["run_id"] else None
    except NotFoundError:
        return
    if run is not None and run["state"] == "running":
        store.update_run(run["id"], state="failed", pid=None,
                         error=f"the worker of job {job['id']} died; the job resumes this run")


def _run_one(store: Store, job: dict[str, Any], worker: str, options: WorkerOptions, shutdown: _Shutdown) -> JobView:
    """Run a claimed job in its own process until it ends, and record how."""
    folder = job_dir(store, job["id"])
    folder.mkdir(parents=True, exist_ok=True)
    outcome = folder / f"outcome-{job['attempts']}.json"
    say(f"worker {worker}: job {job['id']} ({job['kind']}, attempt {job['attempts']}, by {job['created_by']})")
    with open(folder / "job.log", "a", encoding="utf-8") as log:
        child = subprocess.Popen([sys.executable, "-m", "tunelab.jobs.child", job["id"], job["project_id"],
                                  str(outcome)], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        shutdown.child = child
        beat = _Heartbeat(store, job["id"], worker, child, options.heartbeat)
        beat.start()
        code = child.wait()
        beat.done.set()
        shutdown.child = None
    reason = beat.reason or ("shutdown" if shutdown.asked.is_set() else None)
    values = ending(outcome, code, reason, folder / "job.log")
    if store.finish_job(job["id"], worker, **values):
        store.in_project(job["project_id"]).audit("job.finish", job["id"], {"state": values["state"],
                                                                             "worker": worker})
    return JobView.of(store.in_project(job["project_id"]).get_job(job["id"]))


def work(store: Store, options: WorkerOptions) -> WorkerReport:
    """The worker loop: re-queue stale jobs, claim the oldest queued one, run it; until stopped (or once)."""
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    projects = worker_projects(store.principal)
    ran: list[JobView] = []
    with _Shutdown() as shutdown:
        while not shutdown.asked.is_set():
            requeue_stale(store, options, projects)
            job = store.claim_job(worker, projects)
            if job is not None:
                ran.append(_run_one(store, job, worker, options, shutdown))
            if options.once:
                break
            if job is None:
                shutdown.asked.wait(options.poll)
    return WorkerReport(worker=worker, jobs=ran)
