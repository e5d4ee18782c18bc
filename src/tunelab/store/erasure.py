"""The SQL behind `tunelab.govern.erasure`: request-log rows that quote erased values, and compaction.

Deleting a row is not erasing it: SQLite keeps it in free pages and the WAL until they are reused, PostgreSQL keeps
dead tuples until a vacuum rewrites the table. `compact` rewrites the whole database after an erasure.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import delete, or_, text

from tunelab.store.schema import RequestLogRow
from tunelab.store.store import Store


def delete_requests_quoting(store: Store, values: list[str]) -> int:
    """Delete the request-log rows whose logged request or response text contains any value; returns how many.

    Every project's rows: a logged text that quotes a data subject is theirs wherever it was served.
    """
    if not values:
        return 0
    quoting = [column.contains(v, autoescape=True) for v in values
               for column in (RequestLogRow.request_text, RequestLogRow.response_text)]
    with store.session() as s, s.begin():
        return s.execute(delete(RequestLogRow).where(or_(*quoting))).rowcount or 0


def compact(store: Store) -> None:
    """Leave no deleted row behind: SQLite through `Store.scrub` (WAL checkpoint, VACUUM), PostgreSQL by rewriting
    every table (VACUUM FULL) and checkpointing, so the heap files hold live rows only."""
    if store.engine.dialect.name != "postgresql":
        store.scrub()
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM FULL"))
        with contextlib.suppress(Exception):  # CHECKPOINT needs superuser or pg_checkpoint; the vacuum matters
            conn.execute(text("CHECKPOINT"))
