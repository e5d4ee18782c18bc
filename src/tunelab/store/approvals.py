"""Approval requests: the table behind `tunelab.govern.registry` (a model's stage itself is `Store.set_stage`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from tunelab.store.rows import now, row_dict
from tunelab.store.schema import ApprovalRow
from tunelab.store.store import Store


def add_request(store: Store, model_id: str, evaluation_id: str, requested_by: str, requester_id: str) -> int:
    with store.session() as s, s.begin():
        row = ApprovalRow(model_id=model_id, evaluation_id=evaluation_id, requested_by=requested_by,
                          requester_id=requester_id, requested_at=now())
        s.add(row)
        s.flush()
        return row.id


def pending(store: Store, model_id: str) -> dict[str, Any] | None:
    """The newest request for the model that nobody approved yet."""
    with store.session() as s:
        row = s.scalars(select(ApprovalRow).where(ApprovalRow.model_id == model_id, ApprovalRow.approved_at.is_(None))
                        .order_by(ApprovalRow.id.desc())).first()
        return row_dict(row) if row else None


def approve(store: Store, request_id: int, approved_by: str) -> None:
    with store.session() as s, s.begin():
        s.execute(update(ApprovalRow).where(ApprovalRow.id == request_id)
                  .values(approved_by=approved_by, approved_at=now()))


def history(store: Store, model_id: str) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.scalars(select(ApprovalRow).where(ApprovalRow.model_id == model_id).order_by(ApprovalRow.id))
        return [row_dict(r) for r in rows]
