"""Compaction after `tunelab.govern.erasure` (the rows it deletes are deleted by their tables' owners).

Deleting a row is not erasing it: SQLite keeps it in free pages and the WAL until they are reused, PostgreSQL keeps
dead tuples until a vacuum rewrites the table. `compact` rewrites the whole database after an erasure.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import text

from tunelab.store.store import Store


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
