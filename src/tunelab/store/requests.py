"""The `request_log` table: one row per request the server answered, appended in batches by its logger.

A mixin of `Store`. Erasure deletes the rows that quote an erased value here too (`delete_requests_quoting`), so
the table has one owner.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select

from tunelab.store.rows import Table, row_dict
from tunelab.store.schema import RequestLogRow


class RequestTable(Table):
    def add_requests(self, rows: list[dict[str, Any]]) -> None:
        """Append request-log rows (the columns of `request_log` but `id`, each with its caller's `project_id`)."""
        with self.session() as s, s.begin():
            s.add_all(RequestLogRow(**row) for row in rows)

    def request_log(self, limit: int = 100, model: str | None = None) -> list[dict[str, Any]]:
        """The newest requests first, optionally for one model."""
        query = self._own(select(RequestLogRow), RequestLogRow).order_by(RequestLogRow.id.desc()).limit(limit)
        if model is not None:
            query = query.where(RequestLogRow.model == model)
        with self.session() as s:
            return [row_dict(r) for r in s.scalars(query)]

    def delete_requests_quoting(self, values: list[str]) -> int:
        """Delete this project's request-log rows whose logged request or response text contains any value; returns
        how many. This project's only, like the datasets an erasure searches: across tenants, the count would tell
        one project's admin whether another's logs quote a text of their choosing."""
        if not values:
            return 0
        quoting = [column.contains(v, autoescape=True) for v in values
                   for column in (RequestLogRow.request_text, RequestLogRow.response_text)]
        with self.session() as s, s.begin():
            return s.execute(delete(RequestLogRow).where(RequestLogRow.project_id == self.project, or_(*quoting))
                             ).rowcount or 0
