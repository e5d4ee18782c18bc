"""One job in a process of its own: `python -m tunelab.jobs.child JOB PROJECT OUTCOME`, started by `tunelab worker`.

Why a process: cancelling is clean (SIGTERM: a training run checkpoints and stops, resumable), a crash of the job
never takes the worker down, and the job dies with its worker (`_follow_parent`), so a job whose worker vanished is
not still training when another worker resumes it.

Who it acts as: it logs in with the worker's credentials (the environment), which need `worker.run` in the job's
project, then acts as the person who queued the job with the roles they hold now: a role taken away since the job
was queued is a refusal, audited. It writes one JSON outcome file: succeeded with a result, failed with the error's
message and hint (never a traceback for a user's mistake), or stopped. A bug in tunelab leaves no outcome and its
traceback in the job's log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.errors import AuthError, TunelabError
from tunelab.govern import users
from tunelab.govern.access import check, open_as
from tunelab.govern.principal import WORKSPACE, Principal, make_principal
from tunelab.jobs.kinds import KINDS
from tunelab.store import Store
from tunelab.store import users as table

STOPPED = ("cancelled", "interrupted")  # a run stopped by a signal: resumable


def _follow_parent(parent: int) -> None:
    """Stop (SIGTERM: checkpoint, then exit) as soon as the worker that started this process is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def _submitter(store: Store, name: str) -> Principal:
    """The principal who queued the job, with the grants they hold now."""
    if not table.count_users(store):  # no users yet: the local admin queued it, as every command acts then
        return make_principal(id=f"local:{name}", name=name, kind="local", grants={WORKSPACE: "admin"})
    user = table.find_user(store, name)
    if user is None or user.get("disabled_at"):
        raise AuthError(f"the job was queued by {name}, who is no longer an active user",
                        "queue it again as an active user")
    return users.principal_of(store, user)


def run_job(job_id: str, project: str) -> dict[str, Any]:
    """Run the job as its submitter; the outcome the worker records."""
    try:
        store = open_as("worker.run", job_id, project=project)
        job = store.get_job(job_id)
        kind = KINDS[job["kind"]]
        store.act_as(job["created_by"], job["project_id"])
        store.principal = _submitter(store, job["created_by"])
        check(store, kind.action, job_id, {"job": job_id})
        result = kind.run(store, job)
    except TunelabError as exc:
        return {"state": "failed", "error": str(exc)}
    return {"state": "stopped" if result.get("state") in STOPPED else "succeeded", "result": result}


def main(argv: list[str]) -> int:
    job_id, project, outcome = argv
    _follow_parent(os.getppid())
    result = run_job(job_id, project)
    path = Path(outcome)
    path.with_suffix(".tmp").write_text(json.dumps(result, default=str))
    path.with_suffix(".tmp").replace(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
