"""The `runs` and `metrics` tables: a training run's record and its metric stream.

A mixin of `Store`. `tunelab.train.runs` decides what a run's state means (stale, resumable); this module only
stores it. Metric points belong to their run, so the two tables have one owner.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from tunelab.store.rows import Table, now, row_dict
from tunelab.store.schema import MetricRow, RunRow


class RunTable(Table):
    def add_run(self, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.add(RunRow(created_at=now(), warnings=[], step=0, project_id=self.project, **values))

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set some columns; every update is also a heartbeat (a run that stops updating is looked at as stale)."""
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.heartbeat_at = now()

    def get_run(self, ref: str) -> dict[str, Any]:
        """A run by id, id prefix or name (its newest)."""
        return self._lookup(RunRow, "run", ref, "start one with `tunelab train CONFIG.yaml`")

    def list_runs(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [row_dict(r) for r in s.scalars(self._own(select(RunRow), RunRow).order_by(RunRow.created_at))]

    def add_metrics(self, run_id: str, points: list[tuple[int, str, dict[str, Any]]]) -> None:
        with self.session() as s, s.begin():
            s.add_all(MetricRow(run_id=run_id, step=step, kind=kind, values=values, at=now())
                      for step, kind, values in points)

    def drop_metrics_after(self, run_id: str, step: int) -> None:
        """Forget points past a checkpoint that a resumed run will compute again."""
        with self.session() as s, s.begin():
            s.execute(delete(MetricRow).where(MetricRow.run_id == run_id, MetricRow.step > step))

    def metrics(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """The run's metric stream from `after_id` on, so a follower can poll for what is new."""
        with self.session() as s:
            rows = s.scalars(select(MetricRow).where(MetricRow.run_id == run_id, MetricRow.id > after_id)
                             .order_by(MetricRow.id))
            return [{"id": r.id, "step": r.step, "kind": r.kind, **r.values} for r in rows]
