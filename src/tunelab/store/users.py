"""Users, service accounts, projects and grants: the tables behind `tunelab.govern.users`.

Plain functions over a `Store` (its sessions), so the store's own module does not grow with every noun. Values
come in already checked and hashed; nothing here knows about passwords or roles beyond storing them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from tunelab.store.rows import now, row_values
from tunelab.store.schema import GrantRow, ProjectRow, UserRow
from tunelab.store.store import Store


def count_users(store: Store) -> int:
    """How many users and service accounts exist: none means the workspace is still single-user."""
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(UserRow)) or 0


def add_user(store: Store, user_id: str, name: str, kind: str, password_hash: str | None) -> dict[str, Any]:
    with store.session() as s, s.begin():
        s.add(UserRow(id=user_id, name=name, kind=kind, password_hash=password_hash, created_at=now()))
    return find_user(store, name)


def find_user(store: Store, name: str) -> dict[str, Any] | None:
    with store.session() as s:
        row = s.scalars(select(UserRow).where(UserRow.name == name)).first()
        return row_values(row) if row else None


def find_user_by_id(store: Store, user_id: str) -> dict[str, Any] | None:
    with store.session() as s:
        row = s.get(UserRow, user_id)
        return row_values(row) if row else None


def list_users(store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        return [row_values(r) for r in s.scalars(select(UserRow).order_by(UserRow.created_at))]


def disable_user(store: Store, user_id: str) -> None:
    with store.session() as s, s.begin():
        row = s.get(UserRow, user_id)
        if row.disabled_at is None:
            row.disabled_at = now()


def add_project(store: Store, name: str) -> None:
    with store.session() as s, s.begin():
        s.add(ProjectRow(name=name, created_at=now()))


def list_projects(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(ProjectRow.name).order_by(ProjectRow.created_at, ProjectRow.name)))


def set_grant(store: Store, user_id: str, project: str, role: str) -> None:
    """Give `role` in `project`, replacing the role held there before (one role per user and project)."""
    with store.session() as s, s.begin():
        s.merge(GrantRow(user_id=user_id, project=project, role=role, created_at=now()))


def remove_grant(store: Store, user_id: str, project: str) -> bool:
    with store.session() as s, s.begin():
        result = s.execute(delete(GrantRow).where(GrantRow.user_id == user_id, GrantRow.project == project))
        return bool(result.rowcount)


def grants_of(store: Store, user_id: str) -> dict[str, str]:
    with store.session() as s:
        return {g.project: g.role for g in s.scalars(select(GrantRow).where(GrantRow.user_id == user_id))}


def list_grants(store: Store) -> list[dict[str, Any]]:
    """Every grant with its user's name, by user then project."""
    with store.session() as s:
        rows = s.execute(select(UserRow.name, GrantRow.project, GrantRow.role)
                         .join(UserRow, UserRow.id == GrantRow.user_id).order_by(UserRow.name, GrantRow.project))
        return [{"user": name, "project": project, "role": role} for name, project, role in rows]
