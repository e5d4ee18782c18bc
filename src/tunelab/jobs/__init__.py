"""Background jobs: queued in the database, run by `tunelab worker` (see docs/jobs.md)."""
