"""What every table module of the store shares: the clock, rows as dicts, and the project (tenant) filter.

The table modules (`datasets`, `runs`, `models`, `keys`, `requests`) are mixins of `Store`; they import this module,
not `store.py`, so `store.py` can compose them without an import cycle. `Table` is the part of `Store` they lean on:
its sessions and its project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import NotFoundError


def now() -> datetime:
    """Naive UTC: the store's columns are DateTime without a zone, the same on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def row_values(row: Any) -> dict[str, Any]:
    """A row's columns as they are (datetimes stay datetimes), for code that computes with them."""
    return {c.name: getattr(row, c.name) for c in row.__table__.columns}


def row_dict(row: Any) -> dict[str, Any]:
    """A row's columns with times as ISO strings: ready for JSON, as the CLI and the reports print them."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row_values(row).items()}


class Table:
    """The base of the table mixins: `Store` provides `session()` and `project`; this adds the project filter, so
    each table module scopes its reads the same way and another tenant's row is simply not found."""

    project: str

    def session(self) -> Session:
        raise NotImplementedError  # `Store.session`

    def _mine(self, row: Any) -> Any:
        """The row if it belongs to this store's project, else None: another tenant's row does not exist here."""
        return row if row is not None and row.project_id == self.project else None

    def _own(self, query: Any, table: Any) -> Any:
        return query.where(table.project_id == self.project)

    def _lookup(self, table: Any, what: str, ref: str, none_yet: str) -> dict[str, Any]:
        """A row by id, id prefix or name (the newest of that name); NotFoundError naming recent ones otherwise."""
        with self.session() as s:
            row = self._mine(s.get(table, ref)) or s.scalars(
                self._own(select(table), table).where(table.id.startswith(ref) | (table.name == ref))
                .order_by(table.created_at.desc())).first()
            if row is None:
                recent = s.scalars(self._own(select(table.id), table).order_by(table.created_at.desc()).limit(5)).all()
                hint = f"recent {what}s: {', '.join(recent)}" if recent else none_yet
                raise NotFoundError(f"no {what} {ref!r}", hint)
            return row_dict(row)
