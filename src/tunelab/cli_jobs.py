"""`tunelab jobs list|show|cancel`, `tunelab worker` and `tunelab train --submit`: parse, resolve who acts
(`open_as`), call `tunelab.jobs`, print. Details: docs/jobs.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tunelab.cli_output import JsonFlag, emit
from tunelab.govern.access import open_as

if TYPE_CHECKING:
    from tunelab.jobs.views import JobView

SubmitFlag = Annotated[bool, typer.Option("--submit", help="Queue a job for `tunelab worker` instead of training "
                                                           "here; prints the job.")]
jobs_app = typer.Typer(help="Background jobs: list, show and cancel what `tunelab worker` runs.",
                       no_args_is_help=True)


def _job_line(job: JobView) -> str:
    run = f"  run {job.run_id}" if job.run_id else ""
    return f"{job.job}  {job.kind:<6} {job.state:<10} by {job.created_by}  {job.created_at:%Y-%m-%d %H:%M}{run}"


def _job_text(job: JobView) -> str:
    lines = [_job_line(job), f"  attempts {job.attempts}" + (f", worker {job.claimed_by}" if job.claimed_by else "")]
    if job.cancel_requested_at and job.state == "running":
        lines.append("  cancelling: its worker stops it at the next heartbeat")
    if job.result and job.result.get("model"):
        lines.append(f"  model {job.result['model']}")
    if job.run_id:
        lines.append(f"  follow it: tunelab runs show {job.run_id}")
    if job.error:
        lines.append(f"  {job.error}")
    return "\n".join(lines)


def submit_train(config: Path | None, overrides: list[str] | None, resume: str | None, as_json: bool) -> None:
    """`tunelab train ... --submit`."""
    from tunelab.jobs import service

    job = service.submit_train(open_as("job.submit", str(config or resume)), config, overrides, resume)
    emit(job.model_dump(mode="json"), as_json, f"queued {job.job}; run it with `tunelab worker`")


@jobs_app.command("list")
def jobs_list(state: Annotated[str | None, typer.Option("--state", help="Only jobs in this state.")] = None,
              limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
              as_json: JsonFlag = False) -> None:
    """List the project's jobs, newest first.

    Example: tunelab jobs list --state running
    """
    from tunelab.jobs import service

    jobs = service.list_jobs(open_as("job.read"), state, limit)
    emit({"jobs": [j.model_dump(mode="json") for j in jobs]}, as_json,
         "\n".join(_job_line(j) for j in jobs) or "no jobs yet: queue one with `tunelab train CONFIG --submit`")


@jobs_app.command("show")
def jobs_show(job: Annotated[str, typer.Argument(help="Job id or id prefix.")], as_json: JsonFlag = False) -> None:
    """Show a job: its state, attempts, worker, run and result or error.

    Example: tunelab jobs show job-1a2b3c4d5e
    """
    from tunelab.jobs import service

    view = service.show(open_as("job.read", job), job)
    emit(view.model_dump(mode="json"), as_json, _job_text(view))


@jobs_app.command("cancel")
def jobs_cancel(job: Annotated[str, typer.Argument(help="Job id or id prefix.")], as_json: JsonFlag = False) -> None:
    """Cancel a job: a queued one at once, a running one at its worker's next heartbeat (it checkpoints first).

    Example: tunelab jobs cancel job-1a2b3c4d5e
    """
    from tunelab.jobs import service

    view = service.cancel(open_as("job.cancel", job), job)
    emit(view.model_dump(mode="json"), as_json, _job_text(view))


def worker_command(
    once: Annotated[bool, typer.Option("--once", help="Run at most one job, then exit.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.1, help="Seconds between looks at an empty queue.")] = 2.0,
    stale: Annotated[float, typer.Option("--stale", min=1, help="Seconds without a heartbeat after which a running "
                                                                "job's worker is taken for dead and the job "
                                                                "re-queued.")] = 60.0,
    max_attempts: Annotated[int, typer.Option("--max-attempts", min=1, help="Claims of one job before a dead "
                                                                            "worker fails it.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Run queued jobs (each in its own process, as the person who queued it) until stopped with Ctrl-C/SIGTERM.

    Example: tunelab worker --poll 5
    """
    from tunelab.jobs.worker import WorkerOptions, work

    report = work(open_as("worker.run"), WorkerOptions(once=once, poll=poll, stale=stale, max_attempts=max_attempts))
    emit(report.model_dump(mode="json"), as_json,
         "\n".join(_job_text(j) for j in report.jobs) or f"worker {report.worker}: no job ran")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.command("worker")(worker_command)
