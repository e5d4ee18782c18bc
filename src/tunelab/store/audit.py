"""The audit log as a hash chain: append one row, verify the whole log, list rows.

Each row stores the previous row's hash and SHA-256 over (id, time, actor, project, action, target, parameters,
outcome, prev_hash). Editing a row breaks its own hash; deleting or reordering rows breaks the next row's link; the
one-row `audit_head` (the newest id and hash) catches deleting the newest rows. An append reads the head and inserts
in one transaction that holds the write lock from its start (BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE of
the head on PostgreSQL), so two processes writing at once cannot chain two rows to the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from tunelab.store.schema import AuditHeadRow, AuditRow

GENESIS = "0" * 64  # the prev_hash of the first row
_SECRET = re.compile(r"pass(word)?|secret|token|credential|api_?key|^key$", re.IGNORECASE)
_LOG = AuditRow.__table__
_HEAD = AuditHeadRow.__table__


def clean_parameters(detail: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters as stored: JSON values only (so they hash the same after a round trip through the
    database), with anything named like a secret dropped."""
    kept = {k: v for k, v in (detail or {}).items() if not _SECRET.search(str(k))}
    return json.loads(json.dumps(kept, default=str))


def row_hash(row: Any, prev_hash: str) -> str:
    """SHA-256 of a row's fields and its predecessor's hash, in a canonical JSON form."""
    fields = [row.id, row.at.isoformat(), row.actor, row.project, row.action, row.target, row.detail, row.outcome,
              prev_hash]
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class _Entry:
    id: int
    at: datetime
    actor: str
    project: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


def _lock_head(conn: Connection) -> tuple[int, str]:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now, not at the first INSERT
    head = conn.execute(select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1).with_for_update()).first()
    if head is None:
        conn.execute(insert(_HEAD).values(id=1, last_id=0, last_hash=GENESIS))
        return 0, GENESIS
    return head.last_id, head.last_hash


def append(engine: Engine, *, actor: str, project: str, action: str, target: str, detail: dict[str, Any] | None,
           outcome: str = "ok") -> int:
    """Add one row chained to the newest; returns its id."""
    values = {"at": datetime.now(UTC).replace(tzinfo=None), "actor": actor, "project": project, "action": action,
              "target": target, "detail": clean_parameters(detail), "outcome": outcome}
    with engine.connect() as conn:
        _, prev = _lock_head(conn)
        row_id = conn.execute(insert(_LOG).values(**values, prev_hash=prev, hash="")).inserted_primary_key[0]
        digest = row_hash(_Entry(id=row_id, **values), prev)
        conn.execute(update(_LOG).where(_LOG.c.id == row_id).values(hash=digest))
        conn.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_id=row_id, last_hash=digest))
        conn.commit()
    return row_id


@dataclass(frozen=True)
class AuditCheck:
    """The result of `verify`: intact, or the first row that was edited, deleted or moved, and how."""

    intact: bool
    rows: int
    first_bad_id: int | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"intact": self.intact, "rows": self.rows, "first_bad_id": self.first_bad_id, "problem": self.problem}


def _broken_link(row: Any, prev_id: int | None, rows: int) -> AuditCheck:
    """A row whose link does not match: a gap in ids before it means deleted rows, else rows were moved."""
    expected = (prev_id or 0) + 1
    if row.id > expected:
        span = f"{expected}" if row.id == expected + 1 else f"{expected}..{row.id - 1}"
        return AuditCheck(False, rows, expected, f"row {span} deleted: row {row.id} is chained to another row")
    return AuditCheck(False, rows, row.id, f"row {row.id} is out of place: it was chained after another row than "
                                        f"{prev_id or 'the start'} (rows reordered or replaced)")


def verify(engine: Engine) -> AuditCheck:
    """Walk the chain in id order and report the first row that does not hold."""
    prev_id, prev_hash, count = None, GENESIS, 0
    with engine.connect() as conn:
        head = conn.execute(select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1)).first()
        for row in conn.execute(select(_LOG).order_by(_LOG.c.id)):
            count += 1
            if row.prev_hash != prev_hash:
                return _broken_link(row, prev_id, count)
            if row_hash(row, row.prev_hash) != row.hash:
                return AuditCheck(False, count, row.id, f"row {row.id} was edited: its fields no longer match "
                                                        "its hash")
            prev_id, prev_hash = row.id, row.hash
    last_id, last_hash = (head.last_id, head.last_hash) if head else (0, GENESIS)
    if (prev_id or 0) != last_id or prev_hash != last_hash:
        first = (prev_id or 0) + 1
        return AuditCheck(False, count, first, f"the log ends at row {prev_id or 0} but its head says row {last_id}:"
                                               f" the newest rows from {first} on were deleted or changed")
    return AuditCheck(True, count)


def entries(engine: Engine, since: datetime | None = None, actor: str | None = None, action: str | None = None,
            limit: int | None = None, project: str | None = None) -> list[dict[str, Any]]:
    """Rows oldest first, filtered; `action` matches exactly or as a prefix ending in a dot (`data.`); `project`:
    that project's rows only."""
    query = select(_LOG).order_by(_LOG.c.id)
    if project is not None:
        query = query.where(_LOG.c.project == project)
    if since is not None:
        query = query.where(_LOG.c.at >= since)
    if actor is not None:
        query = query.where(_LOG.c.actor == actor)
    if action is not None:
        query = query.where(_LOG.c.action.startswith(action) if action.endswith(".") else _LOG.c.action == action)
    if limit is not None:
        query = query.order_by(None).order_by(_LOG.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    rows.sort(key=lambda r: r["id"])
    return [{**r, "at": r["at"].isoformat()} for r in rows]


class AuditTable:
    """The audit methods of `Store` (a mixin): rows name the store's actor and project, set by
    `tunelab.govern.access` through `Store.act_as`."""

    engine: Engine
    actor: str
    project: str

    def audit(self, action: str, target: str, detail: dict[str, Any] | None = None, outcome: str = "ok") -> None:
        """Append one hash-chained row; secrets in `detail` are dropped."""
        append(self.engine, actor=self.actor, project=self.project, action=action, target=target, detail=detail,
               outcome=outcome)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest rows first."""
        return list(reversed(entries(self.engine, limit=limit)))
