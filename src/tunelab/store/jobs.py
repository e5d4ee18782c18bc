"""The `jobs` table: background jobs and their claims.

A mixin of `Store`. Every change of a job's state is one conditional UPDATE (`... WHERE id = ? AND state = ?`) whose
row count says whether this process won: two workers, on one machine or several sharing the database, can never both
claim, re-queue or finish the same job. On PostgreSQL the candidates are also read `FOR UPDATE SKIP LOCKED`, so
workers do not queue up behind one another's row locks. `tunelab.jobs` decides what the states mean.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from tunelab.errors import NotFoundError
from tunelab.store.rows import Table, now, row_values
from tunelab.store.schema import JobRow


def _in(query: Any, projects: list[str] | None) -> Any:
    """Only the jobs of `projects` (None: every project, for a worker with a workspace-wide role)."""
    return query if projects is None else query.where(JobRow.project_id.in_(projects))


class JobTable(Table):
    engine: Engine  # `Store.engine`: the dialect decides how candidates are locked

    def add_job(self, **values: Any) -> dict[str, Any]:
        with self.session() as s, s.begin():
            row = JobRow(project_id=self.project, created_at=now(), state="queued", attempts=0, **values)
            s.add(row)
            s.flush()
            return row_values(row)

    def get_job(self, ref: str) -> dict[str, Any]:
        """A job of this project by id or id prefix; another project's job does not exist here."""
        with self.session() as s:
            row = self._mine(s.get(JobRow, ref)) or s.scalars(
                self._own(select(JobRow), JobRow).where(JobRow.id.startswith(ref))
                .order_by(JobRow.created_at.desc())).first()
            if row is None:
                recent = s.scalars(self._own(select(JobRow.id), JobRow).order_by(JobRow.created_at.desc())
                                   .limit(5)).all()
                raise NotFoundError(f"no job {ref!r}", f"recent jobs: {', '.join(recent)}" if recent
                                    else "queue one with `tunelab train CONFIG --submit`")
            return row_values(row)

    def list_jobs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The project's newest jobs first."""
        query = self._own(select(JobRow), JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit)
        with self.session() as s:
            return [row_values(r) for r in s.scalars(query.where(JobRow.state == state) if state else query)]

    def update_job(self, job_id: str, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.execute(update(JobRow).where(JobRow.id == job_id).values(**values))

    def claim_job(self, worker: str, projects: list[str] | None) -> dict[str, Any] | None:
        """The oldest queued job of `projects`, now running for `worker`; None when there is none to win."""
        query = _in(select(JobRow.id).where(JobRow.state == "queued"), projects)
        query = query.order_by(JobRow.created_at, JobRow.id).limit(8)
        with self.session() as s, s.begin():
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for job_id in s.scalars(query).all():
                at = now()
                won = s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state == "queued").values(
                    state="running", claimed_by=worker, heartbeat_at=at, started_at=at,
                    attempts=JobRow.attempts + 1)).rowcount
                if won:
                    return row_values(s.get(JobRow, job_id))
        return None

    def heartbeat_job(self, job_id: str, worker: str) -> dict[str, Any] | None:
        """Refresh `worker`'s claim; the job as it is now, or None when the claim was lost (re-queued, finished)."""
        with self.session() as s, s.begin():
            kept = s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.claimed_by == worker,
                                                  JobRow.state == "running").values(heartbeat_at=now())).rowcount
            return row_values(s.get(JobRow, job_id)) if kept else None

    def finish_job(self, job_id: str, worker: str, **values: Any) -> bool:
        """Record how `worker`'s job ended (or give it back: state=queued); False if it no longer held it."""
        with self.session() as s, s.begin():
            return bool(s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.claimed_by == worker,
                                                       JobRow.state == "running").values(**values)).rowcount)

    def stale_jobs(self, cutoff: datetime, projects: list[str] | None) -> list[dict[str, Any]]:
        """Running jobs whose worker has not heartbeated since `cutoff`."""
        query = _in(select(JobRow).where(JobRow.state == "running", JobRow.heartbeat_at < cutoff), projects)
        with self.session() as s:
            return [row_values(r) for r in s.scalars(query)]

    def take_over(self, job: dict[str, Any], **values: Any) -> bool:
        """Change a stale job, unless its worker heartbeated (or another worker took it over) since it was read."""
        with self.session() as s, s.begin():
            return bool(s.execute(update(JobRow).where(
                JobRow.id == job["id"], JobRow.state == "running", JobRow.claimed_by == job["claimed_by"],
                JobRow.heartbeat_at == job["heartbeat_at"]).values(**values)).rowcount)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """A queued job is cancelled at once; a running one is marked, and its worker stops it at its next
        heartbeat. The job as it is now."""
        with self.session() as s, s.begin():
            at = now()
            if not s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state == "queued").values(
                    state="cancelled", finished_at=at)).rowcount:
                s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state == "running",
                                               JobRow.cancel_requested_at.is_(None)).values(cancel_requested_at=at))
            return row_values(s.get(JobRow, job_id))
